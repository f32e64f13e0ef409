"""What the invoice use cases return: frozen records, read from the rows once, at the edge of the
store, so nothing above the use cases (the routes, the invoice run's results) sees a database row.
The twin of payments/records.py."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from invoicing.lifecycle import InvoiceStatus
from pricing.periods import Period


@dataclass(frozen=True, slots=True)
class Invoice:
    """One tenant's invoice for one period, as it stands: a draft, or numbered and frozen."""

    invoice_id: uuid.UUID
    tenant_id: str
    period: Period
    status: InvoiceStatus
    currency: str
    subtotal: Decimal  # major units, after credits, before tax
    tax: Decimal
    total: Decimal
    issuer: str
    number: str | None  # None while a draft
    # The composed document as stored (`InvoiceDraft.to_json` and the pricing terms): its shape is
    # composition's, and the API shows it as it is (design.md §4), so it is not typed further here.
    document: Mapping[str, Any]
    created_at: datetime
    finalized_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> Invoice:
        return cls(
            invoice_id=row.invoice_id,
            tenant_id=row.tenant_id,
            period=Period(row.period_start, row.period_end),
            status=InvoiceStatus(row.status),
            currency=row.currency,
            subtotal=Decimal(row.subtotal),
            tax=Decimal(row.tax),
            total=Decimal(row.total),
            issuer=row.issuer,
            number=row.number,
            document=dict(row.document),  # a copy: the record does not share the row's JSON
            created_at=row.created_at,
            finalized_at=row.finalized_at,
        )


@dataclass(frozen=True, slots=True)
class CreditNote:
    """A credit note against a finalized invoice: what it takes back, net and tax, major units."""

    credit_note_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    invoice_number: str  # the credited invoice's number, as the note states it
    currency: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    tax_rate: Decimal  # percent: the credited invoice's own rate
    reason: str
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, row: Any) -> CreditNote:
        return cls(
            credit_note_id=row.credit_note_id,
            invoice_id=row.invoice_id,
            number=row.number,
            invoice_number=row.document["invoice_number"],
            currency=row.currency,
            subtotal=Decimal(row.subtotal),
            tax=Decimal(row.tax),
            total=Decimal(row.total),
            tax_rate=Decimal(row.document["tax_rate"]),  # kept as a plain decimal string
            reason=row.reason,
            created_at=row.created_at,
            created_by=row.created_by,
        )


@dataclass(frozen=True, slots=True)
class InvoiceFile:
    """An invoice rendered as a file (Factur-X PDF, CII or UBL XML), with the invoice it shows."""

    invoice: Invoice
    content: bytes
    paid_copy: bool  # the PDF shows the invoice paid, rather than as it was finalized


@dataclass(frozen=True, slots=True)
class CreditNoteFile:
    """A credit note rendered as a file, with the invoice it credits (whose tenant it is)."""

    note: CreditNote
    invoice: Invoice
    content: bytes
