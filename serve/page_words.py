"""The portal's and console's words in en, es, de and fr, and the tenant's number formats.

Like the invoices (invoicing/i18n.py): gettext catalogs whose msgids are the English text,
`serve/portal_locale/<lang>/LC_MESSAGES/portal.po`, compiled in memory on first use. Meter and
tier names come from the invoice catalog, so a meter is called the same on a page as on the PDF.
"""

from __future__ import annotations

import gettext
import io
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from babel.dates import format_interval, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from invoicing.i18n import LANGUAGES, Localizer, language_of

LOCALE_DIR = Path(__file__).resolve().parent / "portal_locale"
DOMAIN = "portal"
# What the pages call a status the API gives as a code: of invoices (InvoiceStatus), invoice runs,
# payments (PaymentState) and webhook deliveries. A code means the same whatever it is the status
# of, so one table serves them all. Each is a msgid of the catalogs.
STATUS_WORDS = {
    "draft": "Draft",
    "finalized": "Open",
    "paid": "Paid",
    "void": "Void",
    "uncollectible": "Uncollectible",
    "pending": "Pending",
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "partially_refunded": "Partially refunded",
    "refunded": "Refunded",
    "abandoned": "Abandoned at the provider",
    "delivered": "Delivered",
    "cancelled": "Cancelled",
}
METHOD_WORDS = {"stripe": "Card (Stripe)", "paypal": "PayPal", "wire": "Bank transfer"}
ALERT_WORDS = {
    "usage": "Usage",
    "spend": "Spend",
    "spend_forecast": "Spend forecast",
    "credits_balance": "Credit balance",
    "credits_expiring": "Credits expiring",
}


@cache
def catalog(language: str) -> gettext.NullTranslations:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == "en" or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as source:
        parsed = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, parsed, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def choose_language(asked: str | None, accept_language: str, fallback: str = "en") -> str:
    """`?lang=` when it names a page language; else the first of Accept-Language that does; else
    `fallback` (a tenant's own locale)."""
    if asked in LANGUAGES:
        return asked
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().replace("-", "_")
        if tag and tag != "*":
            try:
                language = language_of(tag)
            except (ValueError, TypeError):
                continue
            if language in LANGUAGES and (language != "en" or tag.lower().startswith("en")):
                return language
    return language_of(fallback)


class Words:
    """`words("Invoices")` in the page language, and its formats for money, numbers and days."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._localizer = Localizer(language)
        self._page = catalog(language)

    def __call__(self, msgid: str) -> str:
        translated = self._page.gettext(msgid)
        # Not a page word: a meter, tier or unit the invoice catalog knows.
        return translated if translated != msgid else self._localizer.gettext(msgid)

    def status(self, code: str | None) -> str:
        """An invoice's, run's, payment's or delivery's status code in words; an unknown code as is."""
        return self(STATUS_WORDS[code]) if code in STATUS_WORDS else str(code or "—")

    def method(self, code: str | None) -> str:
        return self(METHOD_WORDS[code]) if code in METHOD_WORDS else str(code or "—")

    def alert_kind(self, code: str | None) -> str:
        return self(ALERT_WORDS[code]) if code in ALERT_WORDS else str(code or "—")

    def statuses(self) -> dict[str, str]:
        """Every status in words, for the scripts that redraw statuses without a reload."""
        return {code: self(msgid) for code, msgid in STATUS_WORDS.items()}

    def money(self, amount: str | None, currency: str) -> str:
        value = _decimal(amount)
        return "—" if value is None else self._localizer.money(value, currency)

    def number(self, amount: str | None) -> str:
        value = _decimal(amount)
        return "—" if value is None else self._localizer.number(value)

    def day(self, text: str | None) -> str:
        return "—" if not text else self._localizer.day(date.fromisoformat(text[:10]))

    def period(self, start: str | None, end: str | None) -> str:
        """`May 1 – 31, 2025`: a half-open period of instants as its first and last day (as the
        invoice PDF prints it), not the instant after it ends."""
        if not start or not end:
            return "—"
        first = datetime.fromisoformat(start).date()
        last = (datetime.fromisoformat(end) - timedelta(microseconds=1)).date()
        return format_interval(first, max(first, last), "yMMMd", locale=self._localizer.locale)

    def month(self, text: str | None) -> str:
        """`November 2026`, `noviembre de 2026`: the month an ISO date falls in."""
        if not text:
            return "—"
        return format_skeleton("yMMMM", date.fromisoformat(text[:10]), locale=self._localizer.locale)


def _decimal(text: str | None) -> Decimal | None:
    try:
        return None if text is None else Decimal(text)
    except InvalidOperation:
        return None


def page_msgids() -> list[str]:
    """Every msgid the pages use: `_("…")` in templates/portal and `words("…")` in the page
    handlers, plus the status, method and alert words; each catalog must translate them all (tested)."""
    import re

    root = Path(__file__).resolve().parent
    found: dict[str, None] = {}
    for template in sorted((root.parent / "templates" / "portal").glob("*.j2")):
        found.update((m[2], None) for m in re.finditer(r"""_\((["'])(.+?)\1\)""", template.read_text()))
    for source in (root / "pages.py", root / "routes" / "portal.py", root / "routes" / "console.py"):
        found.update((m[2], None) for m in re.finditer(r"""words\((["'])(.+?)\1\)""", source.read_text()))
    for table in (STATUS_WORDS, METHOD_WORDS, ALERT_WORDS):
        found.update((msgid, None) for msgid in table.values())
    return list(found)
