"""The churn model: who leaves within the next 30 days, from per-tenant features at a cutoff.

Why this model: a logistic regression on standardised features. The hazard of leaving moves
monotonically with each signal (usage falling, payments failing, no credit left, a young
account), which a linear log-odds model captures; a few hundred tenants with a few dozen leavers
are too few for a boosted ensemble to beat it; and its coefficients give each tenant's risk
drivers exactly (coefficient x standardised value = that feature's push on the log-odds).
Probabilities are calibrated with Platt scaling fitted on held-out folds (CalibratedClassifierCV),
so a 20% risk means about one tenant in five leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.calibration import CalibratedClassifierCV, calibration_curve  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import brier_score_loss, roc_auc_score  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline, make_pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

from forecasting.features import CHURN_FEATURES

MODEL_NAME = "logistic-platt"
WINDOW_DAYS = 30


@dataclass(frozen=True)
class ChurnMetrics:
    auc: float
    oracle_auc: float | None
    brier: float
    base_rate_brier: float  # Brier of always predicting the training base rate
    tenants: int
    churners: int

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "auc": self.auc,
            "oracle_auc": self.oracle_auc,
            "auc_vs_oracle": None if not self.oracle_auc else self.auc / self.oracle_auc,
            "brier": self.brier,
            "base_rate_brier": self.base_rate_brier,
            "tenants": self.tenants,
            "churners": self.churners,
        }


def train(features: np.ndarray, labels: np.ndarray) -> CalibratedClassifierCV:
    base = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    folds = int(min(5, labels.sum(), (1 - labels).sum()))
    model = CalibratedClassifierCV(base, method="sigmoid", cv=max(folds, 2))
    return model.fit(features, labels)


def predict(model: CalibratedClassifierCV, features: np.ndarray) -> np.ndarray:
    probabilities: np.ndarray = model.predict_proba(features)[:, 1]
    return probabilities


def evaluate(
    probabilities: np.ndarray,
    labels: np.ndarray,
    train_base_rate: float,
    oracle: np.ndarray | None = None,
) -> ChurnMetrics:
    return ChurnMetrics(
        auc=float(roc_auc_score(labels, probabilities)),
        oracle_auc=None if oracle is None else float(roc_auc_score(labels, oracle)),
        brier=float(brier_score_loss(labels, probabilities)),
        base_rate_brier=float(brier_score_loss(labels, np.full(len(labels), train_base_rate))),
        tenants=len(labels),
        churners=int(labels.sum()),
    )


def calibration(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """(observed share leaving, mean predicted) per quantile bin of the predictions."""
    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="quantile")
    return observed, predicted


def drivers(
    model: CalibratedClassifierCV, features: np.ndarray, top: int = 3
) -> list[list[tuple[str, float]]]:
    """Each tenant's features pushing its risk up most: (name, log-odds contribution), averaged
    over the calibration folds' logistic regressions."""
    contributions = np.zeros(features.shape)
    for calibrated in model.calibrated_classifiers_:
        pipeline: Pipeline = calibrated.estimator
        scaled = pipeline[0].transform(features)
        contributions += scaled * pipeline[-1].coef_[0]
    contributions /= len(model.calibrated_classifiers_)
    result = []
    for row in contributions:
        order = np.argsort(row)[::-1][:top]
        result.append([(CHURN_FEATURES[i], float(row[i])) for i in order if row[i] > 0])
    return result
