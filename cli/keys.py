"""`billing keys rotate`: a new field-encryption key version, then every sealed column re-encrypted
under it. Old versions stay in the keyring, so a value not yet re-encrypted stays readable."""

from __future__ import annotations

import argparse
import asyncio
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["rotate", "status"], help="rotate: new key and re-encrypt")


def run(args: argparse.Namespace) -> int:
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
    migrate(settings.database_url)

    async def reseal_all() -> dict[str, int]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            return await reseal(engine, field_cipher(settings))
        finally:
            await engine.dispose()

    counts = asyncio.run(reseal_all()) if args.action == "rotate" else {}
    for field, count in counts.items():
        print(f"  {field}: {count} re-encrypted")
    print(f"key versions: {sorted(store.load().keys)}", file=sys.stdout)
    return 0
