"""Issue 14's findings 1-9, one test each (7 and 8 are in test_pdf.py: the zero invoice, the card
and PayPal instructions and the paid copy). Invoices are composed from the default catalog with a
fixed clock (tests/invoicing/cases.py) and read back as the PDF's text or its HTML."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stdout
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser

import pytest

from invoicing.document import build_invoice
from invoicing.i18n import Localizer, translations
from invoicing.messages import msgids
from invoicing.pdf import render_html
from invoicing.seller import load_seller
from pricing.plans import Tier
from tests.invoicing.cases import CASES, Case, stored_invoice

BY_NAME = {case.name: case for case in CASES}
# A month of uneven usage: 996,851 CPU-seconds is 276.9030555… CPU-hours.
UNEVEN = {"cpu_seconds": "996851", "memory_gb_hours": "1234.5678"}


def _doc(case: Case, **buyer_changes: object):
    invoice, buyer = stored_invoice(case)
    return build_invoice(invoice, buyer | buyer_changes, load_seller(), reference="RF20ENIS2025000042")


def _text(case: Case, locale: str | None = None, **buyer_changes: object) -> str:
    html = render_html(_doc(case, **buyer_changes), Localizer(locale or case.locale))
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).replace("\u00a0", " ").replace("\u202f", " ")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = False

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._skip = tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -int(exponent))


@pytest.mark.parametrize("tier", [Tier.SHARED, Tier.LITE, Tier.ENTERPRISE])
def test_finding_1_quantities_have_a_precision_that_fits_the_meter(tier: Tier) -> None:
    doc = _doc(Case("uneven", tier, usage=UNEVEN))
    for line in doc.lines:
        assert _places(line.quantity) <= 6, line
        if line.unit.msgid == "CPU-hour":
            assert _places(line.quantity) <= 4
    text = _text(Case("uneven", tier, usage=UNEVEN), "de_DE")
    assert not re.search(r"\d[.,]\d{7,}", text), "a number with 7 or more decimals is printed"
    assert "276,9031" in text  # CPU-hours to four places, German decimals


def test_finding_2_unit_prices_have_at_most_six_decimals() -> None:
    for case in CASES:
        for line in _doc(case).lines:
            assert _places(line.unit_price) <= 6, (case.name, line)
            assert line.unit_price >= 0  # EN 16931 BR-27: the sign is on the quantity


@pytest.mark.parametrize("case", CASES + [Case("uneven-lite", Tier.LITE, usage=UNEVEN)], ids=lambda c: c.name)
def test_finding_3_every_line_is_quantity_times_unit_price(case: Case) -> None:
    doc = _doc(case)
    step = Decimal(1).scaleb(-doc.digits)
    for line in doc.lines:
        assert (line.quantity * line.unit_price).quantize(step, rounding=ROUND_HALF_UP) == line.amount, line
    assert sum((line.amount for line in doc.lines), Decimal(0)) == doc.line_total


def test_finding_3_the_included_quota_is_a_line_of_its_own() -> None:
    doc = _doc(BY_NAME["lite-with-quota"])
    included = [line for line in doc.lines if line.note is not None and line.note.msgid.startswith("Included")]
    assert included and all(line.amount == 0 and line.unit_price == 0 for line in included)
    assert any(line.quantity == Decimal("553.4939") for line in included)  # the CPU-hours it covered
    words = Localizer("es_ES")
    assert "Incluido en el plan Lite" in [words.text(line.note) for line in included if line.note]


def test_finding_4_due_date_and_payment_terms_default_and_per_tenant() -> None:
    text = _text(BY_NAME["de-domestic-b2c"])
    assert "Fällig am 15. April 2025" in text  # issued 1 April, 14 days
    assert "Zahlbar innerhalb von 14 Tagen ab Rechnungsdatum ohne Abzug." in text
    text = _text(BY_NAME["de-domestic-b2c"], payment_terms_days=30)
    assert "Fällig am 1. Mai 2025" in text and "innerhalb von 30 Tagen" in text


def test_finding_5_seller_and_buyer_are_legally_complete() -> None:
    text = _text(BY_NAME["de-fr-reverse-charge"])
    seller = load_seller()
    assert seller.legal_name in text and seller.address.line1 in text and "10117 Berlin" in text
    assert f"N° TVA : {seller.vat_id}" in text or f"N° TVA: {seller.vat_id}" in text
    assert seller.tax_number and seller.tax_number in text
    assert seller.registration and seller.registration in text
    assert "12 rue de la Paix" in text and "75002 Paris" in text and "FR40303265045" in text
    us = _text(BY_NAME["us-sales-tax"])
    assert "Austin, TX" in us and "United States" in us and "NY / US" not in us


@pytest.mark.parametrize("locale", ["es_ES", "de_DE", "fr_FR"])
def test_finding_6_a_non_english_invoice_carries_no_english(locale: str) -> None:
    language = locale[:2]
    catalog = translations(language)
    # Words of the English msgids that the language's own wording does not also use.
    own = " ".join(catalog.gettext(m) for m in msgids())
    english = {
        word
        for m in msgids()
        for word in re.findall(r"[A-Za-z][a-z]{3,}", re.sub(r"\{[a-z_]+\}", "", m))
        if not re.search(rf"\b{word}\b", own)
    }
    assert len(english) > 50
    for case in CASES:
        # E-mail addresses and the tenant's account id are data, not words.
        text = re.sub(r"\S+@\S+|t-[a-z0-9-]+|Kunde [a-z0-9-]+ GmbH", "", _text(case, locale))
        found = sorted(word for word in english if re.search(rf"\b{word}\b", text))
        assert not found, f"{case.name} in {locale}: English words {found}"
        assert not re.search(r"\d\.\d{2} ?€|€ ?\d+\.\d{2}\b", text), "English decimals on an EUR amount"


def test_finding_6_every_message_is_translated_in_every_language() -> None:
    for language in ("es", "de", "fr"):
        catalog = translations(language)
        untranslated = [m for m in msgids() if catalog.gettext(m) == m and not _same_in(language, m)]
        assert not untranslated, f"{language}: {untranslated}"


def _same_in(language: str, msgid: str) -> bool:
    """Words that are the same in every language: brand and tier names, IBAN, BIC."""
    return msgid in {"PayPal", "IBAN", "BIC", "Zero", "Shared", "Lite", "Enterprise", "Air-gapped", "Total",
                     "Bank", "Support", "licence", "Page {page} of {pages}"} and language in ("es", "de", "fr")


def test_finding_9_huf_has_two_decimals_as_in_iso_4217() -> None:
    from cli.main import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["tax", "quote", "--net", "10000.00", "--currency", "HUF", "--seller-country", "DE",
                     "--buyer-country", "DE", "--date", "2025-03-01"])
    assert code in (0, None)
    assert json.loads(out.getvalue()) == {
        "rate": "19", "tax": "1900.00", "total": "11900.00", "reverse_charge": False, "note": "VAT 19% (DE)"
    }
    from pricing.money import Currency

    assert [Currency.of(c).digits for c in ("huf", "cop", "idr", "jpy", "kwd")] == [2, 2, 2, 0, 3]
