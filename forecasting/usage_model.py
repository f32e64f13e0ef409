"""The usage model: one small ridge regression per tenant and meter on log usage.

Why this model: each series is short (months of days) and smooth apart from its weekly season,
growth and noise. A linear model on log usage with a trend, weekday dummies and lags five
weeks back learns exactly those, multiplicatively; recency weights let it follow a level that has
moved; ridge keeps the weekday dummies stable on thirteen weeks. A fit takes about a
quarter of a millisecond (reading usage and storing forecasts cost more: bench/forecast.py), and
a series' forecast depends on that series alone, so batching never changes a forecast. Gradient
boosting was not chosen: it cannot extrapolate a trend beyond the values it was trained on.

Forecasts are medians (exp of the log prediction); the interval is the weighted residual
spread in log space, widening with the horizon.

A linear model in log space extrapolates multiplicatively, so a feature outside the range it was
fitted on can send exp() anywhere: a tenant that stopped a few weeks before the origin has fitted
its collapse with a negative weight on the lag, and once the lags read the days without usage the
forecast grew to 1e12 a day. So the lag features are held to (a margin around) the range they
were fitted on, and every forecast day, median and bounds, is held in log space between no usage
and a few times the series' largest day of the last four weeks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import config_context
from sklearn.linear_model import ridge_regression

from forecasting.features import HORIZON, LAG, LAG_WINDOW, TRAIN_DAYS, recency_weights, usage_design

MODEL_NAME = "ridge-log-calendar-lag35"
ALPHA = 1.0
Z_90 = 1.6449  # two-sided 90% interval
SEASON = 7
STOPPED_DAYS = 14  # a series without usage for two weeks is no longer used: forecast as zero
RECENT_DAYS = 28  # the ceiling is relative to the largest day of these, before the origin
MEDIAN_CAP = 2.0  # a median day is at most this many times that largest day
UPPER_CAP = 3.0  # ... and an interval's upper bound this many
LAG_MARGIN = float(np.log(2.0))  # how far (log) a lag feature may leave the range it was fitted on


@dataclass(frozen=True)
class SeriesForecast:
    """Forecast of one series for the days after its last observed day."""

    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True, repr=False)  # arrays: a repr would print them all
class SeriesModel:
    """A fitted series: enough to forecast again after loading (the lags' source values are in
    `tail`). `coef` None: the series is not forecast (too short, or no longer used): zeros."""

    origin: int  # day index of the first forecast day
    coef: np.ndarray | None = None
    intercept: float = 0.0
    offset: float = 0.0
    spread: float = 0.0
    lags: bool = False
    tail: np.ndarray | None = None  # log values of the LAG + LAG_WINDOW days before the origin
    # Bounds (log space): the lag features' fitted range, and the ceilings of the median and of
    # the upper bound. Defaults (none) keep models saved before the bounds loadable.
    lag_range: tuple[float, float] = (-np.inf, np.inf)
    median_ceiling: float = np.inf
    upper_ceiling: float = np.inf

    def forecast(self, weekdays: np.ndarray, horizon: int = HORIZON) -> SeriesForecast:
        if self.coef is None or self.tail is None:
            zeros = np.zeros(horizon)
            return SeriesForecast(zeros, zeros, zeros)
        logs = np.zeros(self.origin + horizon)
        logs[self.origin - len(self.tail) : self.origin] = self.tail  # lags >= horizon read only these
        future = np.arange(self.origin, self.origin + horizon)
        design = usage_design(logs, future, weekdays, self.lags)
        if self.lags:  # the last two columns: the lag and the week ending then
            low, high = self.lag_range
            design[:, -2:] = np.clip(design[:, -2:], low - LAG_MARGIN, high + LAG_MARGIN)
        floor = float(np.log(self.offset))  # no usage
        mean = np.clip(design @ self.coef + self.intercept, floor, self.median_ceiling)
        width = Z_90 * self.spread * np.sqrt(1.0 + np.arange(1, horizon + 1) / horizon)
        upper = np.clip(mean + width, mean, max(self.upper_ceiling, self.median_ceiling))
        return SeriesForecast(
            median=self._quantity(mean),
            lower=self._quantity(np.maximum(mean - width, floor)),
            upper=self._quantity(upper),
        )

    def _quantity(self, log_value: np.ndarray) -> np.ndarray:
        return np.maximum(np.exp(log_value) - self.offset, 0.0)


def fit_series(series: np.ndarray, weekdays: np.ndarray) -> SeriesModel:
    """Fit on the daily history up to the forecast origin; `weekdays` (Monday = 0) covers the
    history and the horizon."""
    origin = len(series)
    used = np.flatnonzero(series)
    if len(used) < 14 or not series[-STOPPED_DAYS:].any():
        return SeriesModel(origin)
    # log(y + 1% of the mean): multiplicative at any scale, where log1p would be near-linear for
    # small quantities (a few GB a day).
    offset = 0.01 * float(series[used].mean())
    logs = np.log(series + offset)
    # Days before the tenant's first use would read as a collapse of usage: start after them,
    # and leave the lags out while the tenant is younger than them plus four weeks.
    lags = bool(origin - used[0] >= LAG + LAG_WINDOW + 28)
    first = max(origin - TRAIN_DAYS, int(used[0]) + (LAG + LAG_WINDOW if lags else 0))
    train_days = np.arange(first, origin)
    weights = recency_weights(len(train_days))
    design = usage_design(logs, train_days, weekdays, lags)
    coef, intercept = _weighted_ridge(design, logs[train_days], weights)
    residuals = logs[train_days] - (design @ coef + intercept)
    recent_max = float(series[-RECENT_DAYS:].max())
    return SeriesModel(
        origin=origin,
        coef=coef,
        intercept=intercept,
        offset=offset,
        spread=float(np.sqrt(np.average(residuals**2, weights=weights))),
        lags=lags,
        tail=logs[max(origin - LAG - LAG_WINDOW, 0) :].copy(),
        lag_range=(float(design[:, -2:].min()), float(design[:, -2:].max())) if lags else (-np.inf, np.inf),
        median_ceiling=float(np.log(MEDIAN_CAP * recent_max + offset)),
        upper_ceiling=float(np.log(UPPER_CAP * recent_max + offset)),
    )


def _weighted_ridge(design: np.ndarray, target: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """`Ridge(alpha=ALPHA).fit(design, target, sample_weight=weights)` (same coefficients), through
    scikit-learn's solver without the estimator: centring here and skipping the per-call checks
    (inputs are finite by construction) makes a fit on a 91 x 10 design ~3x faster."""
    design_mean = np.average(design, axis=0, weights=weights)
    target_mean = float(np.average(target, weights=weights))
    with config_context(assume_finite=True, skip_parameter_validation=True):
        coef = ridge_regression(
            design - design_mean,
            target - target_mean,
            ALPHA,
            sample_weight=weights,
            solver="cholesky",
            check_input=False,
        )
    return coef, target_mean - float(design_mean @ coef)


def forecast_series(series: np.ndarray, weekdays: np.ndarray, horizon: int = HORIZON) -> SeriesForecast:
    return fit_series(series, weekdays).forecast(weekdays, horizon)


def seasonal_naive(series: np.ndarray, horizon: int = HORIZON) -> np.ndarray:
    """The baseline: the last observed week, repeated."""
    last_week = series[-SEASON:]
    return np.resize(last_week, horizon)


def mase_scale(series: np.ndarray) -> float:
    """Mean absolute error of the in-sample one-season-ahead naive forecast (Hyndman & Koehler,
    2006) over the training window: what MASE divides by."""
    window = series[-TRAIN_DAYS:]
    return float(np.abs(window[SEASON:] - window[:-SEASON]).mean())


@dataclass(frozen=True)
class Backtest:
    """MASE of the model and of the seasonal-naive baseline, averaged over the series scored."""

    mase: float
    naive_mase: float
    series: int

    @property
    def relative(self) -> float:
        return self.mase / self.naive_mase if self.naive_mase else float("nan")

    def to_json(self) -> dict[str, float | int]:
        return {
            "mase": self.mase,
            "naive_mase": self.naive_mase,
            "relative": self.relative,
            "series": self.series,
        }


def backtest_series(
    series: np.ndarray, weekdays: np.ndarray, horizon: int = HORIZON
) -> tuple[float, float] | None:
    """(model MASE, naive MASE) holding out the last `horizon` days; None when unscorable: no
    scale, or the tenant was not there through the holdout. A usage forecast is conditional on
    the tenant staying; who leaves is the churn model's question."""
    history, held_out = series[:-horizon], series[-horizon:]
    scale = mase_scale(history)
    if scale <= 0 or not history[-SEASON:].any() or not held_out[-SEASON:].any():
        return None
    forecast = forecast_series(history, weekdays, horizon).median
    model = float(np.abs(held_out - forecast).mean()) / scale
    naive = float(np.abs(held_out - seasonal_naive(history, horizon)).mean()) / scale
    return model, naive


def summarise(scores: list[tuple[float, float]]) -> Backtest:
    if not scores:
        return Backtest(float("nan"), float("nan"), 0)
    model, naive = np.array(scores).T
    return Backtest(float(model.mean()), float(naive.mean()), len(scores))
