"""The LightGBM engagement model: P(click within the label horizon | subscriber, channel, send hour)."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from sendtime.configs.settings import TrainingSettings
from sendtime.features.model_features import FEATURES, MONOTONE

log = logging.getLogger(__name__)


def fit(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    settings: TrainingSettings,
    params: dict | None = None,
    callbacks: list | None = None,
) -> lgb.Booster:
    """Early-stopped on the validation weeks (time-ordered), never on the test weeks."""
    p = dict(settings.lgbm)
    p.update(params or {})
    p.setdefault("monotone_constraints", [MONOTONE.get(f, 0) for f in FEATURES])
    p.setdefault("seed", 0)
    p["deterministic"] = True
    train = lgb.Dataset(
        X_train, y_train, feature_name=FEATURES, categorical_feature=["channel"], free_raw_data=True
    )
    val = lgb.Dataset(X_val, y_val, reference=train)
    return lgb.train(
        p,
        train,
        num_boost_round=p.pop("num_boost_round", settings.num_boost_round),
        valid_sets=[val],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False), *(callbacks or [])],
    )


def refit(
    X: np.ndarray, y: np.ndarray, settings: TrainingSettings, rounds: int, params: dict | None = None
) -> lgb.Booster:
    """Train again on training + validation weeks with the early-stopped number of rounds.

    The validation weeks are the most recent labelled behaviour before the test; leaving them out of
    the final model would make it stale exactly where the base rate drifts.
    """
    p = dict(settings.lgbm)
    p.update(params or {})
    p.pop("num_boost_round", None)
    p.setdefault("monotone_constraints", [MONOTONE.get(f, 0) for f in FEATURES])
    p.setdefault("seed", 0)
    p["deterministic"] = True
    data = lgb.Dataset(X, y, feature_name=FEATURES, categorical_feature=["channel"], free_raw_data=True)
    booster = lgb.train(p, data, num_boost_round=max(1, rounds))
    log.info(
        "model trained: %d trees on %s examples (training and validation weeks)",
        max(1, rounds),
        f"{len(y):,}",
    )
    return booster


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-count bins (rare positives make equal-width bins empty)."""
    order = np.argsort(p, kind="stable")
    err = 0.0
    for chunk in np.array_split(order, bins):
        if chunk.size:
            err += chunk.size * abs(p[chunk].mean() - y[chunk].mean())
    return float(err / max(len(p), 1))


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    return calibration_bins(y, p, bins)[:2]


def calibration_bins(
    y: np.ndarray, p: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-count bin: mean prediction, observed rate, cells and clicks (how far to trust the rate)."""
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, bins) if c.size]
    return (
        np.array([p[c].mean() for c in chunks]),
        np.array([y[c].mean() for c in chunks]),
        np.array([c.size for c in chunks]),
        np.array([y[c].sum() for c in chunks]),
    )


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    out = {
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "calibration_error": calibration_error(y, p),
        "mean_prediction": float(p.mean()),
        "positive_rate": float(np.mean(y)),
    }
    out["auc"] = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return out
