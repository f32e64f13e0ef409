"""The invoice font (templates/fonts/): DejaVu Sans cut down to the scripts an invoice prints, so
WeasyPrint subsets a small font for every PDF (issue 14, item 7). Everything an invoice words
must be in the cut; a character that is not is drawn from the system's whole DejaVu Sans.
"""

from __future__ import annotations

import io
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.pofile import read_po
from babel.numbers import list_currencies
from fontTools.ttLib import TTFont

from invoicing.document import build_invoice
from invoicing.i18n import LANGUAGES, LOCALE_DIR, Localizer
from invoicing.pdf import TEMPLATES, render_pdf
from invoicing.seller import DEFAULT_SELLER_FILE, load_seller
from tests.invoicing.cases import CASES, stored_invoice

pypdf = pytest.importorskip("pypdf")
SYSTEM_FONTS = Path("/usr/share/fonts/truetype/dejavu")
FACES = {"DejaVuSans-invoice.ttf": "DejaVuSans.ttf", "DejaVuSans-Bold-invoice.ttf": "DejaVuSans-Bold.ttf"}


@cache
def _characters(path: Path) -> frozenset[str]:
    return frozenset(map(chr, TTFont(path).getBestCmap()))


def _catalog_text(language: str) -> str:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "invoice.po").open("rb") as source:
        catalog = read_po(source, locale=language)
    return "".join(f"{message.id}{message.string}" for message in catalog if message.id)


def _babel_text(language: str) -> str:
    """What Babel writes on an invoice in `language`: dates, country names, percentages, and an
    amount and a unit price in every currency it knows."""
    words, locale = Localizer(language), Locale.parse(language)
    months = "".join(locale.months["format"]["wide"].values())
    countries = "".join(locale.territories.values())
    amounts = "".join(
        words.money(Decimal("-1234567.891"), code) + words.unit_price(Decimal("0.046249"), code)
        for code in list_currencies()
    )
    return months + countries + amounts + words.percent(Decimal("19.5"))


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_character_an_invoice_words_is_in_the_invoice_font(face: str, language: str) -> None:
    text = _catalog_text(language) + _babel_text(language) + DEFAULT_SELLER_FILE.read_text(encoding="utf-8")
    drawable = set(text) & _characters(SYSTEM_FONTS / FACES[face])  # the whole font's, as before
    missing = drawable - _characters(TEMPLATES / "fonts" / face)
    assert not missing, f"{face} lacks {sorted(missing)}: add them to templates/fonts/subset.sh"


def test_the_invoice_font_is_the_one_embedded() -> None:
    """WeasyPrint keeps glyph ids when it subsets, so an embedded font has as many glyphs as its
    source up to the last one used: fewer than the cut has only if it came from the cut (from
    the whole font, the euro sign alone is glyph 2,948)."""
    pdf = pypdf.PdfReader(io.BytesIO(render_pdf(_domestic(), "de_DE")))
    embedded = [TTFont(io.BytesIO(font["/FontDescriptor"]["/FontFile2"].get_data())) for font in _fonts(pdf)]
    cut = min(TTFont(TEMPLATES / "fonts" / face)["maxp"].numGlyphs for face in FACES)
    assert len(embedded) == 2
    assert all(font["maxp"].numGlyphs <= cut for font in embedded)


def test_a_character_outside_the_invoice_font_is_drawn_from_the_system_font() -> None:
    name = "Երևան Cloud LLC"  # Armenian: in DejaVu Sans, not in the invoice font
    assert not set("Երևան") & _characters(TEMPLATES / "fonts" / "DejaVuSans-invoice.ttf")
    pdf = pypdf.PdfReader(io.BytesIO(render_pdf(_domestic(name=name), "de_DE")))
    assert name in pdf.pages[0].extract_text()
    assert len(_fonts(pdf)) == 3  # regular and bold from the cut, and the system face for the name


def _domestic(**buyer: str):
    invoice, stored_buyer = stored_invoice(CASES[0])
    return build_invoice(invoice, stored_buyer | buyer, load_seller(), reference="RF18ENIS")


def _fonts(pdf) -> list:
    fonts = pdf.pages[0]["/Resources"]["/Font"]
    return [fonts[key]["/DescendantFonts"][0].get_object() for key in fonts]
