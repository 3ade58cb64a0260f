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
from sendtime.features import local_time
from sendtime.features.prepare import FeatureBase
from sendtime.features.profiles import Profiles

H = S.HOURS_PER_WEEK
NAMES = (
    "campaign_time",
    "population_best_hour",
    "most_frequent_hour",
    "smoothed_histogram",
    "exposure_corrected_histogram",
)
EXPOSURE_PSEUDO_SENDS = 1.0  # prior weight of the person's overall rate in each hour's response rate


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


def exposure_histograms(base: FeatureBase, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """([n, 2, 168] engagements by the local hour of the send they answer, [n, 2, 168] sends by hour).

    An engagement at 10:00 may only say that we sent at 09:55: counted at its send's hour and divided
    by the sends made at that hour, it becomes a response rate per send hour. Engagements tied to no
    send (activity exports) count at their own hour.
    """
    n = len(base.subscribers)
    sends = base.sends[(base.sends["at"] < as_of) & (base.sends["how"] >= 0)]
    flat = (sends["sub"].to_numpy().astype(np.int64) * 2 + sends["channel"].to_numpy()) * H + sends[
        "how"
    ].to_numpy()
    sent = np.bincount(flat, minlength=n * 2 * H).reshape(n, 2, H).astype(np.float32)
    eng = base.engagements[base.engagements["at"] < as_of]
    how = eng["how"].to_numpy().astype(np.int64)
    if "sent_at" in eng and len(eng):
        tied = eng["sent_at"].notna().to_numpy()
        if tied.any():
            tz_of = base.subscribers["timezone"].to_numpy()
            sent_how = local_time.local_hour_of_week(
                eng["sent_at"][tied], pd.Series(tz_of[eng["sub"].to_numpy()[tied]])
            )
            how[tied] = np.where(sent_how >= 0, sent_how, how[tied])
    keep = how >= 0
    flat = (eng["sub"].to_numpy().astype(np.int64) * 2 + eng["channel"].to_numpy()) * H + how
    engaged = np.bincount(flat[keep], minlength=n * 2 * H).reshape(n, 2, H).astype(np.float32)
    return engaged, sent


def exposure_corrected_scores(engaged: np.ndarray, sent: np.ndarray) -> np.ndarray:
    """Per-hour response rate, smoothed over neighbouring hours and toward the person's overall rate.

    (E_h + k r) / (S_h + k) with E and S blurred by a [1/4, 1/2, 1/4] kernel over the circular week,
    k = EXPOSURE_PSEUDO_SENDS and r the person's own rate on that channel (a floor of 1/H engagement
    keeps people with no engagement from scoring zero everywhere).
    """

    def blur(x: np.ndarray) -> np.ndarray:
        return 0.5 * x + 0.25 * (np.roll(x, 1, axis=-1) + np.roll(x, -1, axis=-1))

    e, s = blur(engaged), blur(sent)
    rate = (engaged.sum(-1, keepdims=True) + 1.0 / H) / (sent.sum(-1, keepdims=True) + 1.0)
    k = EXPOSURE_PSEUDO_SENDS
    return ((e + k * rate) / (s + k)).astype(np.float32)


def baseline_grids(base: FeatureBase, as_of: pd.Timestamp) -> dict[str, np.ndarray]:
    """Every baseline's score grid as of an instant: the raw-history ones plus the exposure-corrected one."""
    grids = score_grids(raw_histograms(base, as_of))
    grids["exposure_corrected_histogram"] = exposure_corrected_scores(*exposure_histograms(base, as_of))
    return grids


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
