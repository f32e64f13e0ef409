"""The pure parts of webhooks and alerts: targets, backoff, alert parsing and projections."""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from notifications.alert_rules import AlertKind, first_crossing, parse_alert, projected_totals
from notifications.events import EventType, subscription, wants
from notifications.retries import next_attempt, retry_delay
from notifications.signing import headers, new_secret
from notifications.targets import TargetRefused, check_address, parse_url
from pricing.errors import InvalidField
from pricing.money import Currency, Money


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1", "0.0.0.0",
     "::ffff:127.0.0.1", "100.64.0.1", "224.0.0.1", "fc00::1"],
)
def test_private_loopback_and_link_local_addresses_are_refused_unless_allowed(address):
    with pytest.raises(TargetRefused) as refused:
        check_address(ipaddress.ip_address(address), allow_private=False)
    assert refused.value.field == "url"
    check_address(ipaddress.ip_address(address), allow_private=True)


def test_public_addresses_pass():
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        check_address(ipaddress.ip_address(address), allow_private=False)


@pytest.mark.parametrize("url", ["ftp://x.example/", "javascript:alert(1)", "http:///nohost", "https://u:p@x.example/", "", 7])
def test_only_http_and_https_urls_naming_a_host(url):
    with pytest.raises(TargetRefused):
        parse_url(url)


def test_backoff_doubles_with_jitter_up_to_the_cap_and_stops_at_the_window():
    rng = random.Random(1)
    delays = [retry_delay(n, 5, 3600, rng) for n in range(1, 16)]
    for n, delay in enumerate(delays, start=1):
        step = min(3600, 5 * 2 ** (n - 1))
        assert step / 2 <= delay <= step
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_attempt(now, 3, now, 5, 3600) is None
    assert next_attempt(now, 30, now + timedelta(seconds=10), 5, 3600) == now + timedelta(seconds=10)
    # At least 24 h of retries: the default window is 28 h and the delays never pass it.
    total, n = 0.0, 1
    while total < 100_800:
        total += retry_delay(n, 5, 3600, rng)
        n += 1
    assert 30 < n < 60


def test_signatures_verify_with_the_library_and_carry_every_secret():
    from standardwebhooks import Webhook

    old, new = new_secret(), new_secret()
    body = b'{"id":"msg_1","type":"invoice.paid","created_at":"2026-01-01T00:00:00+00:00","data":{}}'
    sent = headers("msg_1", datetime.now(UTC), body, [new, old])
    assert sent["webhook-id"] == "msg_1" and len(sent["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, sent)


def test_subscriptions():
    assert subscription(["*"]) == ("*",)
    assert wants(("*",), EventType.INVOICE_PAID) and not wants(("invoice.voided",), EventType.INVOICE_PAID)
    for bad, field in ((["*", "invoice.paid"], "event_types"), ("*", "event_types"), (["x"], "event_types[0]")):
        with pytest.raises(InvalidField) as refused:
            subscription(bad)
        assert refused.value.field == field


def test_alert_thresholds_are_exact_decimals_in_the_tenant_currency():
    spec = parse_alert({"kind": "spend", "threshold": "150.10"}, "usd")
    assert (spec.kind, spec.threshold, spec.currency) == (AlertKind.SPEND, Decimal("150.10"), "usd")
    assert parse_alert({"kind": "usage", "meter": "network_gb", "threshold": "0.000001"}, "usd").threshold == Decimal(
        "0.000001"
    )
    assert parse_alert({"kind": "spend", "threshold": "1000"}, "jpy").threshold == Decimal(1000)
    for body, field in [
        ({"kind": "spend", "threshold": "1.5"}, None),
        ({"kind": "spend", "threshold": "10.5"}, None),
        ({"kind": "spend", "threshold": "1.5", "currency": "eur"}, "currency"),
        ({"kind": "spend", "threshold": "1.5", "meter": "cpu_seconds"}, "meter"),
        ({"kind": "spend", "threshold": "NaN"}, "threshold"),
        ({"kind": "spend", "threshold": "Infinity"}, "threshold"),
        ({"kind": "spend", "threshold": True}, "threshold"),
        ({"kind": "spend", "threshold": 0.5}, "threshold"),  # a float never
        ({"kind": "spend", "threshold": "0"}, "threshold"),
        ({"kind": "spend", "threshold": "1", "colour": "red"}, "colour"),
    ]:
        if field is None:
            parse_alert(body, "usd")
            continue
        with pytest.raises(InvalidField) as refused:
            parse_alert(body, "usd")
        assert refused.value.field == field, body
    with pytest.raises(InvalidField):
        parse_alert({"kind": "spend", "threshold": "1.5"}, "jpy")  # yen have no decimals


def test_a_projection_adds_each_day_of_forecast_and_finds_the_crossing_day():
    today, end = date(2025, 3, 10), date(2025, 4, 1)
    daily = {date(2025, 3, 11) + timedelta(days=i): {"cpu_seconds": Decimal(36000)} for i in range(14)}
    days = projected_totals(today, end, {"cpu_seconds": Decimal(3600)}, daily)
    assert days[0] == (today, {"cpu_seconds": Decimal(3600), **{m: Decimal(0) for m in days[0][1] if m != "cpu_seconds"}})
    assert [d for d, _ in days] == [today + timedelta(days=i) for i in range(22)]
    # Past the 14-day horizon each day repeats the same weekday a week before.
    assert days[-1][1]["cpu_seconds"] == 3600 + 21 * 36000
    usd = Currency.of("usd")
    amounts = [(d, Money.from_major(t["cpu_seconds"] / 3600 * Decimal("0.05"), usd)) for d, t in days]
    assert first_crossing(amounts, Money.from_major(Decimal("5.00"), usd)) == date(2025, 3, 20)
    assert first_crossing(amounts, Money.from_major(Decimal(100), usd)) is None


def test_credits_alerts_balance_under_the_threshold_and_grants_expiring_within_a_week():
    from notifications.alert_rules import balance_low, expiring_grants
    from pricing.credits import CreditLedger, Debit, Grant, GrantKind

    start, now = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 20, tzinfo=UTC)
    ledger = (
        CreditLedger("t", Currency.of("usd"))
        .append(Grant("soon", start, Decimal(5000), GrantKind.PROMOTIONAL, expires_at=now + timedelta(days=6)))
        .append(Grant("later", start, Decimal(5000), GrantKind.PREPAID, expires_at=now + timedelta(days=30)))
        .append(Grant("spent", start, Decimal(1000), GrantKind.PROMOTIONAL, expires_at=now + timedelta(days=2)))
        .append(Debit("spent", start + timedelta(days=1), Decimal(1000), "inv-1"))
    )
    assert balance_low(ledger, now, Decimal("100.00")) is None  # $100.00 left: not under $100
    assert balance_low(ledger, now, Decimal("100.01")) == Money.from_major(Decimal(100), Currency.of("usd"))
    assert [b.grant.grant_id for b in expiring_grants(ledger, now, Decimal(0))] == ["soon"]  # "spent" has nothing left
    assert list(expiring_grants(ledger, now, Decimal(50))) == []  # $50.00 left is not more than $50
