"""Credits: an append-only ledger per tenant of grants and the debits drawn from them.

A grant (prepaid or promotional) adds whole minor units from its instant until it expires. A
debit draws from one grant. Consumption draws from grants in this order: the lowest `priority`
number first, then the grant that expires soonest (never-expiring last), then the oldest, then
by grant id, so the order is total and the same in every process. The ledger refuses a debit
that would overdraw a grant or use it outside its life, and entries that go back in time, so
the balance at any instant, derived from the entries alone, is never negative and never
includes an expired grant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pricing.errors import CurrencyMismatch, InvalidField, InvalidLedgerEntry
from pricing.json_fields import (
    as_currency,
    as_decimal,
    as_instant,
    as_int,
    as_list,
    as_object,
    as_string,
    child,
    instant_text,
    reject_unknown_keys,
)
from pricing.money import Currency, Money, plain
from pricing.periods import check_utc


class GrantKind(StrEnum):
    PREPAID = "prepaid"  # paid for by the tenant
    PROMOTIONAL = "promotional"  # given away


@dataclass(frozen=True, slots=True)
class Grant:
    grant_id: str
    at: datetime  # usable from this instant
    amount: Decimal  # whole minor units
    kind: GrantKind
    priority: int = 0  # lower numbers are consumed first
    expires_at: datetime | None = None  # unusable from this instant on

    def usable_at(self, instant: datetime) -> bool:
        return self.at <= instant and (self.expires_at is None or instant < self.expires_at)

    def consumption_order(self) -> tuple[int, bool, datetime, datetime, str]:
        never = self.expires_at is None
        return self.priority, never, self.expires_at or self.at, self.at, self.grant_id


@dataclass(frozen=True, slots=True)
class Debit:
    grant_id: str
    at: datetime
    amount: Decimal  # whole minor units
    reference: str  # what consumed the credit, such as an invoice id


LedgerEntry = Grant | Debit


@dataclass(frozen=True, slots=True)
class GrantBalance:
    grant: Grant
    remaining: Decimal


@dataclass(frozen=True)
class CreditLedger:
    tenant_id: str
    currency: Currency
    entries: tuple[LedgerEntry, ...] = ()

    def grant_balances(self, at: datetime) -> list[GrantBalance]:
        """Usable grants with something left at `at`, in consumption order."""
        drawn: dict[str, Decimal] = {}
        for entry in self.entries:
            if isinstance(entry, Debit) and entry.at <= at:
                drawn[entry.grant_id] = drawn.get(entry.grant_id, Decimal(0)) + entry.amount
        balances = [
            GrantBalance(entry, entry.amount - drawn.get(entry.grant_id, Decimal(0)))
            for entry in self.entries
            if isinstance(entry, Grant) and entry.usable_at(at)
        ]
        balances = [balance for balance in balances if balance.remaining > 0]
        return sorted(balances, key=lambda balance: balance.grant.consumption_order())

    def balance(self, at: datetime) -> Money:
        remaining = sum((b.remaining for b in self.grant_balances(at)), Decimal(0))
        return Money(remaining, self.currency)

    def append(self, entry: LedgerEntry) -> CreditLedger:
        """This ledger with `entry` added last; raises `InvalidLedgerEntry` if it may not be."""
        _check_instant(entry.at, "at")
        if isinstance(entry, Grant) and entry.expires_at is not None:
            _check_instant(entry.expires_at, "expires_at")
        if self.entries and entry.at < self.entries[-1].at:
            raise InvalidLedgerEntry("at", "is before the ledger's last entry")
        _check_whole_amount(entry.amount)
        if isinstance(entry, Grant):
            self._check_grant(entry)
        else:
            self._check_debit(entry)
        return replace(self, entries=(*self.entries, entry))

    def _check_grant(self, grant: Grant) -> None:
        if any(isinstance(e, Grant) and e.grant_id == grant.grant_id for e in self.entries):
            raise InvalidLedgerEntry("grant_id", f"grant {grant.grant_id} already exists")
        if grant.expires_at is not None and grant.expires_at <= grant.at:
            raise InvalidLedgerEntry("expires_at", "must be after the grant's instant")

    def _check_debit(self, debit: Debit) -> None:
        balance = next(
            (b for b in self.grant_balances(debit.at) if b.grant.grant_id == debit.grant_id),
            None,
        )
        if balance is None:
            raise InvalidLedgerEntry("grant_id", f"no usable credit in {debit.grant_id} then")
        if debit.amount > balance.remaining:
            raise InvalidLedgerEntry("amount", f"exceeds the {balance.remaining} left")

    def consume(self, wanted: Money, at: datetime, reference: str) -> tuple[CreditLedger, Money]:
        """Draw up to `wanted` (whole minor units) in consumption order; returns what was drawn."""
        if wanted.currency != self.currency:
            raise CurrencyMismatch(f"{wanted.currency} credit from a {self.currency} ledger")
        _check_whole_amount(wanted.minor_units, allow_zero=True)
        ledger, left = self, wanted.minor_units
        for balance in self.grant_balances(at):
            if left <= 0:
                break
            amount = min(left, balance.remaining)
            ledger = ledger.append(Debit(balance.grant.grant_id, at, amount, reference))
            left -= amount
        return ledger, Money(wanted.minor_units - left, self.currency)

    def to_json(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "currency": self.currency.code,
            "entries": [_entry_to_json(entry) for entry in self.entries],
        }

    @classmethod
    def from_json(cls, document: object) -> CreditLedger:
        """A ledger rebuilt entry by entry, so a stored ledger is checked as it was written."""
        ledger = as_object(document, "", InvalidLedgerEntry)
        reject_unknown_keys(
            ledger,
            frozenset({"tenant_id", "currency", "entries"}),
            "",
            InvalidLedgerEntry,
        )
        result = cls(
            as_string(ledger.get("tenant_id"), "tenant_id", InvalidLedgerEntry),
            as_currency(ledger.get("currency"), "currency", InvalidLedgerEntry),
        )
        entries = as_list(ledger.get("entries", []), "entries", InvalidLedgerEntry)
        return result.extended(_entries(entries))

    def extended(self, entries: Iterable[tuple[str, LedgerEntry]]) -> CreditLedger:
        ledger = self
        for field, entry in entries:
            try:
                ledger = ledger.append(entry)
            except InvalidLedgerEntry as error:
                raise error.under(field) from None
        return ledger


def _check_instant(instant: datetime, field: str) -> None:
    try:
        check_utc(instant, field)
    except InvalidField as error:
        raise InvalidLedgerEntry(field, error.message) from None


def _check_whole_amount(amount: Decimal, *, allow_zero: bool = False) -> None:
    if amount != amount.to_integral_value() or amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidLedgerEntry("amount", "must be a positive whole number of minor units")


_GRANT_KEYS = frozenset({"type", "grant_id", "at", "amount_decimal", "kind", "priority", "expires_at"})
_DEBIT_KEYS = frozenset({"type", "grant_id", "at", "amount_decimal", "reference"})


def _entry_to_json(entry: LedgerEntry) -> dict[str, object]:
    if isinstance(entry, Debit):
        return {
            "type": "debit",
            "grant_id": entry.grant_id,
            "at": instant_text(entry.at),
            "amount_decimal": plain(entry.amount),
            "reference": entry.reference,
        }
    return {
        "type": "grant",
        "grant_id": entry.grant_id,
        "at": instant_text(entry.at),
        "amount_decimal": plain(entry.amount),
        "kind": entry.kind.value,
        "priority": entry.priority,
        "expires_at": None if entry.expires_at is None else instant_text(entry.expires_at),
    }


def _entries(documents: Iterable[object]) -> Iterable[tuple[str, LedgerEntry]]:
    for index, document in enumerate(documents):
        field = child("entries", index)
        yield field, _entry(as_object(document, field, InvalidLedgerEntry), field)


def _entry(entry: Mapping[str, object], field: str) -> LedgerEntry:
    kind = entry.get("type")
    if kind not in ("grant", "debit"):
        raise InvalidLedgerEntry(child(field, "type"), 'must be "grant" or "debit"')
    keys = _GRANT_KEYS if kind == "grant" else _DEBIT_KEYS
    reject_unknown_keys(entry, keys, field, InvalidLedgerEntry)
    grant_id = as_string(entry.get("grant_id"), child(field, "grant_id"), InvalidLedgerEntry)
    at = as_instant(entry.get("at"), child(field, "at"), InvalidLedgerEntry)
    amount_field = child(field, "amount_decimal")
    amount = as_decimal(entry.get("amount_decimal"), amount_field, InvalidLedgerEntry)
    if kind == "debit":
        reference_field = child(field, "reference")
        reference = as_string(entry.get("reference"), reference_field, InvalidLedgerEntry)
        return Debit(grant_id, at, amount, reference)
    grant_kind = entry.get("kind")
    if grant_kind not in ("prepaid", "promotional"):
        raise InvalidLedgerEntry(child(field, "kind"), 'must be "prepaid" or "promotional"')
    expires = entry.get("expires_at")
    priority_field = child(field, "priority")
    return Grant(
        grant_id=grant_id,
        at=at,
        amount=amount,
        kind=GrantKind(grant_kind),
        priority=as_int(entry.get("priority", 0), priority_field, InvalidLedgerEntry),
        expires_at=None
        if expires is None
        else as_instant(expires, child(field, "expires_at"), InvalidLedgerEntry),
    )
