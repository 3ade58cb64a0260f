"""The hour guard: the model picks a channel's hours only where, on held-out engagement, it picks them at
least as well as the profile alone; otherwise the profile picks the hours and the model scores channels.

Why a guard. The model predicts P(click | subscriber, channel, hour) from the profile's response at the
hour and the person's levels. Its probabilities are what the policy needs to choose a channel and to
spend an SMS budget, but its ranking of one person's hours is only worth keeping if it places the sends
where people engage at least as well as the profile's own ranking does. With the monotone hour features
of features/model_features.py and the rank tie-break below, a LightGBM champion ranks a person's hours
exactly as the profile does, so the two picks agree and the guard keeps the model; a model trained
without those constraints (another feature set, a hand-set `monotone_constraints`) is held to the same
test rather than trusted.

The test (`judge`): on the held-out period's human engagements, every (person, channel) gets 7 daily
windows of `training.gate_window_hours` from each arm's scores (training/decision.py's measure), once
with the model's served scores and once with the profile-placed scores (`served_scores` with the
channel guarded). Per channel, the window shares are compared with a paired standard error over people.
The rule: the profile places the hours when the model's share is below the profile's by more than
`training.hour_guard_tolerance` (0: any shortfall); a channel without held-out engagement keeps the model.

How serving follows it (`served_scores`, the one scoring function of `serving/predictor.py`, and so of
the API, `sendtime predict`, the batch plan and capture): on a guarded channel a cell's score is the
model's probability at the person's best profile hour (the channel's level) times the profile's
response at the cell relative to that best. Within the channel the hours are ranked by the profile;
the channel's value at its best hour is the model's own maximum.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.features.model_features import FEATURES
from sendtime.features.profiles import Profiles
from sendtime.training.decision import pair_hits

TIE_BREAK = 1e-3  # among hours the model scores alike, the profile's rank decides (at most a 0.1% nudge)
RANK_COLUMN = FEATURES.index("response_rank")
CHANNEL_COLUMN = FEATURES.index("channel")
RESPONSE = FEATURES.index("response")
VS_BEST = FEATURES.index("response_vs_best")
CLICK_RATE, ENGAGE_RATE = FEATURES.index("click_rate"), FEATURES.index("engage_rate")
RATE_X, ENGAGE_X = FEATURES.index("rate_x_response"), FEATURES.index("engage_rate_x_response")
TOP_RANK = (S.HOURS_PER_WEEK - 1) / S.HOURS_PER_WEEK  # `response_rank` of a person's best hour
MODEL, PROFILE = "model", "profile"
TAG = "hour_source"  # registry version tag and Predictor meta key: {"email": "model", "sms": "profile"}


def parse(value: str | Mapping | None) -> dict[str, str]:
    """Tag or meta value -> {channel: source}; a version without the tag lets the model place hours."""
    if value is None or value == "":
        return {c: MODEL for c in S.CHANNELS}
    found = json.loads(value) if isinstance(value, str) else dict(value)
    return {c: PROFILE if found.get(c) == PROFILE else MODEL for c in S.CHANNELS}


def guarded_channels(source: str | Mapping[str, str] | None) -> np.ndarray:
    """bool [2]: the channels (in `schema.CHANNELS` order) whose hours the profile places."""
    found = parse(source)
    return np.array([found[c] == PROFILE for c in S.CHANNELS])


def served_scores(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    best: np.ndarray,
    guarded: np.ndarray | None = None,
) -> np.ndarray:
    """The scores serving gives feature rows `X`; `best` [m] is each row's best profile response and
    `guarded` [m] bool marks the rows whose hour the profile places (see the module docstring).

    Trees give a step function: many of a person's hours share one probability, and among hours the
    model cannot tell apart the profile's own ranking decides.
    """
    X = np.asarray(X)
    inputs, ratio = X, None
    if guarded is not None:
        best = np.asarray(best, dtype=np.float64)
        rows = np.asarray(guarded, dtype=bool) & np.isfinite(X[:, RESPONSE]) & (best > 0)
        if rows.any():
            ratio = X[rows, RESPONSE].astype(np.float64) / best[rows]
            inputs = X.copy()
            at_best = inputs[rows]
            at_best[:, RESPONSE] = best[rows]
            at_best[:, VS_BEST] = 1.0
            at_best[:, RANK_COLUMN] = TOP_RANK
            at_best[:, RATE_X] = at_best[:, CLICK_RATE] * best[rows]
            at_best[:, ENGAGE_X] = at_best[:, ENGAGE_RATE] * best[rows]
            inputs[rows] = at_best
    pred = np.asarray(predict(inputs), dtype=np.float64)
    if ratio is not None:
        pred[rows] = pred[rows] * ratio
    return pred * (1.0 + TIE_BREAK * X[:, RANK_COLUMN])


def served_predict(
    predict: Callable[[np.ndarray], np.ndarray], hour_source: str | Mapping[str, str] | None
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`predict` as serving scores it under `hour_source` (a version's tag, its parsed form, or None: no
    channel guarded), as a `predict(X, best)` for training/decision.py's `with_best` measures: a decision
    measure must judge the hours serving would pick, not the raw argmax (the first hour of a tree's
    plateau)."""
    profile_hours = guarded_channels(hour_source)

    def scores(X: np.ndarray, best: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        guarded = profile_hours[X[:, CHANNEL_COLUMN].astype(np.int64)] if profile_hours.any() else None
        return served_scores(predict, X, best, guarded)

    return scores


@dataclass(frozen=True)
class ChannelVerdict:
    """One channel's held-out comparison and the source it gets."""

    channel: str
    people: int  # held-out people judged on this channel
    engagements: int
    model_share: float
    profile_share: float
    diff: float  # model - profile
    se: float  # paired over people
    source: str


def rule(model_share: float, profile_share: float, tolerance: float) -> str:
    """The profile places the hours when the model's share falls below the profile's by more than
    `tolerance`; no held-out engagement (NaN) keeps the model."""
    if not (np.isfinite(model_share) and np.isfinite(profile_share)):
        return MODEL
    return PROFILE if model_share < profile_share - tolerance else MODEL


def paired(inside_a: np.ndarray, inside_b: np.ndarray, counts: np.ndarray) -> tuple[float, float, float]:
    """(share a, share b, SE of a - b) over people: shares are ratios of sums, so the SE is the ratio
    estimator's, linearised per person (one row of each array a person)."""
    total = counts.sum()
    if total == 0:
        return float("nan"), float("nan"), float("nan")
    a, b = inside_a.sum() / total, inside_b.sum() / total
    z = (inside_a - inside_b) - (a - b) * counts
    n = len(counts)
    se = float(np.sqrt((z**2).sum() * n / max(n - 1, 1)) / total)
    return float(a), float(b), se


def judge(
    predict: Callable[[np.ndarray], np.ndarray],
    profiles: Profiles,
    held_out: pd.DataFrame,
    window_hours: int,
    tolerance: float = 0.0,
) -> dict[str, ChannelVerdict]:
    """Per channel: the model's served hours against the profile-placed hours on `held_out` (module doc)."""

    def arm(model: Callable[[np.ndarray], np.ndarray], guard: bool):
        source = {c: PROFILE if guard else MODEL for c in S.CHANNELS}
        return pair_hits(served_predict(model, source), profiles, held_out, window_hours, with_best=True)

    channels, inside_m, counts = arm(predict, False)
    # profile-placed windows do not depend on the model: its level at the best hour is one positive
    # number per person and channel, so a constant stands in for it (one model pass saved)
    _, inside_p, _ = arm(lambda X: np.ones(len(X)), True)
    out = {}
    for c, name in enumerate(S.CHANNELS):
        on = channels == c
        m, p, se = paired(inside_m[on], inside_p[on], counts[on])
        out[name] = ChannelVerdict(
            name, int(on.sum()), int(counts[on].sum()), m, p, m - p, se, rule(m, p, tolerance)
        )
    return out


def decide(
    setting: str,
    predict: Callable[[np.ndarray], np.ndarray],
    profiles: Profiles,
    held_out: pd.DataFrame,
    window_hours: int,
    tolerance: float,
) -> tuple[dict[str, str], dict[str, ChannelVerdict]]:
    """`training.hour_source`: "auto" judges each channel; "model" or "profile" forces it (still measured)."""
    verdicts = judge(predict, profiles, held_out, window_hours, tolerance)
    if setting == "auto":
        return {c: v.source for c, v in verdicts.items()}, verdicts
    return {c: setting for c in S.CHANNELS}, verdicts


def metrics(verdicts: Mapping[str, ChannelVerdict], source: Mapping[str, str]) -> dict[str, float]:
    """The comparison as flat MLflow metrics (`hour_guard_<channel>_<figure>`, finite ones only), and
    `hour_guard_<channel>_profile`: 1 where the profile ranks the channel's hours."""
    out = {}
    for c, v in verdicts.items():
        out[f"hour_guard_{c}_profile"] = float(source[c] == PROFILE)
        for key, value in asdict(v).items():
            if key in ("channel", "source"):
                continue
            if np.isfinite(value):
                out[f"hour_guard_{c}_{key}"] = float(value)
    return out


def describe(source: Mapping[str, str], verdicts: Mapping[str, ChannelVerdict]) -> str:
    """One line for the train output: per channel, who places the hours and why."""
    parts = []
    for c, v in verdicts.items():
        if v.people == 0:
            parts.append(f"{c} {source[c]} (no held-out engagement)")
        else:
            parts.append(
                f"{c} {source[c]} (window share: model {v.model_share:.3f}, profile {v.profile_share:.3f}, "
                f"diff {v.diff:+.4f}, SE {v.se:.4f}, {v.people:,} people)"
            )
    return "hours placed by: " + "; ".join(parts)
