"""The simple rules every model must beat, scored on the same test cells with the same metrics.

Each baseline turns a person's *raw* history (no exposure correction, no shrinkage) into a score per
(channel, local hour-of-week); a logistic calibration on the validation weeks (score and the person's
smoothed click rate) turns scores into probabilities, so log loss and calibration compare fairly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from sendtime import schema as S
from sendtime.features.prepare import FeatureBase
from sendtime.features.profiles import Profiles

H = S.HOURS_PER_WEEK
NAMES = ("campaign_time", "population_best_hour", "most_frequent_hour", "smoothed_histogram")


def raw_histograms(base: FeatureBase, as_of: pd.Timestamp) -> np.ndarray:
    """[n, 2, 168] counts of human engagements by local hour-of-week before as_of."""
    eng = base.engagements[base.engagements["at"] < as_of]
    n = len(base.subscribers)
    flat = (eng["sub"].to_numpy().astype(np.int64) * 2 + eng["channel"].to_numpy()) * H + eng[
        "how"
    ].to_numpy()
    return np.bincount(flat, minlength=n * 2 * H).reshape(n, 2, H).astype(np.float32)


def score_grids(hist: np.ndarray) -> dict[str, np.ndarray]:
    """Per-baseline score over [n, 2, 168] (campaign_time has no hour preference: all equal)."""
    n = hist.shape[0]
    pop = hist.sum(axis=0)
    pop = pop / np.maximum(pop.sum(axis=-1, keepdims=True), 1)
    # most frequent local hour of day, across the week (ties: earliest)
    by_hour = hist.reshape(n, 2, 7, 24).sum(axis=2)
    mode = by_hour.argmax(axis=-1)
    has = by_hour.sum(axis=-1) > 0
    hour_of = np.arange(H) % 24
    most = (hour_of[None, None, :] == mode[..., None]) & has[..., None]
    smooth = (hist + 1.0 / H * 1.0) / (hist.sum(axis=-1, keepdims=True) + 1.0)
    return {
        "campaign_time": np.zeros_like(hist),
        "population_best_hour": np.broadcast_to(pop[None], hist.shape).astype(np.float32),
        "most_frequent_hour": most.astype(np.float32),
        "smoothed_histogram": (smooth * H).astype(np.float32),
    }


def _design(score: np.ndarray, rate: np.ndarray) -> np.ndarray:
    logit = np.log(np.clip(rate, 1e-5, 1 - 1e-5) / (1 - np.clip(rate, 1e-5, 1 - 1e-5)))
    return np.column_stack([score, logit])


def cell_rates(profiles: Profiles, sub: np.ndarray, channel: np.ndarray) -> np.ndarray:
    rates = np.stack([profiles.table[f"{c}_click_rate"].to_numpy() for c in S.CHANNELS], axis=1)
    return rates[sub, channel]


class Baseline:
    """score grid -> probability, calibrated on validation cells (scikit-learn style: fit returns self)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fit(self, grid: np.ndarray, profiles: Profiles, cells: pd.DataFrame) -> Baseline:
        X = self._X(grid, profiles, cells)
        self.model_ = LogisticRegression(C=10.0, max_iter=200).fit(X, cells["label"].to_numpy())
        return self

    def _X(self, grid: np.ndarray, profiles: Profiles, cells: pd.DataFrame) -> np.ndarray:
        sub, ch, how = (cells[k].to_numpy() for k in ("sub", "channel", "how"))
        return _design(grid[sub, ch, how], cell_rates(profiles, sub, ch))

    def predict(self, grid: np.ndarray, profiles: Profiles, cells: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._X(grid, profiles, cells))[:, 1]

    def predict_grid(self, scores: np.ndarray, rates: np.ndarray) -> np.ndarray:
        """Probabilities for an array of scores, given click rates broadcastable to its shape."""
        X = _design(scores.reshape(-1), np.broadcast_to(rates, scores.shape).reshape(-1))
        return self.model_.predict_proba(X)[:, 1].reshape(scores.shape)
