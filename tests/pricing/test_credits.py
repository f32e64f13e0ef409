import json
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.credits import CreditLedger, Debit, Grant, GrantKind
from pricing.errors import InvalidLedgerEntry
from pricing.money import Money

from .factories import USD, at

PREPAID, PROMO = GrantKind.PREPAID, GrantKind.PROMOTIONAL


def ledger(*grants: Grant) -> CreditLedger:
    result = CreditLedger("t", USD)
    for grant in grants:
        result = result.append(grant)
    return result


def usd(cents: int) -> Money:
    return Money(Decimal(cents), USD)


def debits(book: CreditLedger) -> list[tuple[str, int]]:
    return [(e.grant_id, int(e.amount)) for e in book.entries if isinstance(e, Debit)]


def test_consumption_order_is_priority_then_soonest_expiry_then_oldest() -> None:
    book = ledger(
        Grant("second-priority", at(1), Decimal(100), PROMO, priority=2, expires_at=at(4)),
        Grant("never-expires", at(1), Decimal(100), PREPAID, priority=1),
        Grant("expires-later", at(1), Decimal(100), PROMO, priority=1, expires_at=at(30)),
        Grant(
            "expires-soon-older",
            at(1, 12),
            Decimal(100),
            PROMO,
            priority=1,
            expires_at=at(10),
        ),
        Grant(
            "expires-soon-newer",
            at(2),
            Decimal(100),
            PROMO,
            priority=1,
            expires_at=at(10),
        ),
    )
    book, drawn = book.consume(usd(450), at(3), "inv-1")
    assert drawn == usd(450)
    assert debits(book) == [
        ("expires-soon-older", 100),
        ("expires-soon-newer", 100),
        ("expires-later", 100),
        ("never-expires", 100),
        ("second-priority", 50),
    ]
    assert book.balance(at(3)) == usd(50)


def test_expired_credit_is_never_consumed_and_leaves_the_balance() -> None:
    book = ledger(
        Grant("promo", at(1), Decimal(500), PROMO, expires_at=at(10)),
        Grant("prepaid", at(1), Decimal(300), PREPAID, priority=5),
    )
    assert book.balance(at(9, 23)) == usd(800)
    assert book.balance(at(10)) == usd(300)
    book, drawn = book.consume(usd(1000), at(10), "inv-2")
    assert drawn == usd(300)
    assert debits(book) == [("prepaid", 300)]
    assert book.balance(at(11)) == usd(0)


def test_the_balance_at_any_instant_comes_from_the_ledger() -> None:
    book = ledger(Grant("g", at(1), Decimal(1000), PREPAID))
    book, _ = book.consume(usd(300), at(5), "inv-1")
    book, _ = book.consume(usd(200), at(9), "inv-2")
    assert [book.balance(at(day)).minor_units for day in (1, 4, 5, 8, 9, 20)] == [
        1000,
        1000,
        700,
        700,
        500,
        500,
    ]
    assert book.balance(at(1) - timedelta(seconds=1)) == usd(0)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (Debit("g", at(2), Decimal(1001), "inv"), "amount"),
        (Debit("g", at(20), Decimal(1), "inv"), "grant_id"),  # expired by then
        (Debit("nope", at(2), Decimal(1), "inv"), "grant_id"),
        (Debit("g", at(2), Decimal("0.5"), "inv"), "amount"),
        (Grant("g", at(2), Decimal(5), PROMO), "grant_id"),
        (Grant("h", at(2), Decimal(5), PROMO, expires_at=at(2)), "expires_at"),
        (Grant("h", at(1), Decimal(5), PROMO), "at"),  # before the last entry
    ],
)
def test_the_ledger_refuses_entries_that_would_break_it(entry: Grant | Debit, field: str) -> None:
    book = ledger(Grant("g", at(1, 12), Decimal(1000), PREPAID, expires_at=at(15)))
    with pytest.raises(InvalidLedgerEntry) as error:
        book.append(entry)
    assert error.value.field == field


def test_a_ledger_reads_back_from_json_and_is_checked_on_the_way() -> None:
    book = ledger(Grant("g", at(1), Decimal(1000), PREPAID, priority=3, expires_at=at(1, month=4)))
    book, _ = book.consume(usd(250), at(5), "inv-1")
    document = json.loads(json.dumps(book.to_json()))
    assert CreditLedger.from_json(document) == book
    document["entries"][1]["amount_decimal"] = "5000"
    with pytest.raises(InvalidLedgerEntry) as error:
        CreditLedger.from_json(document)
    assert error.value.field == "entries[1].amount"


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"),
            st.integers(1, 10_000),  # amount
            st.integers(0, 3),  # priority
            st.none() | st.integers(1, 200),  # hours to expiry
        ),
        st.tuples(st.just("consume"), st.integers(0, 20_000), st.just(0), st.none()),
    ),
    max_size=30,
)


@given(operations, st.lists(st.integers(1, 10), min_size=30, max_size=30))
def test_credits_never_go_negative_and_never_outlive_expiry(
    steps: list[tuple[str, int, int, int | None]], gaps: list[int]
) -> None:
    book, now = CreditLedger("t", USD), at(1)
    for index, ((op, amount, priority, expiry), gap) in enumerate(zip(steps, gaps, strict=False)):
        now += timedelta(hours=gap)
        if op == "grant":
            expires = None if expiry is None else now + timedelta(hours=expiry)
            book = book.append(Grant(f"g{index}", now, Decimal(amount), PROMO, priority, expires))
        else:
            before = book.balance(now)
            book, drawn = book.consume(usd(amount), now, f"inv{index}")
            assert drawn.minor_units == min(amount, before.minor_units)
    grants = {e.grant_id: e for e in book.entries if isinstance(e, Grant)}
    for entry in book.entries:
        if isinstance(entry, Debit):
            assert grants[entry.grant_id].usable_at(entry.at)
    for instant in [e.at for e in book.entries] + [g.expires_at for g in grants.values() if g.expires_at]:
        balances = book.grant_balances(instant)
        assert all(b.remaining > 0 and b.grant.usable_at(instant) for b in balances)
        assert book.balance(instant).minor_units >= 0
        drawn_by_grant: dict[str, Decimal] = {}
        for entry in book.entries:
            if isinstance(entry, Debit) and entry.at <= instant:
                drawn_by_grant[entry.grant_id] = drawn_by_grant.get(entry.grant_id, Decimal(0)) + entry.amount
        assert all(drawn <= grants[g].amount for g, drawn in drawn_by_grant.items())
