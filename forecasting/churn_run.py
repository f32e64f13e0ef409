"""Churn prediction on the database: snapshots of every tenant at cutoff days, labelled by whether
it left within the next 30 days (no usage from then to the end of the data), split by time:
the model learns on earlier cutoffs and is scored on later ones it never saw. The model is then
refitted on every labelled snapshot and scores the tenants there today."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from forecasting import churn, data, fx_rates, model_store
from forecasting.features import CHURN_FEATURES, churn_features
from forecasting.tables import churn_scores
from infra.settings import Settings
from pricing.money import minor_unit_digits

LOOKBACK = 63  # days of usage behind each cutoff
FAILURE_WINDOW = 90
STEP = 5  # days between training cutoffs
# Oracle: (tenant ids, cutoff day) -> the true probability of leaving within the window.
Oracle = Callable[[list[str], date], np.ndarray]


@dataclass
class Snapshots:
    ids: list[str]
    cutoffs: list[date]
    features: np.ndarray
    labels: np.ndarray


@dataclass
class ChurnRun:
    version: str
    as_of: date
    metrics: churn.ChurnMetrics
    test: Snapshots
    test_probabilities: np.ndarray
    test_oracle: np.ndarray | None
    scored_ids: list[str]
    probabilities: np.ndarray  # of the tenants there at `as_of`, scored by the refitted model
    drivers: list[list[tuple[str, float]]]
    seconds: float


@dataclass
class Inputs:
    first: date
    usage: np.ndarray  # tenants x days x meters
    records: data.TenantRecords
    credit_eur: np.ndarray  # tenants x days: cumulative credit balance, EUR


def snapshot(inputs: Inputs, cutoff: int, labelled: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tenant indexes there on the day before `cutoff`, their features, their labels)."""
    usage, records = inputs.usage, inputs.records
    there = np.flatnonzero(usage[:, cutoff - 1].any(axis=1))
    features = churn_features(
        usage[there, cutoff - LOOKBACK : cutoff],
        [records.tiers[i] for i in there],
        cutoff - records.created_day[there],
        records.failed_payments[there, max(cutoff - FAILURE_WINDOW, 0) : cutoff].sum(axis=1),
        inputs.credit_eur[there, cutoff - 1],
    )
    if not labelled:
        return there, features, np.zeros(len(there), dtype=int)
    used = np.asarray(usage.any(axis=2))
    last = usage.shape[1] - 1 - np.argmax(used[:, ::-1], axis=1)
    labels = (last[there] <= cutoff + churn.WINDOW_DAYS - 2).astype(int)
    return there, features, labels


def snapshots(inputs: Inputs, cutoffs: list[int]) -> Snapshots:
    ids, days, features, labels = [], [], [], []
    for cutoff in cutoffs:
        there, rows, y = snapshot(inputs, cutoff)
        ids += [inputs.records.ids[i] for i in there]
        days += [inputs.first + timedelta(days=cutoff)] * len(there)
        features.append(rows)
        labels.append(y)
    return Snapshots(ids, days, np.vstack(features), np.concatenate(labels))


def time_split(days: int) -> tuple[list[int], list[int]]:
    """Cutoffs (day indexes) to learn on and to test on: test cutoffs 30 and 60 days before the
    end, whose labels the data just covers; training cutoffs every STEP days from the first with
    a full lookback to where the test's first labels would begin, so no label the test is scored
    on was ever seen in training."""
    test = [days - 2 * churn.WINDOW_DAYS, days - churn.WINDOW_DAYS]
    last_train = test[0] - churn.WINDOW_DAYS
    return sorted(range(last_train, LOOKBACK - 1, -STEP)), test


async def load_inputs(
    conn: AsyncConnection, ids: list[str], first: date, days: int, fx_source: str
) -> Inputs:
    usage = await data.daily_usage(conn, ids, first, days)
    records = await data.tenant_records(conn, ids, first, days)
    rates = await fx_rates.rates_on(conn, fx_source, first + timedelta(days=days - 1))
    scale = np.array(
        [float(10 ** minor_unit_digits(c)) * float(rates.get(c, 1)) for c in records.currencies]
    )  # a feature, not an amount: float is fine here
    credit = np.cumsum(records.credit_minor, axis=1) / scale[:, None]
    return Inputs(first, usage, records, credit)


def run_churn(
    settings: Settings,
    *,
    prefix: str | None = None,
    as_of: date | None = None,
    history_days: int = 273,
    oracle: Oracle | None = None,
    fx_source: str | None = None,
    store: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ChurnRun:
    """Train, test and store a churn model on the `history_days` before `as_of` (default today).
    `progress(done, STEPS)` is called as each step ends."""
    step = progress or (lambda done, total: None)
    return asyncio.run(
        _run(
            settings, prefix, as_of or datetime.now(UTC).date(), history_days, oracle, fx_source, store, step
        )
    )


STEPS = 4  # read the features, train and test, refit and score, store


async def _run(
    settings: Settings,
    prefix: str | None,
    as_of: date,
    history_days: int,
    oracle: Oracle | None,
    fx_source: str | None,
    store: bool,
    step: Callable[[int, int], None],
) -> ChurnRun:
    started = time.perf_counter()
    first = as_of - timedelta(days=history_days)
    engine = data.engine(settings)
    try:
        async with engine.connect() as conn:
            ids = await data.tenant_ids(conn, prefix)
            inputs = await load_inputs(
                conn, ids, first, history_days, fx_source or fx_rates.source_of(settings)
            )
        step(1, STEPS)
        train_cutoffs, test_cutoffs = time_split(history_days)
        train, test = snapshots(inputs, train_cutoffs), snapshots(inputs, test_cutoffs)
        model = churn.train(train.features, train.labels)
        probabilities = churn.predict(model, test.features)
        test_oracle = _oracle(oracle, test) if oracle else None
        metrics = churn.evaluate(probabilities, test.labels, float(train.labels.mean()), test_oracle)
        step(2, STEPS)
        final = churn.train(
            np.vstack((train.features, test.features)), np.concatenate((train.labels, test.labels))
        )
        there, features, _ = snapshot(inputs, history_days, labelled=False)
        scored = churn.predict(final, features)
        drivers = churn.drivers(final, features)
        step(3, STEPS)
        run = ChurnRun(
            version=model_store.new_version("churn"),
            as_of=as_of,
            metrics=metrics,
            test=test,
            test_probabilities=probabilities,
            test_oracle=test_oracle,
            scored_ids=[ids[i] for i in there],
            probabilities=scored,
            drivers=drivers,
            seconds=time.perf_counter() - started,
        )
        if store:
            await _store(engine, settings, run, final)
        step(4, STEPS)
        return run
    finally:
        await engine.dispose()


def _oracle(oracle: Oracle, test: Snapshots) -> np.ndarray:
    result = np.zeros(len(test.ids))
    cutoffs = np.array(test.cutoffs)
    for cutoff in sorted(set(test.cutoffs)):
        rows = np.flatnonzero(cutoffs == cutoff)
        result[rows] = oracle([test.ids[i] for i in rows], cutoff)
    return result


async def _store(engine: AsyncEngine, settings: Settings, run: ChurnRun, model: object) -> None:
    params = {"features": list(CHURN_FEATURES), "window_days": churn.WINDOW_DAYS, "lookback_days": LOOKBACK}
    path = model_store.save(
        settings, run.version, model, {"version": run.version, "as_of": run.as_of, **params}
    )
    rows = [
        {
            "model_version": run.version,
            "tenant_id": tenant_id,
            "as_of": run.as_of,
            "probability": churn_decimal(probability),
            "drivers": [{"feature": name, "contribution": round(value, 4)} for name, value in drivers],
        }
        for tenant_id, probability, drivers in zip(
            run.scored_ids, run.probabilities, run.drivers, strict=True
        )
    ]
    async with engine.begin() as conn:
        await model_store.record(
            conn,
            run.version,
            "churn",
            churn.MODEL_NAME,
            run.as_of - timedelta(days=1),
            params,
            run.metrics.to_json(),
            path,
        )
        if rows:
            await conn.execute(insert(churn_scores), rows)


def churn_decimal(probability: float) -> Decimal:
    return Decimal(f"{probability:.6f}")
