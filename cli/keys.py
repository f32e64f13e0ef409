"""`billing keys rotate`: a new field-encryption key version, then every sealed column re-encrypted
under it. Old versions stay in the keyring, so a value not yet re-encrypted stays readable."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["rotate", "status"], help="rotate: new key and re-encrypt")


def run(args: argparse.Namespace) -> int:
    from infra import audit_store
    from infra.database import create_engine, migrate
    from infra.embedded import resolve
    from infra.keyring_store import field_cipher, key_file, open_keyring_store, rotate_keyring
    from infra.sealed_columns import reseal
    from infra.settings import Settings

    settings = resolve(Settings.from_env())
    store = open_keyring_store(key_file(settings))
    if args.action == "rotate":
        keyring = rotate_keyring(store)
        print(f"key version {keyring.current_version} is now current")
    migrate(settings.resolved_database_url())

    async def record_rotation(engine: AsyncEngine) -> None:
        # The keyring is not in the database, so the entry follows the rotation (before the
        # re-encryption, which may take long): the log shows it even if re-encryption stops.
        versions = sorted(keyring.keys)
        async with engine.begin() as conn:
            await audit_store.record(
                conn,
                audit_store.cli_actor(),
                "keys.rotated",
                "keyring",
                "field-encryption",
                None,
                {"current_version": versions[-2], "versions": versions[:-1]},
                {"current_version": keyring.current_version, "versions": versions},
            )

    async def reseal_all() -> dict[str, int]:
        engine = create_engine(settings.resolved_database_url(), pool_size=1)
        try:
            await record_rotation(engine)
            return await reseal(engine, field_cipher(settings))
        finally:
            await engine.dispose()

    counts = asyncio.run(reseal_all()) if args.action == "rotate" else {}
    for field, count in counts.items():
        print(f"  {field}: {count} re-encrypted")
    print(f"key versions: {sorted(store.load().keys)}", file=sys.stdout)
    return 0
