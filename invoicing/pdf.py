"""Invoice PDFs (issue 4 item 5): the stored invoice rendered by WeasyPrint from `templates/`.

`render_invoice_pdf` turns the invoice document (`serve/routes/invoices.py` `_view`), the buyer
(a `tenants` row) and the issuer into PDF bytes in English or Spanish; amounts and dates go
through Babel for the tenant's locale, always from `Decimal`. `store_pdf` writes the bytes under
the data dir and returns their SHA-256 for the invoice row.

Speed: font subsetting was most of a one-page render. WeasyPrint 70 subsets with HarfBuzz when
the system has libharfbuzz-subset (Debian: libharfbuzz-subset0) and otherwise falls back to
fontTools, with a warning, at several times the cost; the stylesheet keeps to one system family
(DejaVu Sans, two faces). WeasyPrint's defaults (subset, no hinting, compressed) are the fastest
and smallest: `full_fonts` embeds 800 kB of font and is slower, `hinting` doubles the size.
The payment instructions give the RF creditor reference bank statements are matched by.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from payments.wire import wire_reference

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LANGUAGES = ("en", "es")  # the catalogs in templates/messages.json; others fall back to English
BUYER_FIELDS = ("name", "country", "region", "vat_id")
ISSUER_FIELDS = ("name", "address", "country", "vat_id", "email", "iban", "bic")


def render_invoice_pdf(
    invoice: Mapping[str, object],
    buyer: Mapping[str, object],
    issuer: Mapping[str, object],
    locale: str,
) -> bytes:
    """The invoice as PDF bytes, labelled and formatted for `locale` ("en", "es", "es_ES", ...).

    `buyer` has the tenant's name, country and optional region and vat_id; `issuer` has name,
    optional address (lines separated by newlines), country, vat_id, email, iban and bic.
    """
    from weasyprint import HTML  # slow to import; only the PDF path needs it

    html = render_invoice_html(invoice, buyer, issuer, locale)
    stylesheet, fonts = _stylesheet()
    return HTML(string=html, base_url=str(TEMPLATES)).write_pdf(stylesheets=[stylesheet], font_config=fonts)


@cache
def _stylesheet():
    """invoice.css parsed once per process, with the font configuration it was parsed against:
    reparsing it and rebuilding the font configuration was a quarter of each render."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    return CSS(filename=str(TEMPLATES / "invoice.css"), font_config=fonts), fonts


def render_invoice_html(
    invoice: Mapping[str, object],
    buyer: Mapping[str, object],
    issuer: Mapping[str, object],
    locale: str,
) -> str:
    """The HTML that `render_invoice_pdf` lays out; separate so it can be looked at in a browser."""
    babel_locale = Locale.parse(locale.replace("-", "_"))
    language = babel_locale.language if babel_locale.language in LANGUAGES else "en"
    text = _messages()[language]
    fmt = _Formatter(str(invoice["currency"]).upper(), babel_locale)
    start, last_day = _period_days(str(invoice["period_start"]), str(invoice["period_end"]))
    draft = invoice.get("status") == "draft"
    number = invoice.get("number") or text["draft"]
    total = fmt.money(invoice["total"])
    return (
        _environment()
        .get_template("invoice.html.j2")
        .render(
            t=text,
            lang=language,
            invoice=invoice,
            buyer=_fields(buyer, BUYER_FIELDS),
            issuer=_fields(issuer, ISSUER_FIELDS),
            draft=draft,
            number=number,
            status=text["status_draft"] if draft else text["status_finalized"],
            period=f"{fmt.day(start)} – {fmt.day(last_day)}",
            issued=fmt.day(_day(str(invoice["issued_at"]))) if invoice.get("issued_at") else None,
            groups=_groups(invoice["lines"], text, fmt, (start, last_day)),
            totals=_totals(invoice, text, fmt),
            page_content=_css_page_counter(text["page"]),
            payment_text=text["payment_text"].format(total=total),
            # The ISO 11649 creditor reference bank statements are matched by (payments/wire.py).
            wire_reference=number if draft else wire_reference(number),
        )
    )


def store_pdf(data_dir: Path, invoice_id: object, pdf: bytes) -> tuple[Path, str]:
    """Write `pdf` to `data_dir/invoices/<invoice_id>.pdf` atomically; return the path and SHA-256.

    A temporary file in the same directory is renamed over the target, so a reader never sees a
    half-written PDF and a re-render replaces the old one whole.
    """
    folder = Path(data_dir) / "invoices"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{invoice_id}.pdf"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{invoice_id}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(pdf)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target, hashlib.sha256(pdf).hexdigest()


class _Formatter:
    """Babel formatting for one currency and locale; amounts arrive as decimal strings."""

    def __init__(self, currency: str, locale: Locale) -> None:
        self.currency = currency
        self.locale = locale

    def money(self, amount: object) -> str:
        return format_currency(Decimal(str(amount)), self.currency, locale=self.locale)

    def unit_price(self, amount: object) -> str:
        # Unit prices carry up to six extra decimals (composition.UNIT_PRICE_EXTRA_DECIMALS);
        # keep the significant ones rather than round them to the cent.
        value = Decimal(str(amount)).normalize()
        return format_currency(value, self.currency, locale=self.locale, decimal_quantization=False)

    def quantity(self, quantity: object) -> str:
        value = Decimal(str(quantity)).normalize()
        return format_decimal(value, locale=self.locale, decimal_quantization=False)

    def percent(self, rate: object) -> str:
        value = Decimal(str(rate)) / 100
        return format_percent(value, locale=self.locale, decimal_quantization=False)

    def day(self, day: date) -> str:
        return format_date(day, format="long", locale=self.locale)


def _groups(
    lines: object, text: Mapping[str, object], fmt: _Formatter, period: tuple[date, date]
) -> list[dict[str, object]]:
    """Lines grouped by meter in order of first appearance; lines with no meter go last."""
    groups: dict[str | None, list[dict[str, object]]] = {}
    for line in lines:  # type: ignore[attr-defined]
        groups.setdefault(line.get("meter"), []).append(line)
    if None in groups:
        groups[None] = groups.pop(None)
    meters: Mapping[str, str] = text["meters"]  # type: ignore[assignment]
    return [
        {
            "heading": text["other_charges"] if meter is None else meters.get(meter, meter),
            "rows": [_row(line, fmt, period) for line in rows],
            "total": fmt.money(sum((Decimal(str(line["amount"])) for line in rows), Decimal(0))),
        }
        for meter, rows in groups.items()
    ]


def _row(line: Mapping[str, object], fmt: _Formatter, period: tuple[date, date]) -> dict[str, object]:
    line_period = line.get("period")
    when = None
    if isinstance(line_period, Mapping):
        days = _period_days(str(line_period["start"]), str(line_period["end"]))
        if days != period:  # only lines for part of the period say which part
            when = f"{fmt.day(days[0])} – {fmt.day(days[1])}"
    unit = line.get("unit")
    return {
        "description": line["description"],
        "when": when,
        "quantity": fmt.quantity(line["quantity"]) + (f" {unit}" if unit else ""),
        "unit_price": fmt.unit_price(line["unit_price"]),
        "amount": fmt.money(line["amount"]),
    }


def _totals(invoice: Mapping[str, object], text: Mapping[str, object], fmt: _Formatter) -> list[dict]:
    credits = Decimal(str(invoice["credits_applied"]))
    # The reverse-charge mention replaces the tax note, which is its English wording.
    tax_note = None if invoice.get("reverse_charge") else invoice.get("tax_note")
    rows: list[tuple[str, str, object]] = []
    if credits:
        rows.append((text["subtotal_before_credits"], fmt.money(invoice["subtotal_before_credits"]), None))
        rows.append((text["credits_applied"], fmt.money(-credits), None))
    rows.append((text["subtotal"], fmt.money(invoice["subtotal"]), None))
    rows.append((f"{text['tax']} ({fmt.percent(invoice['tax_rate'])})", fmt.money(invoice["tax"]), tax_note))
    rows.append((text["total"], fmt.money(invoice["total"]), None))
    return [
        {"label": label, "value": value, "note": note, "grand": index == len(rows) - 1}
        for index, (label, value, note) in enumerate(rows)
    ]


def _fields(party: Mapping[str, object], names: tuple[str, ...]) -> dict[str, object]:
    """The party's printed fields, absent ones as None (the template is strict about names)."""
    return {name: party.get(name) for name in names}


def _period_days(start: str, end: str) -> tuple[date, date]:
    """The first and last day of a half-open period of UTC instants, as printed on the invoice."""
    return _day(start), (datetime.fromisoformat(end) - timedelta(microseconds=1)).date()


def _day(instant: str) -> date:
    return datetime.fromisoformat(instant).date()


def _css_page_counter(message: str) -> str:
    """`"Page {page} of {pages}"` as a CSS `content` value with the page counters in it."""
    parts: Sequence[str] = re.split(r"(\{page\}|\{pages\})", message)
    tokens = []
    for part in parts:
        if part in ("{page}", "{pages}"):
            tokens.append(f"counter({part[1:-1]})")
        elif part:
            tokens.append(json.dumps(part, ensure_ascii=False))  # a CSS string: no backslashes in the catalog
    return " ".join(tokens)


@cache
def _messages() -> dict[str, dict[str, object]]:
    return json.loads((TEMPLATES / "messages.json").read_text(encoding="utf-8"))


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["j2", "html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
