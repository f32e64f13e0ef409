"""What the API shows of a stored invoice (`invoicing.service.invoice_document`)."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from invoicing.lifecycle import InvoiceStatus
from invoicing.records import Invoice
from invoicing.service import invoice_document
from pricing.periods import Period


def _invoice(document: dict[str, object]) -> Invoice:
    return Invoice(
        invoice_id=uuid.uuid4(),
        tenant_id="t-1",
        period=Period.calendar_month(2026, 10),
        status=InvoiceStatus.PAID,
        currency="EUR",
        subtotal=Decimal("100.00"),
        tax=Decimal("19.00"),
        total=Decimal("119.00"),
        issuer="SYNTH",
        number="SYNTH-t-1-202610",
        document=document,
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        finalized_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def test_an_invoice_stored_without_a_composed_document_still_shows_its_amounts() -> None:
    # History imported by the forecasting demo carries totals only; the portal showed "—".
    view = invoice_document(_invoice({}))
    assert (view["currency"], view["subtotal"], view["tax"], view["total"]) == (
        "EUR",
        "100.00",
        "19.00",
        "119.00",
    )
    assert view["period_start"] == "2026-10-01T00:00:00+00:00"


def test_a_composed_document_is_shown_as_composed() -> None:
    view = invoice_document(_invoice({"total": "119.00", "lines": [], "currency": "EUR"}))
    assert view["total"] == "119.00" and view["lines"] == []
