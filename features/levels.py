"""Levels: how much each person engages per channel (rates, recency, counts) and whether they opted out.

Rates are per send, age-weighted relative to the person's own history (the weights of a person's sends
on a channel sum to their number, and their engagements take the same scale), and shrunk toward the cohort's (a Beta prior worth RATE_PRIOR_SENDS
sends), itself shrunk toward the population, so a person with two sends and one click is not a 50%
clicker. Counts are also given per week observed, so old and new snapshots compare. Opt-outs
(unsubscribes, hard bounces and runs of soft bounces) come from features/suppression.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import ProfileSettings
from sendtime.features.exposure import age_weight
from sendtime.features.prepare import FeatureBase
from sendtime.features.signals import CLICK_KIND
from sendtime.features.suppression import suppressed_as_of

RATE_PRIOR_SENDS = 20.0  # Beta prior weight, in sends, for click and engagement rates


def rate_levels(
    base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings, codes: np.ndarray, n_cohorts: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """The per-person table of levels as of `as_of` and the cohort rates [n_cohorts, 2, 2] (click,
    engagement) that new and sparse people fall back to."""
    n = len(base.subscribers)
    sends = base.sends[base.sends["at"] < as_of]
    eng = base.engagements[base.engagements["at"] < as_of]
    hl = settings.half_life_days

    def per(frame: pd.DataFrame, weight: np.ndarray | None = None) -> np.ndarray:
        flat = frame["sub"].to_numpy().astype(np.int64) * 2 + frame["channel"].to_numpy()
        return np.bincount(flat, weights=weight, minlength=n * 2).reshape(n, 2)

    n_sends = per(sends)
    clicks = eng[eng["kind"] == CLICK_KIND]
    n_clicks = per(clicks)
    n_eng = per(eng)
    # Recency decides which sends and answers count most, not how many: a person's weights are scaled
    # so their sends' weights sum to their number of sends (without sends: their engagements' to theirs),
    # the same scale for sends, clicks and engagements, so a rate stays a ratio of like to like.
    raw_sends, raw_eng = (
        per(sends, age_weight(sends["at"], as_of, hl)),
        per(eng, age_weight(eng["at"], as_of, hl)),
    )
    scale = np.where(
        raw_sends > 0,
        n_sends / np.where(raw_sends > 0, raw_sends, 1.0),
        np.where(raw_eng > 0, n_eng / np.where(raw_eng > 0, raw_eng, 1.0), 1.0),
    )
    w_sends = raw_sends * scale
    w_clicks = per(clicks, age_weight(clicks["at"], as_of, hl)) * scale
    w_eng = raw_eng * scale

    cohort_rates = np.zeros((n_cohorts, 2, 2))
    pop_sends = w_sends.sum(axis=0) + 1e-9
    pop_rates = np.stack([w_clicks.sum(axis=0) / pop_sends, w_eng.sum(axis=0) / pop_sends], axis=-1)  # [2, 2]
    for k, (num, den) in enumerate(((w_clicks, w_sends), (w_eng, w_sends))):
        num_c = np.zeros((n_cohorts, 2))
        den_c = np.zeros((n_cohorts, 2))
        np.add.at(num_c, codes, num)
        np.add.at(den_c, codes, den)
        cohort_rates[..., k] = (num_c + RATE_PRIOR_SENDS * 5 * pop_rates[None, :, k]) / (
            den_c + RATE_PRIOR_SENDS * 5
        )
    prior = cohort_rates[codes]  # [n, 2, 2]
    click_rate = (w_clicks + RATE_PRIOR_SENDS * prior[..., 0]) / (w_sends + RATE_PRIOR_SENDS)
    engage_rate = (w_eng + RATE_PRIOR_SENDS * prior[..., 1]) / (w_sends + RATE_PRIOR_SENDS)

    table = pd.DataFrame(index=range(n))
    last_any = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    last_channel = np.full(n, -1, dtype=np.int8)
    opted, why = suppressed_as_of(base.optouts, as_of, n, settings)
    for c, name in enumerate(S.CHANNELS):
        table[f"{name}_sends"] = n_sends[:, c]
        table[f"{name}_clicks"] = n_clicks[:, c]
        table[f"{name}_engagements"] = n_eng[:, c]
        table[f"{name}_click_rate"] = click_rate[:, c]
        table[f"{name}_engage_rate"] = engage_rate[:, c]
        last = eng[eng["channel"] == c].groupby("sub")["at"].max()
        last_c = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
        last_c.loc[last.index] = last.to_numpy()
        table[f"{name}_recency_days"] = ((as_of - last_c).dt.total_seconds() / 86400.0).to_numpy()
        newer = last_c.notna() & (last_any.isna() | (last_c > last_any))
        last_any = last_any.where(~newer, last_c)
        last_channel[newer.to_numpy()] = c
        table[f"{name}_opted_out"] = opted[:, c]
        table[f"{name}_optout_reason"] = why[:, c]  # "" where not opted out; e.g. "hard bounce on 2026-10-07"
    table["recency_days"] = ((as_of - last_any).dt.total_seconds() / 86400.0).to_numpy()
    first = pd.concat([sends[["sub", "at"]], eng[["sub", "at"]]]).groupby("sub")["at"].min()
    first_seen = pd.Series(as_of, index=range(n), dtype="datetime64[ns, UTC]")
    first_seen.loc[first.index] = first.to_numpy()
    # counts grow with the length of history; per-week rates do not, so old and new snapshots compare
    table["weeks_observed"] = np.maximum(
        (as_of - first_seen).dt.total_seconds().to_numpy() / (7 * 86400.0), 1.0
    )
    table["last_engaged_channel"] = last_channel
    return table, cohort_rates
