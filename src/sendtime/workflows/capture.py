"""Capture: the share of the oracle's gain over a campaign-time send that a plan wins (simulated worlds).

The simulator writes each person's true P(click within 24 h | channel, local hour-of-week). A plan is
judged by the true probability at the (channel, hour) it picked; the oracle picks with the truth, the
campaign-time plan sends at the window start on e-mail (SMS where there is no e-mail). All plans obey
the same eligibility and SMS quiet hours. With an SMS budget, each plan allocates its SMS by its own
estimates and the oracle by the truth, under the same budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.features import local_time
from sendtime.features.profiles import Profiles
from sendtime.serving.allocation import allocate_sms_budget
from sendtime.serving.contacts import Audience
from sendtime.serving.feasibility import feasible_cells
from sendtime.serving.predictor import Predictor
from sendtime.training import hour_guard


@dataclass
class GroundTruth:
    people: pd.DataFrame
    response: np.ndarray  # [n, 2, 168]
    meta: dict

    @classmethod
    def load(cls, folder: str | Path) -> GroundTruth | None:
        gt = Path(folder) / S.GROUND_TRUTH_DIR
        if not (gt / "people.parquet").exists():
            return None
        meta = json.loads((gt / "meta.json").read_text()) if (gt / "meta.json").exists() else {}
        return cls(pd.read_parquet(gt / "people.parquet"), np.load(gt / "response.npy"), meta)


def true_values(gt: GroundTruth, hour_starts: pd.DatetimeIndex) -> np.ndarray:
    """[n, 2, H] true click probability of each candidate hour, in each person's true timezone."""
    zones = gt.people["timezone"].to_numpy(dtype=object)
    codes, uniq = pd.factorize(pd.Series(zones))
    how = local_time.local_hour_of_week_grid(hour_starts, np.asarray(uniq, dtype=object))[codes]  # [n, H]
    n = len(zones)
    return np.stack([gt.response[np.arange(n)[:, None], c, how] for c in range(2)], axis=1)


def feasible(predictor: Predictor, audience: Audience, hour_starts: pd.DatetimeIndex) -> np.ndarray:
    """The scheduler's own feasibility (no fatigue guard: capture plans one send per person)."""
    return feasible_cells(audience, hour_starts, predictor.settings.policy)


def pick(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best feasible (channel, hour) per row; (-1, -1) where nothing is feasible."""
    n, _, n_hours = values.shape
    v = np.where(mask, values, -np.inf).reshape(n, -1)
    best = v.argmax(axis=1)
    ok = np.isfinite(v[np.arange(n), best])
    return np.where(ok, best // n_hours, -1), np.where(ok, best % n_hours, -1)


def pick_with_budget(values: np.ndarray, mask: np.ndarray, max_sms: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.where(mask, values, -np.inf)
    best_h = v.argmax(axis=2)  # [n, 2]
    best_v = np.take_along_axis(v, best_h[..., None], axis=2)[..., 0]
    channel = allocate_sms_budget(best_v[:, 0], best_v[:, 1], max_sms)
    hour = np.where(channel >= 0, best_h[np.arange(len(v)), np.maximum(channel, 0)], -1)
    return channel.astype(np.int64), hour


def campaign_plan(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E-mail at the window start; SMS-only people at the first hour quiet hours allow."""
    has_email = mask[:, 0].any(axis=1)
    channel = np.where(has_email, 0, np.where(mask[:, 1].any(axis=1), 1, -1))
    first_sms = np.where(mask[:, 1].any(axis=1), mask[:, 1].argmax(axis=1), -1)
    hour = np.where(channel == 0, mask[:, 0].argmax(axis=1), np.where(channel == 1, first_sms, -1))
    return channel, hour


def realised(truth: np.ndarray, channel: np.ndarray, hour: np.ndarray) -> float:
    ok = channel >= 0
    return float(truth[np.flatnonzero(ok), channel[ok], hour[ok]].sum())


def capture_report(
    predictor: Predictor,
    gt: GroundTruth,
    window_start: pd.Timestamp,
    hours: int,
    plans: dict[str, np.ndarray],
    sms_share: float | None = None,
) -> dict[str, float]:
    """Capture of each method's plan. `plans` maps a name to its estimated [n, 2, H] grid."""
    people = gt.people
    audience = predictor.resolve(people["email"].tolist(), people["phone"].tolist())
    hour_starts = pd.date_range(window_start, periods=hours, freq="h")
    mask = feasible(predictor, audience, hour_starts)
    truth = true_values(gt, hour_starts)
    if sms_share is None:
        chooser = pick
    else:
        budget = int(round(sms_share * len(people)))

        def chooser(values: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return pick_with_budget(values, m, budget)

    base = realised(truth, *campaign_plan(mask))
    oracle = realised(truth, *chooser(truth, mask))
    out = {"campaign_value": base, "oracle_value": oracle}
    gain = max(oracle - base, 1e-12)
    for name, grid in plans.items():
        value = realised(truth, *chooser(grid, mask))
        out[f"{name}_value"] = value
        out[f"{name}_capture"] = (value - base) / gain
    return out


def audience_grids(
    predictor: Predictor, gt: GroundTruth, window_start: pd.Timestamp, hours: int
) -> tuple[Audience, pd.DatetimeIndex, np.ndarray]:
    audience = predictor.resolve(gt.people["email"].tolist(), gt.people["phone"].tolist())
    hour_starts = pd.date_range(window_start, periods=hours, freq="h")
    return audience, hour_starts, predictor.local_hours(audience, hour_starts)


def model_capture(
    booster, profiles: Profiles, gt, settings, campaigns: int = 7, hour_source: str | dict | None = None
) -> float:
    """The model's capture (no SMS budget) over daily 24 h campaigns from the snapshot's instant on:
    the `model_capture` that `report.capture_figures` reports, for any snapshot (the champion's own,
    a validation split's); hours placed as the version's hour guard says (`hour_source`)."""
    predictor = Predictor(booster, profiles, settings, meta={hour_guard.TAG: hour_source})
    totals = {"campaign": 0.0, "oracle": 0.0, "model": 0.0}
    for day in range(campaigns):
        start = profiles.as_of.ceil("D") + pd.Timedelta(days=day, hours=14)
        audience, hour_starts, _ = audience_grids(predictor, gt, start, 24)
        plans = {"model": predictor.score(audience, hour_starts)}
        rep = capture_report(predictor, gt, start, 24, plans)
        for key in totals:
            totals[key] += rep[f"{key}_value"]
    return (totals["model"] - totals["campaign"]) / max(totals["oracle"] - totals["campaign"], 1e-12)
