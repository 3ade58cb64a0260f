"""Decision measures: how good the sends a model would choose are, beside how well it is calibrated.

Log loss judges probabilities; a sender lives by the hours picked. The gate and `sendtime tune` judge
a model by one decision measure as well:

- **capture** where the folder has the simulator's ground truth: the share of the oracle's gain over a
  campaign-time send that the model's plans win over 7 daily 24 h campaigns (`workflows.capture`);
- otherwise the **held-out engagement share inside the chosen windows** (`window_share`): for every
  person and channel with human engagement (opens and clicks) in the held-out period, the model picks
  its best local hour on each of the 7 days of the week, as a daily campaign would, from profiles built
  before the period; each pick opens a window of `training.gate_window_hours` hours. The picks are the
  ones serving would make: the model's served scores (`hour_guard.served_predict`: the profile's rank
  breaks the ties of a tree's flat top, and on channels the hour guard gave the profile the profile
  places the hours), not the raw predictions, whose argmax is the first hour of a plateau. The measure
  is the share of the held-out engagements whose local hour-of-week falls inside one of that person's
  windows on that channel. Every model gets the same 7 windows a person (fewer when they overlap), so it can
  only win by placing them where people engage; picking at random scores about W/24.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.features.model_features import feature_matrix, gather_rows
from sendtime.features.profiles import Profiles

H = S.HOURS_PER_WEEK
MAX_PAIRS = 20_000  # (person, channel) pairs judged; a seeded sample beyond, the same for every model
CHUNK_PAIRS = 2_000  # pairs scored at once (x 168 hours of features each)


def chosen_windows(scores: np.ndarray, window_hours: int) -> np.ndarray:
    """[p, 168] scores -> [p, 168] bool: the hours-of-week covered by each day's best hour + window.

    Ties go to the earliest hour of the day; a window running past midnight covers the next day's hours.
    """
    p = scores.shape[0]
    best = scores.reshape(p, 7, 24).argmax(axis=2) + 24 * np.arange(7)[None, :]  # [p, 7] hour-of-week
    covered = np.zeros((p, H), dtype=bool)
    rows = np.arange(p)[:, None]
    for k in range(window_hours):
        covered[rows, (best + k) % H] = True
    return covered


def held_out_engagements(engagements: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Human engagements (sub, channel, how, at) in [start, end)."""
    at = engagements["at"]
    return engagements.loc[(at >= start) & (at < end), ["sub", "channel", "how", "at"]].reset_index(drop=True)


def window_share(
    predict,
    profiles: Profiles,
    held_out: pd.DataFrame,
    window_hours: int,
    rows: np.ndarray | None = None,
    max_pairs: int = MAX_PAIRS,
    with_best: bool = False,
) -> float:
    """Share of `held_out` engagements inside the model's chosen windows (see the module docstring).

    `predict` maps a feature matrix to scores; the gate and `sendtime tune` pass serving's scorer,
    `hour_guard.served_predict(booster.predict, hour_source)` with `with_best` (see `pair_hits`), so the
    windows are the ones serving would open. `rows` maps each `sub` of `held_out` to a row of `profiles`
    (-1: a cold start), for a model whose snapshot numbers people differently; by default `sub` is the
    row. NaN when nobody engaged in the period.
    """
    if len(held_out) == 0:
        return float("nan")
    _, inside, counts = pair_hits(predict, profiles, held_out, window_hours, rows, max_pairs, with_best)
    return float(inside.sum() / max(counts.sum(), 1))


def pair_hits(
    predict,
    profiles: Profiles,
    held_out: pd.DataFrame,
    window_hours: int,
    rows: np.ndarray | None = None,
    max_pairs: int = MAX_PAIRS,
    with_best: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per judged (person, channel) pair: (channel, engagements inside its windows, engagements), the
    parts of `window_share` that a paired comparison of two scorers needs (training/hour_guard.py).

    `with_best`: `predict(X, best)` also gets each row's best profile response (what serving's scores
    need to place hours by the profile).
    """
    if len(held_out) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    pair_key = held_out["sub"].to_numpy(np.int64) * 2 + held_out["channel"].to_numpy(np.int64)
    pairs, inverse = np.unique(pair_key, return_inverse=True)
    if len(pairs) > max_pairs:  # the same seeded sample for every model judged on these engagements
        keep = np.zeros(len(pairs), dtype=bool)
        keep[np.random.default_rng(0).choice(len(pairs), max_pairs, replace=False)] = True
        mask = keep[inverse]
        pairs_kept = np.flatnonzero(keep)
        position = np.full(len(pairs), -1)
        position[pairs_kept] = np.arange(len(pairs_kept))
        pairs, inverse, hows = pairs[keep], position[inverse[mask]], held_out["how"].to_numpy()[mask]
    else:
        hows = held_out["how"].to_numpy()
    subs, channels = pairs // 2, pairs % 2
    profile_rows = subs if rows is None else np.asarray(rows)[subs]
    inside = np.zeros(len(pairs), dtype=np.int64)  # engagements inside each pair's windows
    counts = np.bincount(inverse, minlength=len(pairs))
    for lo in range(0, len(pairs), CHUNK_PAIRS):
        hi = min(lo + CHUNK_PAIRS, len(pairs))
        uniq, local = np.unique(profile_rows[lo:hi], return_inverse=True)
        g = gather_rows(profiles, uniq)
        idx = np.repeat(local, H)
        ch = np.repeat(channels[lo:hi], H)
        how = np.tile(np.arange(H), hi - lo)
        X = feature_matrix(g, profiles, idx, ch, how)
        scores = np.asarray(predict(X, g.best[idx, ch]) if with_best else predict(X)).reshape(hi - lo, H)
        covered = chosen_windows(scores, window_hours)
        sel = (inverse >= lo) & (inverse < hi)
        hit = covered[inverse[sel] - lo, hows[sel]]
        inside[lo:hi] = np.bincount(inverse[sel] - lo, weights=hit, minlength=hi - lo).astype(np.int64)
    return channels, inside, counts
