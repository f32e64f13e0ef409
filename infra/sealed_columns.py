"""The columns kept encrypted at rest, and re-sealing them under the newest key.

Each value is AES-256-GCM with its column's name ("table.column") as associated data, so a
ciphertext copied into another column does not decrypt. `reseal` re-encrypts every value not yet
under the current key version (and seals any legacy value still in clear), one row at a time
under its row lock, so it can run while the service does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.field_encryption import FieldCipher, is_token
from infra.schema import bank_credits, payment_methods, tenants


@dataclass(frozen=True)
class SealedColumn:
    table: Table
    column: str

    @property
    def field(self) -> str:
        return f"{self.table.name}.{self.column}"


VAT_ID = SealedColumn(tenants, "vat_id")
CUSTOMER_REF = SealedColumn(payment_methods, "customer_ref")
METHOD_REF = SealedColumn(payment_methods, "method_ref")
DEBTOR_REF = SealedColumn(bank_credits, "debtor_ref")
SEALED = (VAT_ID, CUSTOMER_REF, METHOD_REF, DEBTOR_REF)


async def reseal(engine: AsyncEngine, cipher: FieldCipher) -> dict[str, int]:
    """Re-encrypt what is not under the current key; how many values per column."""
    counts = {}
    for sealed in SEALED:
        keys = list(sealed.table.primary_key.columns)
        column = sealed.table.c[sealed.column]
        counts[sealed.field] = 0
        async with engine.connect() as conn:
            rows = list(await conn.execute(select(*keys, column).where(column.is_not(None))))
        for row in rows:
            value = row[-1]
            if is_token(value) and not cipher.needs_reencryption(value):
                continue
            fresh = (
                cipher.reencrypt(sealed.field, value)
                if is_token(value)
                else cipher.encrypt(sealed.field, value)
            )
            match = [key == row[i] for i, key in enumerate(keys)]
            async with engine.begin() as conn:
                # Only if unchanged meanwhile: a concurrent writer's newer value wins.
                await conn.execute(
                    update(sealed.table).where(*match, column == value).values({sealed.column: fresh})
                )
            counts[sealed.field] += 1
    return counts
