"""Where the field-encryption keyring lives: HashiCorp Vault (KV v2) when VAULT_ADDR is set, else a
local key file readable by its owner only (mode 0600), created on first use.

A keyring only ever grows: `rotate_keyring` adds a version and saves, and saving a keyring that
lacks a stored version is refused, because every value encrypted with a dropped key would be
lost. Both stores guard against two rotations racing: Vault with check-and-set on the secret's
version, the file with an exclusive lock around compare-and-replace (and a no-clobber link when
two processes create it at once).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import hvac
import requests
from hvac.exceptions import InvalidPath, VaultError

from infra.field_encryption import FieldCipher, Keyring, UnknownKeyVersion

DEFAULT_VAULT_PATH = "billing/field-keys"
DEFAULT_VAULT_MOUNT = "secret"


class KeyringUnavailable(RuntimeError):
    """The keyring cannot be read or written (Vault down or refusing, key file unusable)."""


class InsecureKeyFile(KeyringUnavailable):
    """The key file can be read by someone other than its owner."""


class KeyringStore(Protocol):
    def load(self) -> Keyring: ...

    def save(self, keyring: Keyring) -> None: ...


def _encode(keyring: Keyring) -> dict[str, str]:
    return {f"v{version}": base64.b64encode(key).decode() for version, key in sorted(keyring.keys.items())}


def _decode(data: Mapping[str, Any], where: str) -> Keyring:
    try:
        return Keyring({int(name.removeprefix("v")): base64.b64decode(value) for name, value in data.items()})
    except (ValueError, TypeError) as error:
        raise KeyringUnavailable(f"{where} does not hold a keyring: {error}") from None


def _refuse_shrinking(stored: Keyring, new: Keyring) -> None:
    lost = sorted(set(stored.keys) - set(new.keys))
    changed = sorted(v for v, key in stored.keys.items() if v in new.keys and new.keys[v] != key)
    if lost or changed:
        # Typically a rotation from a stale copy racing another one: reload and rotate again.
        raise KeyringUnavailable(f"refusing to drop key versions {lost} or replace key versions {changed}")


class FileKeyringStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> Keyring:
        try:
            return self._read()
        except FileNotFoundError:
            return self._create()

    def save(self, keyring: Keyring) -> None:
        # Compare and replace under an exclusive lock, so that of two racing rotations the
        # second sees the first's new key and is refused instead of overwriting it.
        lock = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _refuse_shrinking(self._read(), keyring)
            os.replace(self._write_temporary(keyring), self.path)  # readers see old or new, whole
        finally:
            os.close(lock)  # releases the lock

    def _read(self) -> Keyring:
        with open(self.path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise InsecureKeyFile(f"{self.path} has mode {stat.filemode(mode)}; it must be 0600")
            try:
                document = json.load(file)
            except ValueError as error:
                raise KeyringUnavailable(f"{self.path} is not JSON: {error}") from None
        return _decode(document.get("keys", {}), str(self.path))

    def _create(self) -> Keyring:
        keyring = Keyring.generate()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._write_temporary(keyring)
        try:
            os.link(temporary, self.path)  # fails if another process created the file first
        except FileExistsError:
            return self._read()
        finally:
            os.unlink(temporary)
        return keyring

    def _write_temporary(self, keyring: Keyring) -> Path:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            json.dump({"keys": _encode(keyring)}, file)
            file.flush()
            os.fsync(file.fileno())
        return temporary


class VaultKeyringStore:
    """The keyring as one KV v2 secret: `{"v1": "<base64 key>", "v2": …}`."""

    def __init__(
        self, client: hvac.Client, path: str = DEFAULT_VAULT_PATH, mount_point: str = DEFAULT_VAULT_MOUNT
    ):
        self._kv = client.secrets.kv.v2
        self._path = path
        self._mount = mount_point
        self._version = 0  # the secret version last read, for check-and-set

    def load(self) -> Keyring:
        stored = self._read()
        if stored is None:
            keyring = Keyring.generate()
            self._write(keyring, cas=0)  # cas=0: only if nobody created it meanwhile
            return keyring
        keyring, self._version = stored
        return keyring

    def save(self, keyring: Keyring) -> None:
        """Write `keyring` over the version last loaded; refused if Vault has moved on since."""
        stored = self._read()
        if stored is not None:
            _refuse_shrinking(stored[0], keyring)
        self._write(keyring, cas=self._version)

    def _read(self) -> tuple[Keyring, int] | None:
        try:
            response = self._kv.read_secret_version(
                path=self._path, mount_point=self._mount, raise_on_deleted_version=True
            )
        except InvalidPath:
            return None
        except (VaultError, requests.RequestException) as error:
            raise KeyringUnavailable(f"Vault: {error}") from None
        where = f"Vault secret {self._mount}/{self._path}"
        return _decode(response["data"]["data"], where), int(response["data"]["metadata"]["version"])

    def _write(self, keyring: Keyring, cas: int) -> None:
        try:
            response = self._kv.create_or_update_secret(
                path=self._path, secret=_encode(keyring), cas=cas, mount_point=self._mount
            )
        except (VaultError, requests.RequestException) as error:
            raise KeyringUnavailable(f"Vault refused the keyring (version {cas}): {error}") from None
        self._version = int(response["data"]["version"])


def open_keyring_store(key_file: Path, environ: Mapping[str, str] = os.environ) -> KeyringStore:
    """Vault when VAULT_ADDR is set (token from VAULT_TOKEN), else the key file at `key_file`."""
    address = environ.get("VAULT_ADDR")
    if not address:
        return FileKeyringStore(key_file)
    client = hvac.Client(
        url=address, token=environ.get("VAULT_TOKEN"), namespace=environ.get("VAULT_NAMESPACE")
    )
    return VaultKeyringStore(
        client,
        path=environ.get("BILLING_VAULT_KEYRING_PATH", DEFAULT_VAULT_PATH),
        mount_point=environ.get("BILLING_VAULT_MOUNT", DEFAULT_VAULT_MOUNT),
    )


def rotate_keyring(store: KeyringStore) -> Keyring:
    """Add a new newest key and store it; values under older keys stay readable."""
    rotated = store.load().rotated()
    store.save(rotated)
    return rotated


class HasDataDir(Protocol):
    """The service's settings, or the part of them a Ray task takes (invoicing/config.py)."""

    @property
    def data_dir(self) -> Path: ...


def key_file(settings: HasDataDir) -> Path:
    return settings.data_dir / "field-keys.json"


def field_cipher(settings: HasDataDir) -> FieldCipher:
    """The cipher for sensitive columns: keys from Vault when VAULT_ADDR is set, else the data
    dir's key file, created (mode 0600) on first use."""
    return ReloadingCipher(open_keyring_store(key_file(settings)))


class ReloadingCipher(FieldCipher):
    """A cipher that rereads its store when it meets a key version it does not hold: after
    `billing keys rotate`, running processes read the new values without a restart."""

    def __init__(self, store: KeyringStore) -> None:
        super().__init__(store.load())
        self._store = store

    def decrypt(self, field: str, token: str) -> str:
        try:
            return super().decrypt(field, token)
        except UnknownKeyVersion:
            self._keyring = self._store.load()
            return super().decrypt(field, token)
