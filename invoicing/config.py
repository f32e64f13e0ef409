"""What invoicing reads of the settings.

An invoice run carries it to every one of its Ray tasks (invoicing/run.py), and Ray keeps a task's
arguments in its object store and may show them in its dashboard and logs: so it is a small record
without the payment provider or signing secrets the whole `Settings` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.settings import RedisConnection, Settings


@dataclass(frozen=True)
class InvoicingConfig:
    database_url: str
    redis: RedisConnection  # live usage and the pricing cache
    redis_prefix: str
    shards: int  # the count to assume until the recorded layout is read
    data_dir: Path  # the stored PDFs, and the key file that decrypts buyers' VAT ids
    issuer: str  # the prefix of invoice numbers
    seller_country: str  # whose tax rules apply
    seller_file: Path | None  # None: invoicing/seller.json
    fx_source: str | None  # which loaded rate table converts; None: the ECB's
    late_window_s: int  # how late usage may still arrive for an hour

    @classmethod
    def of(cls, settings: Settings) -> InvoicingConfig:
        return cls(
            database_url=settings.resolved_database_url(),
            redis=settings.redis_connection(),
            redis_prefix=settings.redis_prefix,
            shards=settings.shards,
            data_dir=settings.data_dir,
            issuer=settings.issuer,
            seller_country=settings.seller_country,
            seller_file=settings.seller_file,
            fx_source=settings.fx_source,
            late_window_s=settings.late_window_s,
        )
