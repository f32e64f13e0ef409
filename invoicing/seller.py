"""The seller every invoice names (art. 226 (3) Directive 2006/112/EC, §14 (4) UStG): legal name,
postal address, VAT id, tax number, register entry, managing directors, bank account, and the
default payment terms.

It is configuration, not code: `invoicing/seller.json`, or the file named by the setting
`seller_file` (env BILLING_SELLER_FILE). `seller_from_json` is pure; `load_seller` reads the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pricing.errors import InvalidField

DEFAULT_SELLER_FILE = Path(__file__).resolve().parent / "seller.json"
DEFAULT_PAYMENT_TERMS_DAYS = 14


@dataclass(frozen=True, slots=True)
class PostalAddress:
    line1: str
    postal_code: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    line2: str | None = None
    region: str | None = None

    @classmethod
    def from_json(cls, document: Mapping[str, object], field: str = "address") -> PostalAddress:
        def text(name: str, required: bool = True) -> str | None:
            value = document.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value.strip():
                raise InvalidField(f"{field}.{name}", "required text")
            return value.strip()

        return cls(
            line1=text("line1") or "",
            postal_code=text("postal_code") or "",
            city=text("city") or "",
            country=(text("country") or "").upper(),
            line2=text("line2", False),
            region=text("region", False),
        )


@dataclass(frozen=True, slots=True)
class BankAccount:
    account_holder: str
    iban: str
    bic: str | None = None
    bank_name: str | None = None


@dataclass(frozen=True, slots=True)
class Seller:
    legal_name: str
    address: PostalAddress
    vat_id: str | None  # BT-31
    tax_number: str | None  # BT-32, the German Steuernummer (§14 (4) 2 UStG: either suffices)
    registration: str | None  # BT-30, the commercial register entry
    directors: str | None  # a GmbH's managing directors (§35a GmbHG)
    email: str | None
    bank: BankAccount | None
    payment_terms_days: int = DEFAULT_PAYMENT_TERMS_DAYS
    website: str | None = None
    phone: str | None = None
    contact: str | None = None  # the department buyers write to (XRechnung BG-6)

    @property
    def country(self) -> str:
        return self.address.country


def seller_from_json(document: Mapping[str, object]) -> Seller:
    """The seller in a seller file; raises `InvalidField` naming the field that is wrong."""

    def optional(name: str) -> str | None:
        value = document.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidField(name, "must be text")
        return value or None

    name = document.get("legal_name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidField("legal_name", "required text")
    address = document.get("address")
    if not isinstance(address, Mapping):
        raise InvalidField("address", "required object")
    bank = document.get("bank")
    account = None
    if isinstance(bank, Mapping):
        account = BankAccount(
            account_holder=str(bank.get("account_holder") or name),
            iban=str(bank["iban"]).replace(" ", ""),
            bic=None if bank.get("bic") is None else str(bank["bic"]),
            bank_name=None if bank.get("bank_name") is None else str(bank["bank_name"]),
        )
    days = document.get("payment_terms_days", DEFAULT_PAYMENT_TERMS_DAYS)
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 365:
        raise InvalidField("payment_terms_days", "must be a whole number of days from 0 to 365")
    return Seller(
        legal_name=name.strip(),
        address=PostalAddress.from_json(address),
        vat_id=optional("vat_id"),
        tax_number=optional("tax_number"),
        registration=optional("registration"),
        directors=optional("directors"),
        email=optional("email"),
        bank=account,
        payment_terms_days=days,
        website=optional("website"),
        phone=optional("phone"),
        contact=optional("contact"),
    )


@cache
def load_seller(path: Path | None = None) -> Seller:
    """The seller in `path` (None: invoicing/seller.json), read once per process."""
    file = DEFAULT_SELLER_FILE if path is None else Path(path)
    return seller_from_json(json.loads(file.read_text(encoding="utf-8")))
