from decimal import Decimal
from fractions import Fraction

import pytest

from pricing.airgapped import Licence
from pricing.errors import InvalidSettings
from pricing.periods import Period
from pricing.plans import Tier
from pricing.tenant_pricing import TenantPricing

from .factories import at, rate, totals


def airgapped(licence: Licence) -> TenantPricing:
    return TenantPricing("gov", Tier.AIRGAPPED, licence=licence)


def test_a_negotiated_licence_fee_replaces_the_catalog_default() -> None:
    licence = Licence("lic-2", starts=at(1, month=1), licence_fee=Decimal(7_500_000))
    january = Period.calendar_month(2025, 1)
    assert totals(rate(airgapped(licence), period=january)) == [
        ("licence", "75000.00"),
        (
            "support",
            "10000.00",
        ),  # starts on the renewal date: a full year, no proration
    ]


def test_support_renews_on_the_licence_anniversary_date() -> None:
    licence = Licence("lic-3", starts=at(15), renews_on=(7, 1), support_yearly=Decimal(1_200_000))
    first = rate(airgapped(licence))  # March 2025: 15 March - 30 June is 108 of 365 days
    assert totals(first) == [("licence", "50000.00"), ("support", "3550.68")]
    assert "prorated 108/365" in first.lines[1].description
    july = rate(airgapped(licence), period=Period.calendar_month(2025, 7))
    assert totals(july) == [("support", "12000.00")]
    assert (july.lines[0].period.start, july.lines[0].period.end) == (
        at(1, month=7),
        at(1, month=7, year=2026),
    )


def test_a_leap_year_support_year_has_366_days() -> None:
    licence = Licence("lic-4", starts=at(1, month=3, year=2028))  # 306 of 2028's 366 days left
    rating = rate(airgapped(licence), period=Period.calendar_month(2028, 3))
    exact = Fraction(1_000_000 * 306, 366)
    assert abs(Fraction(rating.lines[1].amount.minor_units) - exact) < Fraction(1, 10**20)
    assert totals(rating)[1] == ("support", "8360.66")


def test_no_support_year_starts_after_support_ends() -> None:
    licence = Licence("lic-5", starts=at(15), support_ends=at(1, month=1, year=2026))
    assert totals(rate(airgapped(licence), period=Period.calendar_month(2026, 1))) == []


def test_a_licence_spanning_invoice_periods_is_billed_once() -> None:
    licence = Licence("lic-6", starts=at(15))
    year = Period(at(1, month=1), at(1, month=1, year=2027))
    assert totals(rate(airgapped(licence), period=year)) == [
        ("licence", "50000.00"),
        ("support", "8000.00"),
        ("support", "10000.00"),
    ]


def test_licences_read_back_from_json() -> None:
    licence = Licence("lic-7", at(15), Decimal(4_000_000), None, (4, 1), at(1, month=4, year=2030))
    assert Licence.from_json(licence.to_json()) == licence


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"renews_on": "02-29"}, "licence.renews_on"),
        ({"renews_on": "13-01"}, "licence.renews_on"),
        ({"starts": "2025-03-15T00:00:00"}, "licence.starts"),
        ({"licence_fee_decimal": 50000.0}, "licence.licence_fee_decimal"),
    ],
)
def test_bad_licences_name_the_failing_field(changes: dict[str, object], field: str) -> None:
    document = {"licence_id": "x", "starts": "2025-03-15T00:00:00Z"} | changes
    with pytest.raises(InvalidSettings) as error:
        Licence.from_json(document)
    assert error.value.field == field


def test_airgapped_tenants_need_a_licence() -> None:
    with pytest.raises(InvalidSettings) as error:
        TenantPricing("gov", Tier.AIRGAPPED)
    assert error.value.field == "licence"
