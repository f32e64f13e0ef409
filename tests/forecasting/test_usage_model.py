"""The usage model on its own: weekly shape, changepoints, intervals and their coverage, MASE against
seasonal-naive, reloading."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from forecasting.generator import HistorySpec, simulate
from forecasting.usage_model import (
    backtest_series,
    fit_series,
    fit_tenant,
    forecast_series,
    mase_scale,
    seasonal_naive,
    summarise,
)
from forecasting.usage_run import UsageJob, UsageRun, fit_batch
from forecasting.workflows import PLOT_HISTORY_DAYS, representative, usage_bound

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


def _backtest(spec: HistorySpec):
    """The backtest a run prints (the last 30 days held out, the models fitted on the days before
    them only) on a generated history as a run reads it, and the best possible MASE there."""
    history = simulate(spec)
    job = UsageJob("backtest", spec.end, store=False)
    usage = history.daily[:, -job.history_days :]
    result = summarise(fit_batch(list(history.tenant_ids), usage, job).scores)
    return result, usage_bound(history, spec.days - job.horizon, job.horizon)


def test_held_out_days_meet_the_issue_17_bar_mase_and_90_percent_band_coverage():
    """Issue 17: MASE <= 0.8 and 90% bands covering 88-92% of the held-out days, on the tests'
    generated history (400 tenants, seed 7)."""
    result, _ = _backtest(HistorySpec(prefix="um-", tenants=400, seed=7))
    assert result.series > 1000
    assert result.mase <= 0.8 and result.relative < 0.7
    assert 0.88 <= result.coverage_90 <= 0.92


def test_on_the_demo_history_the_model_is_near_the_best_possible_which_is_above_the_bar():
    """The demo's history (300 tenants, seed 7) cannot reach MASE 0.8: the generator's own
    noise-free level, knowing every disengagement a week after it began, scores 0.839 there (two
    tenants start to disengage two and four days before the origin). The model comes within
    0.025 of that (the forecasts of issue 17's first model, one series at a time on 26 weeks,
    were 0.033 above it), and its bands keep their coverage."""
    result, bound = _backtest(HistorySpec(prefix="demo-", tenants=300, seed=7))
    assert bound > 0.8
    assert result.mase - bound < 0.025
    assert 0.88 <= result.coverage_90 <= 0.92


def test_meters_that_move_together_share_one_shape_and_one_that_does_not_keeps_its_own():
    """A tenant's meters are one workload: fitted on their mean log, they get the same trend,
    weekday effects and changepoint (each its own level). A meter growing 1% a day while the
    others are flat is fitted on its own, and forecast to go on growing."""
    rng = np.random.default_rng(5)
    common = _series(182, seed=2)
    usage = np.column_stack([common * scale * np.exp(rng.normal(0, 0.03, 182)) for scale in (1.0, 0.2, 5.0)])
    models = fit_tenant(usage, WEEKDAYS)
    assert all(np.array_equal(models[0].coef, model.coef) for model in models[1:])
    assert len({round(model.intercept, 6) for model in models}) == 3
    growing = usage.copy()
    growing[:, 2] *= np.exp(0.01 * np.arange(182))
    models = fit_tenant(growing, WEEKDAYS)
    assert np.array_equal(models[0].coef, models[1].coef) and not np.array_equal(
        models[0].coef, models[2].coef
    )
    forecast = models[2].forecast(WEEKDAYS).median
    assert forecast[-7:].mean() > 1.2 * growing[-7:, 2].mean()


def test_the_backtest_never_sees_the_days_it_scores():
    """A time split: the held-out days change the score, never the forecast scored."""
    series, horizon = _series(182), 30
    history, held_out = series[:-horizon], series[-horizon:]
    forecast = forecast_series(history, WEEKDAYS, horizon)
    for changed in (held_out, held_out * 3.0, held_out[::-1]):
        scored = backtest_series(np.concatenate((history, changed)), WEEKDAYS, horizon)
        assert scored is not None
        mase, _, coverage = scored
        assert mase == pytest.approx(np.abs(changed - forecast.median).mean() / mase_scale(history))
        assert coverage == ((forecast.lower <= changed) & (changed <= forecast.upper)).mean()


def test_a_tenant_whose_usage_turns_down_is_forecast_to_keep_falling():
    """A changepoint: steady for months, then falling 5% a day for the last four weeks (how the
    generator's disengaging tenants go). A single trend would still forecast near the old level."""
    series = _series(182)
    series[-28:] *= np.exp(-0.05 * np.arange(1, 29))
    model = fit_series(series, WEEKDAYS)
    forecast = model.forecast(WEEKDAYS)
    assert 0 < model.changepoint <= 42
    assert forecast.median[-7:].mean() < 0.5 * series[-7:].mean()
    steady = fit_series(_series(182), WEEKDAYS)
    assert steady.changepoint == 0


@pytest.mark.parametrize(
    "spec",
    [HistorySpec(prefix="demo-", tenants=300, seed=7), HistorySpec(prefix="um-", tenants=400, seed=7)],
    ids=["demo-history", "test-history"],
)
@pytest.mark.parametrize("days_before_end", [0, 30])
def test_forecasts_stay_within_a_few_times_the_largest_day_of_the_history(spec, days_before_end):
    """A tenant that stopped some weeks before the origin once had its forecast explode (1e12
    cpu-seconds a day, the demo's plot): every median and upper bound stays below 5x the series'
    largest day in the history read."""
    history = simulate(spec)
    end = spec.days - days_before_end
    job = UsageJob("bounds", history.day(end), backtest=False, store=False)
    usage = np.zeros((len(history.tenant_ids), job.history_days, history.daily.shape[2]))
    read = history.daily[:, max(end - job.history_days, 0) : end]  # no usage before the history
    usage[:, -read.shape[1] :] = read
    forecasts = fit_batch(list(history.tenant_ids), usage, job).forecasts
    assert np.isfinite(forecasts).all() and (forecasts >= 0).all()
    largest = usage.max(axis=1)[:, :, None]  # tenants x meters x 1
    for bound in (0, 2):  # median, upper
        assert (forecasts[:, :, bound, :] <= 5 * largest).all()
    assert (forecasts[:, :, 1, :] <= forecasts[:, :, 0, :]).all()
    assert (forecasts[:, :, 0, :] <= forecasts[:, :, 2, :]).all()


def test_the_plotted_tenant_is_a_typical_active_one():
    """Not the one with the largest forecast (once the exploding churner), nor one that left or
    is leaving: active through the end, its usage near the middle of the tenants'."""
    spec = HistorySpec(prefix="demo-", tenants=300, seed=7)
    history = simulate(spec)
    job = UsageJob("plot", spec.end, backtest=False, store=False)
    usage = history.daily[:, -job.history_days :]
    ids = list(history.tenant_ids)
    forecasts = fit_batch(ids, usage, job).forecasts
    run = UsageRun("plot", spec.end, ids, forecasts, summarise([]), {}, 0.0)
    t = ids.index(representative(run, usage[:, -PLOT_HISTORY_DAYS:]))
    assert history.churned[t] > spec.days and history.onset[t] > spec.days
    totals = usage[:, -28:].sum(axis=1)  # tenants x meters
    share_below = (totals < totals[t]).mean(axis=0)
    assert ((share_below > 0.2) & (share_below < 0.8)).all()
