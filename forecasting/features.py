"""Features, as pure functions of daily usage arrays (tenants x days x meters, or one series).

Usage model: calendar features (trend, weekday) and lag features. The lags are at least the
horizon (35 days: five weeks, the same weekday), so every day of the 30-day forecast is one
direct prediction from known values, never a prediction fed back in (recursion compounds error).

Churn model: per tenant at a cutoff day, from the usage before it and the tenant's records.
"""

from __future__ import annotations

import numpy as np

HORIZON = 30
LAG = 35  # >= HORIZON, a multiple of 7
LAG_WINDOW = 7
TRAIN_DAYS = 91  # the window a series' model is fitted on: 13 weeks
CHURN_FEATURES = (
    "trend_28d",
    "recent_vs_before",
    "drop_8w",
    "volatility",
    "days_since_usage",
    "tenure_days",
    "new_account",
    "payment_failures",
    "credit_balance",
    "tier_zero",
    "tier_shared",
    "tier_lite",
    "tier_enterprise",
    "tier_airgapped",
)


def usage_design(
    log_series: np.ndarray, days: np.ndarray, weekdays: np.ndarray, lags: bool = True
) -> np.ndarray:
    """Rows for `days` (indexes into `log_series`, each >= LAG + LAG_WINDOW when `lags`): trend,
    six weekday dummies (Monday is the baseline), the value five weeks before and the week ending
    then. A series younger than its lags is fitted without them (`lags` False)."""
    dummies = (weekdays[days, None] == np.arange(1, 7)[None, :]).astype(float)
    if not lags:
        return np.column_stack((days / 7.0, dummies))
    lagged = log_series[days - LAG]
    cumulative = np.concatenate(([0.0], np.cumsum(log_series)))
    week_before = (cumulative[days - LAG + 1] - cumulative[days - LAG + 1 - LAG_WINDOW]) / LAG_WINDOW
    return np.column_stack((days / 7.0, dummies, lagged, week_before))


def recency_weights(count: int, half_life_days: float = 56.0) -> np.ndarray:
    """Recent weeks count more, so the fit follows a level that has moved (growth, decay)."""
    age = np.arange(count)[::-1]
    return np.power(0.5, age / half_life_days)


def activity(daily: np.ndarray) -> np.ndarray:
    """Tenants x days: each meter over its own mean across the window, summed, so every meter a
    tenant uses weighs the same whatever its unit."""
    means = daily.mean(axis=1, keepdims=True)
    level: np.ndarray = np.divide(daily, means, out=np.zeros_like(daily), where=means > 0).sum(axis=2)
    return level


def churn_features(
    daily: np.ndarray,
    tiers: list[str],
    tenure_days: np.ndarray,
    payment_failures: np.ndarray,
    credit_balance: np.ndarray,
) -> np.ndarray:
    """One row per tenant, columns CHURN_FEATURES; `daily` holds the 63 days before the cutoff."""
    level = activity(daily)
    log_level = np.log(level + 0.05)
    recent = log_level[:, -28:]
    x = np.arange(28) - 13.5
    trend = (recent * x).sum(axis=1) / (x * x).sum()
    ratio = np.log((level[:, -7:].mean(axis=1) + 0.05) / (level[:, -35:-7].mean(axis=1) + 0.05))
    # How far usage has fallen from its best week in the window: disengagement shows as a fall.
    weeks = level[:, -(level.shape[1] // 7) * 7 :].reshape(len(level), -1, 7).mean(axis=2)
    drop = np.log((weeks[:, -1] + 0.05) / (weeks.max(axis=1) + 0.05))
    volatility = np.diff(recent, axis=1).std(axis=1)
    used = level > 0
    days_since = np.where(used.any(axis=1), np.argmax(used[:, ::-1], axis=1), daily.shape[1])
    tier_names = ("zero", "shared", "lite", "enterprise", "airgapped")
    dummies = np.array([[float(tier == name) for name in tier_names] for tier in tiers]).reshape(-1, 5)
    return np.column_stack(
        (
            trend,
            ratio,
            drop,
            volatility,
            days_since,
            np.log1p(np.maximum(tenure_days, 0)),
            (tenure_days < 90).astype(float),
            payment_failures,
            np.log1p(np.maximum(credit_balance, 0)),
            dummies,
        )
    )
