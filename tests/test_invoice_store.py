"""The database's own guarantees for invoices: one per tenant and period, a finalized invoice
never changes, and numbers have no gaps, also under concurrent finalizations."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra import invoice_store
from infra.database import create_engine, migrate
from infra.schema import tenants

# A period of its own: the invoice-run tests invoice every tenant for last month.
PERIOD = datetime(2019, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def database_url(settings) -> str:
    migrate(settings.database_url)
    return settings.database_url


async def _tenant(conn, tenant_id: str) -> None:
    await conn.execute(
        tenants.insert().values(
            tenant_id=tenant_id, name=tenant_id, tier="shared", currency="usd", country="US"
        )
    )


async def _draft(conn, tenant_id: str, start: datetime, issuer: str = "ENIS") -> uuid.UUID:
    invoice_id, _ = await invoice_store.insert_draft(
        conn,
        invoice_id=uuid.uuid4(),
        tenant_id=tenant_id,
        period_start=start,
        period_end=start + timedelta(days=31),
        currency="usd",
        subtotal=Decimal("10.00"),
        tax=Decimal("1.90"),
        issuer=issuer,
        document={"lines": 1},
        lines=[
            {
                "kind": "usage",
                "meter": "cpu_seconds",
                "description": "CPU",
                "quantity": Decimal(200),
                "unit": "CPU-hour",
                "unit_price": Decimal("0.05"),
                "amount": Decimal("10.00"),
            }
        ],
    )
    return invoice_id


def test_one_invoice_per_tenant_and_period(database_url):
    async def run():
        engine = create_engine(database_url)
        tenant = f"once-{uuid.uuid4().hex[:6]}"
        async with engine.begin() as conn:
            await _tenant(conn, tenant)
            first = await _draft(conn, tenant, PERIOD)
            again, created = await invoice_store.insert_draft(
                conn,
                invoice_id=uuid.uuid4(),
                tenant_id=tenant,
                period_start=PERIOD,
                period_end=PERIOD + timedelta(days=31),
                currency="usd",
                subtotal=Decimal(99),
                tax=Decimal(0),
                issuer="ENIS",
                document={},
                lines=[],
            )
        await engine.dispose()
        return first, again, created

    first, again, created = asyncio.run(run())
    assert (again, created) == (first, False)


def test_a_finalized_invoice_is_refused_any_change_by_the_database(database_url):
    async def attempt(engine, statement: str, invoice_id) -> str | None:
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement), {"id": invoice_id})
        except DBAPIError as error:
            return str(error.orig)
        return None

    async def run():
        engine = create_engine(database_url)
        tenant = f"frozen-{uuid.uuid4().hex[:6]}"
        async with engine.begin() as conn:
            await _tenant(conn, tenant)
            invoice_id = await _draft(conn, tenant, PERIOD)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE invoices SET subtotal = 11, total = 12.90 WHERE invoice_id = :id"),
                {"id": invoice_id},
            )  # a draft may still change
            finalized = await invoice_store.finalize(conn, invoice_id, actor="test")
        refusals = [
            await attempt(
                engine,
                "UPDATE invoices SET total = total + 1, subtotal = subtotal + 1 WHERE invoice_id = :id",
                invoice_id,
            ),
            await attempt(engine, "UPDATE invoice_lines SET amount = 0 WHERE invoice_id = :id", invoice_id),
            await attempt(engine, "DELETE FROM invoice_lines WHERE invoice_id = :id", invoice_id),
            await attempt(engine, "DELETE FROM invoices WHERE invoice_id = :id", invoice_id),
            await attempt(
                engine,
                "UPDATE invoices SET status = 'draft', number = NULL WHERE invoice_id = :id",
                invoice_id,
            ),
        ]
        paid = await attempt(engine, "UPDATE invoices SET status = 'paid' WHERE invoice_id = :id", invoice_id)
        async with engine.connect() as conn:
            again = await invoice_store.finalize(conn, invoice_id, actor="test")
            total = await conn.scalar(
                text("SELECT total FROM invoices WHERE invoice_id = :id"), {"id": invoice_id}
            )
        await engine.dispose()
        return finalized, again, refusals, paid, total

    finalized, again, refusals, paid, total = asyncio.run(run())
    assert all(refusals), refusals
    assert "never changes" in refusals[0] and "never change" in refusals[1]
    assert paid is None  # the status may still move on: finalized -> paid
    assert again == finalized and total == Decimal("12.90")


def test_numbers_are_gapless_under_eight_concurrent_runs(database_url):
    issuer = f"T{uuid.uuid4().hex[:6].upper()}"

    async def run_worker(engine, worker: int) -> int:
        committed = 0
        for n in range(12):
            tenant = f"gap-{issuer}-{worker}-{n}"
            try:
                async with engine.begin() as conn:
                    await _tenant(conn, tenant)
                    invoice_id = await _draft(conn, tenant, PERIOD, issuer)
                    await invoice_store.finalize(conn, invoice_id, actor="test")
                    if n % 3 == 2:  # a run that dies after taking its number: the number comes back
                        raise RuntimeError("run killed")
                committed += 1
            except RuntimeError:
                pass
        return committed

    async def run():
        engine = create_engine(database_url, pool_size=8)
        committed = sum(await asyncio.gather(*(run_worker(engine, w) for w in range(8))))
        async with engine.connect() as conn:
            numbers = (
                (await conn.execute(text("SELECT number FROM invoices WHERE issuer = :i"), {"i": issuer}))
                .scalars()
                .all()
            )
            year = await conn.scalar(text("SELECT extract(year FROM now())::int"))
        await engine.dispose()
        return committed, numbers, year

    committed, numbers, year = asyncio.run(run())
    assert committed == 8 * 8
    assert sorted(numbers) == [invoice_store.format_number(issuer, year, n) for n in range(1, committed + 1)]
