"""Synthetic billing history: tenants on the five tiers whose usage has daily and weekly seasons,
growth and noise, who fail payments now and then, and some of whom disengage and leave.

Pure and deterministic by seed (numpy only); `forecasting.generator_store` writes a history
through the real tables. Churn is drawn from a daily hazard that is a known function of each
tenant's latent state, so the best possible (oracle) probability of leaving within any window is
computable: `History.oracle_probability`. No model can beat it on average, since it conditions on
the latent state itself rather than on noisy observations of it. Likewise for usage:
`History.oracle_usage` is the noise-free median of each day, the bound of a usage forecast.

The hazard's log-odds add up: a base rate, how far a disengaged tenant's usage has fallen (capped),
payments that failed in the last 90 days, prepaid credit left (lowers it), the tier, and the first
90 days of an account. A tenant's usage is its tier's scale x a per-tenant level x growth x a
weekday shape x log-normal noise (shared by its meters, plus a little per meter), zero before it
joins and after it leaves; a disengaged tenant's log usage falls linearly from its onset day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import numpy as np

from pricing.meters import METERS
from pricing.plans import Tier

TIERS: tuple[Tier, ...] = tuple(Tier)
TIER_WEIGHTS = (0.28, 0.30, 0.22, 0.12, 0.08)
# Tier scale of usage, and the tier's own pull on the hazard (zero-tier tenants leave easily).
TIER_SCALE = {Tier.ZERO: 0.3, Tier.SHARED: 1.0, Tier.LITE: 1.5, Tier.ENTERPRISE: 25.0, Tier.AIRGAPPED: 8.0}
TIER_HAZARD = {Tier.ZERO: 0.6, Tier.SHARED: 0.3, Tier.LITE: 0.0, Tier.ENTERPRISE: -0.8, Tier.AIRGAPPED: -1.2}
# (country, currency, region): where tenants are.
LOCALES = (
    ("US", "usd", "us-east"),
    ("DE", "eur", "eu-central"),
    ("ES", "eur", "eu-south"),
    ("JP", "jpy", "ap-northeast"),
    ("GB", "gbp", "eu-west"),
)
# Daily quantity of each meter for a tenant of scale 1, in METERS order.
METER_BASE = np.array([36_000.0, 200.0, 500.0, 5.0, 2_000.0])
# Weekday shape (Monday first): a weekend dip, scaled per tenant.
WEEKLY_SHAPE = np.array([0.08, 0.10, 0.10, 0.08, 0.02, -0.18, -0.20])
# Share of a day's usage in each written block of hours (the daily season).
DAILY_SHAPE = {1: (1.0,), 4: (0.12, 0.30, 0.36, 0.22), 24: None}
# Units of each currency per EUR around which the synthetic rates wander.
FX_CENTRES = {"usd": 1.08, "gbp": 0.86, "jpy": 162.0}
BASE_HAZARD_LOGIT = -7.6
DECAY_HAZARD = 1.6  # logit added per unit that log usage has fallen since disengagement began
DECAY_CAP = 3.0  # ... counted up to a fall to 5% of the usage before
FAILURE_HAZARD = 0.9  # logit added per payment that failed in the last 90 days
CREDIT_HAZARD = -0.7  # prepaid credit left makes a tenant stay
NEW_TENANT_HAZARD = 0.6  # in the first 90 days


@dataclass(frozen=True)
class HistorySpec:
    """What to generate: `tenants` tenants ids `prefix` + number, `days` days from `start`."""

    prefix: str
    tenants: int = 200
    # Nine months: the churn model learns on the first seven (a cutoff every five days) and is
    # tested on the last two; with six, seeds vary more (see the report).
    days: int = 273
    start: date = date(2026, 2, 1)
    hours_per_day: int = 4  # rows of usage_hourly per day: 1, 4 or 24
    seed: int = 7
    disengage_share: float = 0.3
    locales: tuple[tuple[str, str, str], ...] = LOCALES  # (country, currency, region) to draw from

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class History:
    """Every tenant's attributes and daily usage; latent parameters kept for the oracle."""

    spec: HistorySpec
    tenant_ids: tuple[str, ...]
    tiers: tuple[Tier, ...]
    locales: tuple[tuple[str, str, str], ...]
    joined: np.ndarray  # day index the tenant joined (negative: before the history starts)
    churned: np.ndarray  # day index of the first day without the tenant; days when it never left
    onset: np.ndarray  # day disengagement begins; a large number when it never does
    decay_rate: np.ndarray  # how fast log usage falls per day once disengaged
    failure_propensity: np.ndarray  # chance that a payment of the tenant fails
    credit_minor: np.ndarray  # prepaid credit granted at the start, minor units (0: none)
    daily: np.ndarray  # tenants x days x meters, quantities per day
    fx: dict[str, np.ndarray]  # currency -> per-EUR rate for each day
    payment_failed: np.ndarray  # tenants x months (`months()`): that month's first payment failed
    # Latent usage: a day's median is meter_scale x exp(growth x day - decay since onset) x weekly.
    meter_scale: np.ndarray  # tenants x meters
    growth: np.ndarray  # per day, log
    weekly: np.ndarray  # tenants x 7 (Monday first)

    def day(self, index: int) -> date:
        return self.spec.start + timedelta(days=index)

    def instant(self, index: int) -> datetime:
        day = self.day(index)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    def months(self) -> list[tuple[int, int]]:
        """(first day, end day) of each calendar month wholly inside the history: invoiced."""
        result, day = [], 0
        while day < self.spec.days:
            current = self.day(day)
            following = date(current.year + current.month // 12, current.month % 12 + 1, 1)
            end = day + (following - current).days
            if current.day == 1 and end <= self.spec.days:
                result.append((day, end))
            day = end
        return result

    def failures_before(self, day: int, within: int = 90) -> np.ndarray:
        """Failed payments per tenant in the `within` days before `day` (a month's payment is made
        on the day it ends)."""
        ends = np.array([end for _, end in self.months()], dtype=int).reshape(-1)
        recent = (ends <= day) & (ends > day - within)
        failures: np.ndarray = self.payment_failed[:, recent].sum(axis=1)
        return failures

    def hazard(self, days: np.ndarray) -> np.ndarray:
        """Daily hazard of leaving, tenants x days: the known function churn is drawn from."""
        fallen = np.minimum(
            np.clip(days[None, :] - self.onset[:, None], 0, None) * self.decay_rate[:, None], DECAY_CAP
        )
        failures = np.stack([self.failures_before(int(day)) for day in days], axis=1)
        tier_pull = np.array([TIER_HAZARD[tier] for tier in self.tiers])
        tenure = days[None, :] - self.joined[:, None]
        logit = (
            BASE_HAZARD_LOGIT
            + DECAY_HAZARD * fallen
            + FAILURE_HAZARD * failures
            + CREDIT_HAZARD * (self.credit_minor > 0)[:, None]
            + tier_pull[:, None]
            + NEW_TENANT_HAZARD * (tenure < 90)
        )
        hazard: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
        return hazard

    def alive(self, day: int) -> np.ndarray:
        """Tenants that had joined by `day` and not left by it."""
        return (self.joined <= day) & (self.churned > day)

    def churns_within(self, day: int, horizon: int) -> np.ndarray:
        return (self.churned > day) & (self.churned <= day + horizon)

    def oracle_usage(self, origin: int, horizon: int, seen_days: int = 7) -> np.ndarray:
        """Tenants x horizon x meters: the median usage of the days from `origin` given every
        latent parameter, the bound no usage forecast beats on average (the noise is independent
        from day to day). Except for disengagement begun fewer than `seen_days` days before the
        origin, or after it: that is not yet told from noise in the data, so this forecast, like
        any, goes on at the level before it. Conditional on the tenant staying."""
        days = np.arange(origin, origin + horizon)
        known_onset = np.where(self.onset <= origin - seen_days, self.onset, 10**6)
        since = np.clip(days[None, :] - known_onset[:, None], 0, None)
        log_level = self.growth[:, None] * days[None, :] - self.decay_rate[:, None] * since
        weekday = np.array([self.day(int(day)).weekday() for day in days])
        level = np.exp(log_level) * self.weekly[:, weekday]
        usage: np.ndarray = level[:, :, None] * self.meter_scale[:, None, :]
        return usage

    def oracle_probability(self, day: int, horizon: int) -> np.ndarray:
        """P(leave within (day, day + horizon] | latent state), for tenants still there at `day`."""
        days = np.arange(day + 1, day + horizon + 1)
        probability: np.ndarray = 1.0 - np.prod(1.0 - self.hazard(days), axis=1)
        return probability


def simulate(spec: HistorySpec) -> History:
    rng = np.random.default_rng(spec.seed)
    n, days = spec.tenants, spec.days
    tiers = tuple(TIERS[i] for i in rng.choice(len(TIERS), size=n, p=TIER_WEIGHTS))
    locales = tuple(spec.locales[i] for i in rng.integers(0, len(spec.locales), size=n))
    # Most tenants predate the history; a quarter join during its first half.
    joined = np.where(rng.random(n) < 0.75, -rng.integers(30, 400, n), rng.integers(0, days // 2, n))
    disengaging = rng.random(n) < spec.disengage_share
    onset = np.where(disengaging, rng.integers(-20, days, n), 10**6)
    failure = rng.beta(1.0, 9.0, n)
    credit = np.where(rng.random(n) < 0.3, rng.integers(50, 2_000, n) * 100, 0)
    history = History(
        spec=spec,
        tenant_ids=tuple(f"{spec.prefix}{i:05d}" for i in range(n)),
        tiers=tiers,
        locales=locales,
        joined=joined,
        churned=np.full(n, 10**6),
        onset=onset,
        decay_rate=rng.uniform(0.03, 0.07, n),
        failure_propensity=failure,
        credit_minor=credit,
        daily=np.zeros((n, days, len(METERS))),
        fx=_fx_paths(rng, days),
        payment_failed=np.zeros((n, 0), dtype=bool),
        meter_scale=np.zeros((n, len(METERS))),
        growth=np.zeros(n),
        weekly=np.ones((n, 7)),
    )
    # A month is invoiced (and paid, or not) when the tenant had joined before it ended.
    ends = np.array([end for _, end in history.months()], dtype=int)
    failed = (rng.random((n, len(ends))) < failure[:, None]) & (joined[:, None] < ends[None, :])
    history = replace(history, payment_failed=failed)
    churned = _draw_churn(history, rng)
    history = replace(history, churned=churned)
    return _usage(history, rng)


def _draw_churn(history: History, rng: np.random.Generator) -> np.ndarray:
    """The first day each tenant leaves, drawn day by day from its hazard after it joined."""
    days = np.arange(history.spec.days + 60)  # past the end too, so labels near the end exist
    leaves = rng.random((len(history.tenant_ids), len(days))) < history.hazard(days)
    leaves &= days[None, :] > np.maximum(history.joined, 0)[:, None]
    first = np.where(leaves.any(axis=1), leaves.argmax(axis=1), 10**6)
    return first


def _usage(history: History, rng: np.random.Generator) -> History:
    """The history with its daily usage and the latent parameters drawn for it."""
    n, days = len(history.tenant_ids), history.spec.days
    t = np.arange(days)
    scale = np.array([TIER_SCALE[tier] for tier in history.tiers]) * rng.lognormal(0.0, 0.6, n)
    # Which meters a tenant uses follows its tier: zero-tier tenants run executions and egress.
    uses = np.ones((n, len(METERS)))
    uses[[tier is Tier.ZERO for tier in history.tiers], :3] = 0.05
    growth = rng.normal(0.001, 0.002, n)  # about 3% a month
    weekly = 1.0 + rng.uniform(0.5, 1.5, n)[:, None] * WEEKLY_SHAPE[None, :]
    weekday = np.array([(history.day(i).weekday()) for i in range(days)])
    log_level = growth[:, None] * t[None, :]
    since = np.clip(t[None, :] - history.onset[:, None], 0, None)
    log_level -= history.decay_rate[:, None] * since  # disengagement: usage decays
    sigma = rng.uniform(0.06, 0.16, n)
    common = rng.normal(0.0, 1.0, (n, days)) * sigma[:, None]
    level = np.exp(log_level + common) * weekly[:, weekday]
    own = np.exp(rng.normal(0.0, 0.05, (n, days, len(METERS))))
    daily = (scale[:, None] * uses)[:, None, :] * METER_BASE[None, None, :] * level[:, :, None] * own
    present = (t[None, :] >= history.joined[:, None]) & (t[None, :] < history.churned[:, None])
    daily *= present[:, :, None]
    daily[:, :, 4] = np.round(daily[:, :, 4])  # executions are whole
    meter_scale = (scale[:, None] * uses) * METER_BASE[None, :]
    return replace(history, daily=daily, meter_scale=meter_scale, growth=growth, weekly=weekly)


def _fx_paths(rng: np.random.Generator, days: int) -> dict[str, np.ndarray]:
    return {
        currency: centre * np.exp(np.cumsum(rng.normal(0.0, 0.003, days)))
        for currency, centre in FX_CENTRES.items()
    }


def hourly_blocks(hours_per_day: int) -> tuple[tuple[int, float], ...]:
    """(hour, share of the day's usage) for each row written per day: the daily season."""
    if hours_per_day == 24:
        shape = 0.6 + 0.4 * np.sin((np.arange(24) - 6) / 24 * 2 * np.pi)
        shares = shape / shape.sum()
        return tuple((hour, float(shares[hour])) for hour in range(24))
    if hours_per_day not in DAILY_SHAPE:
        raise ValueError("hours_per_day must be 1, 4 or 24")
    step = 24 // hours_per_day
    shares = DAILY_SHAPE[hours_per_day] or ()
    return tuple((i * step, share) for i, share in enumerate(shares))


def oracle(history: History) -> Callable[[list[str], date], np.ndarray]:
    """The best possible churn score of tenants at a cutoff day (see `History.oracle_probability`)."""
    position = {tenant_id: i for i, tenant_id in enumerate(history.tenant_ids)}

    def probabilities(ids: list[str], cutoff: date, horizon: int = 30) -> np.ndarray:
        day = (cutoff - history.spec.start).days
        every = history.oracle_probability(day - 1, horizon)
        return every[[position[tenant_id] for tenant_id in ids]]

    return probabilities
