"""Churn prediction on the database against the generator's oracle."""

from __future__ import annotations

import numpy as np

from forecasting import churn, model_store
from forecasting.churn_run import run_churn, time_split
from forecasting.generator import oracle
from forecasting.generator_store import fx_source
from tests.forecasting.conftest import PREFIX, SPEC


def test_training_cutoffs_never_see_a_label_the_test_is_scored_on():
    train, test = time_split(273)
    assert max(train) + churn.WINDOW_DAYS <= min(test) and max(test) + churn.WINDOW_DAYS <= 273
    assert len(train) > 20


def test_churn_auc_is_near_the_oracle_and_beats_the_base_rate(private_settings, history, simulated):
    run = run_churn(
        private_settings,
        prefix=PREFIX,
        as_of=SPEC.end,
        history_days=SPEC.days,
        oracle=oracle(simulated),
        fx_source=fx_source(SPEC),
    )
    m = run.metrics
    print(
        f"\nAUC {m.auc:.3f}, oracle AUC {m.oracle_auc:.3f} ({m.auc / m.oracle_auc:.3f}), Brier {m.brier:.4f} vs {m.base_rate_brier:.4f}"
    )
    assert m.churners >= 30
    assert m.auc >= 0.95 * m.oracle_auc
    assert m.brier < m.base_rate_brier

    # The labels read from the database are the generator's truth.
    position = {tenant_id: i for i, tenant_id in enumerate(simulated.tenant_ids)}
    for cutoff in sorted(set(run.test.cutoffs)):
        rows = [i for i, day in enumerate(run.test.cutoffs) if day == cutoff]
        day = (cutoff - SPEC.start).days
        truth = simulated.churns_within(day - 1, 30)[[position[run.test.ids[i]] for i in rows]]
        assert np.array_equal(run.test.labels[rows], truth.astype(int))

    _, meta = model_store.load(private_settings, run.version)
    assert meta["version"] == run.version
    assert len(run.scored_ids) == len(run.drivers) > 100
    assert all(name.split()[0] in churn.CHURN_FEATURES for drivers in run.drivers for name, _ in drivers)
