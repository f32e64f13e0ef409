"""The synthetic history: deterministic, seasonal, growing, and churn drawn from a known hazard."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from forecasting.generator import HistorySpec, oracle, simulate
from pricing.plans import Tier

SPEC = HistorySpec(prefix="gen-", tenants=300, seed=11)


def test_the_same_seed_gives_the_same_history_and_another_seed_another():
    first, again, other = (
        simulate(SPEC),
        simulate(SPEC),
        simulate(HistorySpec(prefix="gen-", tenants=300, seed=12)),
    )
    assert np.array_equal(first.daily, again.daily) and np.array_equal(first.churned, again.churned)
    assert not np.array_equal(first.daily, other.daily)


def test_every_tier_appears_and_weekends_are_quieter():
    history = simulate(SPEC)
    assert set(history.tiers) == set(Tier)
    active = history.daily.sum(axis=2)
    weekday = np.array([history.day(i).weekday() for i in range(SPEC.days)])
    working, weekend = active[:, weekday < 5].mean(), active[:, weekday >= 5].mean()
    assert weekend < 0.85 * working


def test_churners_usage_decays_before_they_leave():
    history = simulate(SPEC)
    decayed = [
        i
        for i in range(SPEC.tenants)
        if history.churned[i] < SPEC.days
        and max(history.joined[i], 0) + 14 <= history.onset[i] < history.churned[i] - 21
    ]
    assert len(decayed) >= 10
    for i in decayed:
        leave, onset = history.churned[i], history.onset[i]
        before = history.daily[i, onset - 14 : onset].sum(axis=1).mean()
        last_week = history.daily[i, leave - 7 : leave].sum(axis=1).mean()
        assert last_week < 0.6 * before
        assert not history.daily[i, leave:].any()


def test_the_oracle_scores_the_generators_own_labels_well_but_not_perfectly():
    history = simulate(SPEC)
    there = history.alive(119)
    labels = history.churns_within(119, 30)[there]
    ids = [history.tenant_ids[i] for i in np.flatnonzero(there)]
    from datetime import timedelta

    probabilities = oracle(history)(ids, SPEC.start + timedelta(days=120))
    assert 0.75 < roc_auc_score(labels, probabilities) < 1.0
    assert np.allclose(probabilities, history.oracle_probability(119, 30)[there])


def test_the_usage_oracle_is_the_median_day_and_knows_a_disengagement_only_once_seen():
    """`oracle_usage`, the bound of usage forecasts: the realised days scatter around it (the
    noise has median one); a tenant that starts to disengage the day before the origin is
    forecast by it as if it had not, until a week of decay has shown."""
    history = simulate(SPEC)
    origin = 200
    bound = history.oracle_usage(origin, 30)
    present = history.alive(origin + 29) & (history.onset > origin + 29)
    ratio = history.daily[present, origin : origin + 30, :3] / bound[present, :, :3]
    assert abs(np.median(ratio) - 1.0) < 0.01
    t = int(np.flatnonzero((history.onset > 0) & (history.onset < history.spec.days - 40))[0])
    onset = int(history.onset[t])
    unseen, seen = history.oracle_usage(onset + 1, 30), history.oracle_usage(onset + 1, 30, seen_days=0)
    assert (seen[t] < unseen[t]).all()
    assert np.allclose(
        history.oracle_usage(onset + 7, 30)[t], history.oracle_usage(onset + 7, 30, seen_days=0)[t]
    )
