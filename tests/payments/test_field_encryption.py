"""AES-256-GCM field encryption, key rotation and the keyring stores."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import hvac
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.field_encryption import (
    FieldCipher,
    FieldDecryptionError,
    Keyring,
    UnknownKeyVersion,
    key_version,
)
from infra.keyring_store import (
    FileKeyringStore,
    InsecureKeyFile,
    KeyringUnavailable,
    VaultKeyringStore,
    open_keyring_store,
    rotate_keyring,
)
from payments.sandbox.vault_server import VaultServer

KEYRING = Keyring.generate()


@given(field=st.text(min_size=1, max_size=40), plaintext=st.text(max_size=500))
def test_round_trip(field: str, plaintext: str) -> None:
    cipher = FieldCipher(KEYRING)
    token = cipher.encrypt(field, plaintext)
    assert token.startswith("v1:")
    assert cipher.decrypt(field, token) == plaintext


def test_the_value_is_tagged_and_laid_out_as_documented() -> None:
    token = FieldCipher(KEYRING).encrypt("iban", "DE89370400440532013000")
    version, _, encoded = token.partition(":")
    blob = base64.b64decode(encoded)
    assert version == "v1"
    assert len(blob) == 12 + len("DE89370400440532013000") + 16  # nonce, ciphertext, GCM tag
    assert "DE89" not in token


def test_the_same_value_encrypts_differently_each_time() -> None:
    cipher = FieldCipher(KEYRING)
    assert cipher.encrypt("iban", "DE89") != cipher.encrypt("iban", "DE89")


def test_a_value_moved_to_another_field_does_not_decrypt() -> None:
    cipher = FieldCipher(KEYRING)
    with pytest.raises(FieldDecryptionError, match="tax_id"):
        cipher.decrypt("tax_id", cipher.encrypt("iban", "DE89370400440532013000"))


@given(position=st.integers(min_value=0, max_value=40))
def test_any_tampered_byte_is_detected(position: int) -> None:
    cipher = FieldCipher(KEYRING)
    version, _, encoded = cipher.encrypt("iban", "DE89370400440532013000").partition(":")
    blob = bytearray(base64.b64decode(encoded))
    blob[position % len(blob)] ^= 0x01
    with pytest.raises(FieldDecryptionError):
        cipher.decrypt("iban", f"{version}:{base64.b64encode(bytes(blob)).decode()}")


@pytest.mark.parametrize(
    "token", ["", "plain text", "v1:not base64!", "v1:" + base64.b64encode(b"short").decode(), "x1:AAAA"]
)
def test_malformed_values_are_refused(token: str) -> None:
    with pytest.raises(FieldDecryptionError):
        FieldCipher(KEYRING).decrypt("iban", token)


def test_rotation_keeps_every_old_value_readable_and_reencrypts_to_the_newest_key() -> None:
    keyring = Keyring.generate()
    values = {}
    for generation in range(3):  # values written under v1, v2 and v3
        cipher = FieldCipher(keyring)
        values[f"secret-{generation}"] = cipher.encrypt("iban", f"secret-{generation}")
        keyring = keyring.rotated()
    cipher = FieldCipher(keyring)

    assert keyring.current_version == 4
    assert sorted(key_version(token) for token in values.values()) == [1, 2, 3]
    for plaintext, token in values.items():
        assert cipher.decrypt("iban", token) == plaintext
        moved = cipher.reencrypt("iban", token)
        assert key_version(moved) == 4 and cipher.decrypt("iban", moved) == plaintext
        assert cipher.reencrypt("iban", moved) == moved  # already current: untouched


def test_a_value_under_a_key_the_keyring_lacks_is_reported_as_such() -> None:
    newer = KEYRING.rotated()
    token = FieldCipher(newer).encrypt("iban", "x")
    with pytest.raises(UnknownKeyVersion, match="v2"):
        FieldCipher(KEYRING).decrypt("iban", token)


def test_keys_must_be_256_bits() -> None:
    with pytest.raises(ValueError):
        Keyring({1: os.urandom(16)})


# -- key file --------------------------------------------------------------------------------


def test_the_key_file_is_created_with_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "field-keys.json"
    previous = os.umask(0o000)
    try:
        keyring = FileKeyringStore(path).load()
    finally:
        os.umask(previous)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FileKeyringStore(path).load() == keyring  # the same keys next time
    assert list(tmp_path.joinpath("keys").iterdir()) == [path]  # no temporary left behind


def test_rotation_in_the_key_file_keeps_mode_and_old_values(tmp_path: Path) -> None:
    store = FileKeyringStore(tmp_path / "field-keys.json")
    token = FieldCipher(store.load()).encrypt("bank_account", "NL91ABNA0417164300")

    rotated = rotate_keyring(store)
    reloaded = FileKeyringStore(tmp_path / "field-keys.json").load()

    assert reloaded == rotated and rotated.current_version == 2
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert FieldCipher(reloaded).decrypt("bank_account", token) == "NL91ABNA0417164300"


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    store = FileKeyringStore(tmp_path / "field-keys.json")
    store.load()
    store.path.chmod(0o644)
    with pytest.raises(InsecureKeyFile):
        store.load()


def test_a_rotation_from_a_stale_copy_cannot_overwrite_a_newer_key(tmp_path: Path) -> None:
    store = FileKeyringStore(tmp_path / "field-keys.json")
    stale = store.load()
    winner = rotate_keyring(FileKeyringStore(store.path))
    token = FieldCipher(winner).encrypt("iban", "DE89370400440532013000")

    with pytest.raises(KeyringUnavailable, match="replace key versions \\[2\\]"):
        store.save(stale.rotated())

    assert FieldCipher(store.load()).decrypt("iban", token) == "DE89370400440532013000"


def test_saving_a_keyring_that_drops_a_key_is_refused(tmp_path: Path) -> None:
    store = FileKeyringStore(tmp_path / "field-keys.json")
    rotate_keyring(store)
    with pytest.raises(KeyringUnavailable, match="drop"):
        store.save(Keyring.generate())


# -- Vault -----------------------------------------------------------------------------------


def vault_env(server: VaultServer, path: str) -> dict[str, str]:
    return {"VAULT_ADDR": server.url, "VAULT_TOKEN": server.token, "BILLING_VAULT_KEYRING_PATH": path}


def test_with_vault_addr_the_keyring_lives_in_vault_kv_v2(vault_server: VaultServer, tmp_path: Path) -> None:
    key_file = tmp_path / "unused.json"
    store = open_keyring_store(key_file, vault_env(vault_server, "billing/test-a"))

    keyring = store.load()
    token = FieldCipher(keyring).encrypt("iban", "DE89370400440532013000")
    rotated = rotate_keyring(store)
    again = open_keyring_store(key_file, vault_env(vault_server, "billing/test-a")).load()

    assert isinstance(store, VaultKeyringStore) and not key_file.exists()
    assert again == rotated and rotated.current_version == 2
    assert FieldCipher(again).decrypt("iban", token) == "DE89370400440532013000"
    stored = vault_server.secrets["billing/test-a"]
    assert [version["metadata"]["version"] for version in stored] == [1, 2]
    assert sorted(stored[-1]["data"]) == ["v1", "v2"]


def test_without_vault_addr_the_key_file_is_used(tmp_path: Path) -> None:
    assert isinstance(open_keyring_store(tmp_path / "k.json", {}), FileKeyringStore)


def test_two_racing_rotations_in_vault_cannot_lose_a_key(vault_server: VaultServer) -> None:
    env = vault_env(vault_server, "billing/test-race")
    first = VaultKeyringStore(
        hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"]), "billing/test-race"
    )
    second = VaultKeyringStore(
        hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"]), "billing/test-race"
    )
    stale = first.load()
    second.load()
    winner = rotate_keyring(second)

    with pytest.raises(KeyringUnavailable):
        first.save(stale.rotated())

    assert first.load() == winner


def test_a_vault_refusing_our_token_is_keyring_unavailable(vault_server: VaultServer) -> None:
    store = VaultKeyringStore(hvac.Client(url=vault_server.url, token="wrong"), "billing/test-b")
    with pytest.raises(KeyringUnavailable, match="permission denied"):
        store.load()
