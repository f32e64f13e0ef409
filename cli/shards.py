"""`billing shards status | set N`: the usage shards of a running deployment, and changing their
number without stopping ingest (see actors/resharding.py). Connects to the cluster running the
shard actors: RAY_ADDRESS, or the local one (`billing up`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "set"])
    parser.add_argument("count", nargs="?", type=int, help="set: the new number of shards")


def run(args: argparse.Namespace) -> int:
    if args.action == "set" and (args.count is None or args.count < 1):
        print("billing shards set: COUNT: a whole number of shards, at least 1", file=sys.stderr)
        return 2
    import ray

    from actors.resharding import change_shard_count
    from actors.usage_shard import NAMESPACE
    from infra.embedded import resolve
    from infra.settings import Settings

    settings = resolve(Settings.from_env())
    try:
        if not ray.is_initialized():  # (in a test, the session is the driver already)
            ray.init(address=settings.ray_address or "auto", namespace=NAMESPACE, log_to_driver=False)
    except ConnectionError as error:
        print(f"billing shards: no running Ray cluster to connect to ({error})", file=sys.stderr)
        return 1
    if args.action == "set":
        layout = asyncio.run(change_shard_count(settings, args.count, report=print))
        print(f"{settings.redis_prefix}: {layout.shards} shards, generation {layout.generation}")
    return _print_status(settings)


def _print_status(settings: Settings) -> int:
    import ray

    from actors.usage_shard import shard_actor, status
    from actors.usage_store import recorded_layout

    current = asyncio.run(recorded_layout(settings.resolved_database_url(), settings.redis_prefix))
    changing = f", changing to {current.target}" if current.changing else ""
    print(f"layout: {current.shards} shards, generation {current.generation}{changing}")
    for shard in ray.get([status(shard_actor(s, settings)) for s in range(current.shards)]):
        print(
            f"  shard {shard['shard']}: stored up to {shard['applied']}, read up to "
            f"{shard['read_up_to']}, {shard['unflushed_events']} events not yet stored"
        )
    return 0
