"""AES-256-GCM encryption of sensitive fields, tagged with the key version that encrypted them.

A stored value reads `v3:<base64(nonce || ciphertext || tag)>`. The version says which key of
the `Keyring` to decrypt with, so keys rotate without a flag day: new values use the newest key,
old values stay readable, and `reencrypt` moves a value to the newest key when it is next
written (or by a background sweep). The field name is GCM's associated data: a ciphertext
copied into another column (an IBAN pasted into `tax_id`) does not decrypt.

Nonces are 96 random bits (NIST SP 800-38D §8.2.2): safe for up to 2^32 encryptions per key,
far beyond what a billing database writes before the next rotation.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12


class FieldDecryptionError(ValueError):
    """A stored value that cannot be decrypted: tampered, malformed, or moved to another field."""


class UnknownKeyVersion(FieldDecryptionError):
    """A value encrypted with a key version the keyring does not hold (a lost or unloaded key)."""


@dataclass(frozen=True)
class Keyring:
    """Key versions (1, 2, …) to 32-byte AES keys; the highest version encrypts."""

    keys: Mapping[int, bytes]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a keyring needs at least one key")
        for version, key in self.keys.items():
            if version < 1 or len(key) != KEY_BYTES:
                raise ValueError(f"key v{version} must be {KEY_BYTES} bytes with a version >= 1")
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    @classmethod
    def generate(cls) -> Keyring:
        return cls({1: AESGCM.generate_key(bit_length=256)})

    @property
    def current_version(self) -> int:
        return max(self.keys)

    def rotated(self) -> Keyring:
        """This keyring plus a new, newest key; every old key stays for decryption."""
        return Keyring({**self.keys, self.current_version + 1: AESGCM.generate_key(bit_length=256)})


def _split(token: str) -> tuple[int, bytes]:
    prefix, separator, encoded = token.partition(":")
    if not separator or not prefix.startswith("v") or not prefix[1:].isdigit():
        raise FieldDecryptionError("not an encrypted field value (expected 'v<version>:<base64>')")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise FieldDecryptionError("encrypted field value is not base64") from None
    if len(blob) < NONCE_BYTES + 16:  # nonce and GCM tag at least
        raise FieldDecryptionError("encrypted field value is too short")
    return int(prefix[1:]), blob


def is_token(value: str) -> bool:
    """Whether `value` is an encrypted field value (as opposed to one stored in clear)."""
    try:
        _split(value)
    except FieldDecryptionError:
        return False
    return True


def key_version(token: str) -> int:
    """The key version a stored value was encrypted with."""
    return _split(token)[0]


class FieldCipher:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def encrypt(self, field: str, plaintext: str) -> str:
        version = self._keyring.current_version
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keyring.keys[version]).encrypt(nonce, plaintext.encode(), field.encode())
        return f"v{version}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, field: str, token: str) -> str:
        version, blob = _split(token)
        key = self._keyring.keys.get(version)
        if key is None:
            raise UnknownKeyVersion(f"no key v{version} in the keyring")
        try:
            plaintext = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], field.encode())
        except InvalidTag:
            raise FieldDecryptionError(
                f"value of {field!r} fails authentication (tampered or wrong field)"
            ) from None
        return plaintext.decode()

    def needs_reencryption(self, token: str) -> bool:
        return key_version(token) != self._keyring.current_version

    def reencrypt(self, field: str, token: str) -> str:
        """The value under the newest key (unchanged if it already is)."""
        if not self.needs_reencryption(token):
            return token
        return self.encrypt(field, self.decrypt(field, token))
