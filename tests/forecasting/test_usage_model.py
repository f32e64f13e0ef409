"""The usage model on its own: weekly shape, intervals, MASE against seasonal-naive, reloading."""

from __future__ import annotations

import pickle

import numpy as np

from forecasting.generator import HistorySpec, simulate
from forecasting.usage_model import backtest_series, fit_series, seasonal_naive, summarise

WEEKDAYS = np.arange(400) % 7


def _series(days: int = 140, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = np.array([1.1, 1.1, 1.1, 1.1, 1.0, 0.7, 0.6])
    return 1000 * np.exp(0.002 * np.arange(days) + rng.normal(0, 0.08, days)) * shape[WEEKDAYS[:days]]


def test_the_forecast_keeps_the_weekly_shape_and_its_interval_holds_the_median():
    forecast = fit_series(_series(), WEEKDAYS).forecast(WEEKDAYS)
    assert forecast.median.shape == (30,)
    weekend = forecast.median[WEEKDAYS[140:170] >= 5].mean()
    working = forecast.median[WEEKDAYS[140:170] < 5].mean()
    assert 0.5 < weekend / working < 0.75
    assert np.all(forecast.lower <= forecast.median) and np.all(forecast.median <= forecast.upper)


def test_a_series_no_longer_used_is_forecast_as_zero():
    series = _series()
    series[-30:] = 0
    assert not fit_series(series, WEEKDAYS).forecast(WEEKDAYS).upper.any()


def test_seasonal_naive_repeats_the_last_week():
    series = np.arange(20.0)
    assert list(seasonal_naive(series, 9)) == [13, 14, 15, 16, 17, 18, 19, 13, 14]


def test_a_pickled_model_forecasts_the_same():
    model = fit_series(_series(), WEEKDAYS)
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(model.forecast(WEEKDAYS).median, again.forecast(WEEKDAYS).median)


def test_mase_on_a_generated_history_beats_seasonal_naive():
    history = simulate(HistorySpec(prefix="um-", tenants=150, seed=3))
    weekdays = np.array([history.day(i).weekday() for i in range(history.spec.days + 30)])
    scores = [
        score
        for t in range(150)
        for m in range(5)
        if (score := backtest_series(history.daily[t, :, m], weekdays)) is not None
    ]
    result = summarise(scores)
    assert result.series > 300
    assert result.mase < 1.0 and result.relative < 0.9
