"""Which shard owns a tenant. Stable across processes and Python versions (no salted hash())."""

import zlib


def shard_of(tenant_id: str, shards: int) -> int:
    return zlib.crc32(tenant_id.encode()) % shards
