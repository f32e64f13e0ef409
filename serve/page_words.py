"""The portal's and console's words in en, es, de and fr, and the tenant's number formats.

Like the invoices (invoicing/i18n.py): gettext catalogs whose msgids are the English text,
`serve/portal_locale/<lang>/LC_MESSAGES/portal.po`, compiled in memory on first use. Meter and
tier names come from the invoice catalog, so a meter is called the same on a page as on the PDF.
"""

from __future__ import annotations

import gettext
import io
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from invoicing.i18n import LANGUAGES, Localizer, language_of

LOCALE_DIR = Path(__file__).resolve().parent / "portal_locale"
DOMAIN = "portal"


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

    def money(self, amount: str | None, currency: str) -> str:
        value = _decimal(amount)
        return "—" if value is None else self._localizer.money(value, currency)

    def number(self, amount: str | None) -> str:
        value = _decimal(amount)
        return "—" if value is None else self._localizer.number(value)

    def day(self, text: str | None) -> str:
        return "—" if not text else self._localizer.day(date.fromisoformat(text[:10]))


def _decimal(text: str | None) -> Decimal | None:
    try:
        return None if text is None else Decimal(text)
    except InvalidOperation:
        return None


def page_msgids() -> list[str]:
    """Every msgid the pages use: `_("…")` in templates/portal and `words("…")` in the page
    handlers, plus the invoice statuses; each catalog must translate them all (tested)."""
    import re

    from serve.routes.portal import STATUSES

    root = Path(__file__).resolve().parent
    found: dict[str, None] = {}
    for template in sorted((root.parent / "templates" / "portal").glob("*.j2")):
        found.update((m[2], None) for m in re.finditer(r"""_\((["'])(.+?)\1\)""", template.read_text()))
    for source in (root / "pages.py", root / "routes" / "portal.py", root / "routes" / "console.py"):
        found.update((m[2], None) for m in re.finditer(r"""words\((["'])(.+?)\1\)""", source.read_text()))
    found.update((status, None) for status in STATUSES.values())
    return list(found)
