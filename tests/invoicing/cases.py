"""The invoice kinds issue 14 says must validate as EN 16931, built as production builds them:
a rating from the default catalog (`rate_period`), composed (`compose_invoice`), stored as a
document (`InvoiceDraft.to_json` plus what `invoicing.service.invoice_document` adds).

The exchange rates are made-up sample data in the ECB layout, not published rates. The clock is
fixed: every case is March 2025, finalized on 1 April 2025.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from invoicing.composition import InvoiceLine, compose_invoice
from invoicing.document import InvoiceDocument, build_credit_note, build_invoice
from invoicing.late_usage import BilledPeriod, late_usage_line
from invoicing.seller import Seller, load_seller, seller_from_json
from payments.wire import wire_reference
from pricing.catalog import load_default_catalog
from pricing.credits import CreditLedger, Grant, GrantKind
from pricing.fx import RateTable
from pricing.money import Currency, Money
from pricing.periods import Period
from pricing.plans import Tier
from pricing.rating import rate_period
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage

MARCH_2025 = Period.calendar_month(2025, 3)
FINALIZED = datetime(2025, 4, 1, 9, 30, tzinfo=UTC)
RATES = RateTable.from_ecb_csv(
    "Date,USD,JPY,KWD,\n2025-03-31,1.0811,161.23,0.3329,\n2025-03-28,1.0795,162.01,0.3322,\n"
)
USD, EUR = Currency("usd"), Currency("eur")
VALID_FR_VAT_ID = "FR40303265045"
VALID_DE_VAT_ID = "DE136695976"


@dataclass(frozen=True)
class Case:
    name: str
    tier: Tier
    currency: str = "eur"
    country: str = "DE"
    region: str | None = None
    vat_id: str | None = None
    locale: str = "de_DE"
    usage: dict[str, str] = field(default_factory=lambda: {"cpu_seconds": "3600000", "memory_gb_hours": "1234.5"})
    grant: int = 0  # prepaid credit, minor units of the invoice currency
    seller_country: str = "DE"
    late: bool = False
    licence: bool = False
    buyer_reference: str | None = None
    address: dict[str, str] = field(
        default_factory=lambda: {"line1": "Hauptstraße 5", "postal_code": "80331", "city": "München",
                                 "country": "DE"}
    )


CASES = [
    Case("de-domestic-b2c", Tier.SHARED),
    Case("de-fr-reverse-charge", Tier.SHARED, country="FR", vat_id=VALID_FR_VAT_ID, locale="fr_FR",
         address={"line1": "12 rue de la Paix", "postal_code": "75002", "city": "Paris", "country": "FR"}),
    Case("de-es-oss", Tier.ZERO, country="ES", locale="es_ES", usage={"executions": "12345", "network_gb": "3.14"},
         address={"line1": "Calle Mayor 1", "postal_code": "28013", "city": "Madrid", "country": "ES"}),
    Case("us-sales-tax", Tier.SHARED, currency="usd", country="US", region="TX", locale="en_US",
         seller_country="US",
         address={"line1": "100 Congress Ave", "postal_code": "78701", "city": "Austin", "region": "TX",
                  "country": "US"}),
    Case("jpy", Tier.SHARED, currency="jpy", country="JP", locale="en",
         address={"line1": "1-1 Marunouchi", "postal_code": "100-0005", "city": "Tokyo", "country": "JP"}),
    Case("kwd", Tier.SHARED, currency="kwd", country="KW", locale="en",
         address={"line1": "Street 10", "postal_code": "13001", "city": "Kuwait City", "country": "KW"}),
    Case("credits-applied", Tier.SHARED, grant=2000),
    Case("late-usage", Tier.SHARED, late=True),
    Case("lite-with-quota", Tier.LITE, locale="es_ES", usage={"cpu_seconds": "1992578", "memory_gb_hours": "3000"}),
    Case("enterprise-true-up", Tier.ENTERPRISE, buyer_reference="991-12345-67"),
    Case("airgapped-licence", Tier.AIRGAPPED, licence=True, usage={}),
]


def stored_invoice(case: Case, number: str = "ENIS-2025-000042") -> tuple[dict[str, object], dict[str, object]]:
    """(invoice document as stored and read back, buyer tenant record) for `case`."""
    if case.licence:
        terms = TenantPricing.from_json(
            {"tenant_id": "t-" + case.name, "tier": "airgapped", "contracts": [],
             "licence": {"licence_id": "lic-7", "starts": "2025-03-15T00:00:00Z"}}
        )
    else:
        terms = TenantPricing("t-" + case.name, case.tier)
    hour = MARCH_2025.start.replace(day=5, hour=10)
    rows = [HourlyUsage(hour, **{m: Decimal(q) for m, q in case.usage.items()})] if case.usage else []
    rating = rate_period(rows, terms, load_default_catalog(), MARCH_2025)
    currency = Currency(case.currency)
    fx = None if currency == USD else RATES.rate(USD, currency, date(2025, 3, 31))
    ledger = CreditLedger(terms.tenant_id, currency)
    if case.grant:
        ledger = ledger.append(Grant("g1", datetime(2025, 1, 1, tzinfo=UTC), Decimal(case.grant),
                                     GrantKind.PREPAID))
    adjustments: tuple[InvoiceLine, ...] = ()
    if case.late:
        february = Period.calendar_month(2025, 2)
        billed = BilledPeriod("x", "ENIS-2025-000007", february, {"cpu_seconds": Decimal(0)},
                              Money.zero(currency))
        late_rating = rate_period([HourlyUsage(february.start, cpu_seconds=Decimal(7200))], terms,
                                  load_default_catalog(), february)
        from invoicing.composition import invoice_lines

        lines_now = invoice_lines(late_rating, fx)
        adjustments = (late_usage_line(billed, {"cpu_seconds": Decimal(7200)}, lines_now),)
    eu_seller = case.seller_country == "DE"
    tax_fx = RATES.rate(currency, EUR, date(2025, 3, 31)) if eu_seller and currency != EUR else None
    draft, _ = compose_invoice(
        rating,
        billing_currency=currency,
        fx=fx,
        ledger=ledger,
        at=MARCH_2025.end,
        reference="inv-1",
        seller_country=case.seller_country,
        buyer_country=case.country,
        buyer_vat_id=case.vat_id,
        buyer_region=case.region,
        tax_date=date(2025, 3, 31),
        usage={},
        adjustments=adjustments,
        tax_fx=tax_fx,
    )
    invoice = draft.to_json() | {
        "invoice_id": "00000000-0000-0000-0000-000000000042",
        "number": number,
        "status": "finalized",
        "tenant_id": terms.tenant_id,
        "period_start": MARCH_2025.start.isoformat(),
        "period_end": MARCH_2025.end.isoformat(),
        "issued_at": FINALIZED.isoformat(),
    }
    buyer: dict[str, object] = {
        "tenant_id": terms.tenant_id,
        "name": f"Kunde {case.name} GmbH",
        "tier": case.tier.value,
        "currency": case.currency,
        "country": case.country,
        "region": case.region,
        "vat_id": case.vat_id,
        "locale": case.locale,
        "address": case.address,
        "email": "ap@example.com",
        "payment_terms_days": None,
        "buyer_reference": case.buyer_reference,
    }
    return invoice, buyer


US_SELLER = {
    "legal_name": "ENIS Cloud Platform Inc.",
    "address": {"line1": "500 W 2nd St", "postal_code": "78701", "city": "Austin", "region": "TX",
                "country": "US"},
    "tax_number": "12-3456789",
    "registration": "Delaware 7654321",
    "email": "billing@enis.example",
    "bank": {"account_holder": "ENIS Cloud Platform Inc.", "iban": "DE89370400440532013000"},
    "payment_terms_days": 30,
}


def _seller(case: Case) -> Seller:
    return seller_from_json(US_SELLER) if case.seller_country == "US" else load_seller()


def documents() -> Iterator[tuple[str, InvoiceDocument, str]]:
    """(name, document, locale) of every invoice kind of CASES and of a credit note."""
    for case in CASES:
        invoice, buyer = stored_invoice(case)
        doc = build_invoice(invoice, buyer, _seller(case), reference=wire_reference(str(invoice["number"])))
        yield case.name, doc, case.locale
    invoice, buyer = stored_invoice(CASES[0])
    note = {
        "number": "ENIS-CN-2025-000001",
        "currency": "eur",
        "subtotal": "10.00",
        "tax": "1.90",
        "total": "11.90",
        "reason": "Ausfall am 3. März",
        "created_at": "2025-04-10T10:00:00+00:00",
    }
    yield "credit-note", build_credit_note(note, invoice, buyer, load_seller()), "de_DE"
