"""PostgreSQL connections: URL normalisation, the async engine, and schema migration."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def async_url(url: str) -> str:
    """Any PostgreSQL URL (postgres://, postgresql://, postgresql+psycopg://) as an asyncpg one."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got scheme {parts.scheme!r}")
    # asyncpg spells libpq's sslmode as ssl.
    query = [("ssl" if key == "sslmode" else key, value) for key, value in parse_qsl(parts.query)]
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), ""))


def create_engine(url: str, pool_size: int = 5) -> AsyncEngine:
    # JIT compilation pays off for long analytical scans, not for this service's short queries:
    # it once spent 57 ms compiling a query that ran in 2 ms.
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"jit": "off"}},
    )


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision`. Synchronous: call it before any event loop runs."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    command.upgrade(config, revision)
