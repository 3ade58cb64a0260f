"""Model features for (subscriber, channel, candidate local hour-of-week) cells.

Shared by training and serving so the two can never disagree. Features are *relative to the candidate
hour* (the person's response and activity at and around it, its rank among their hours) rather than
one column per hour, so the model generalises to hours at which this person was never sent anything.
Cold-start rows (unknown subscribers) use their cohort's (or the population's) pattern and rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.features.profiles import Profiles

H = S.HOURS_PER_WEEK
FEATURES = [
    # the person's level, per channel: how much they engage, how recently, how much we know
    "channel", "click_rate", "engage_rate", "other_click_rate", "other_engage_rate", "sends_per_week",
    "clicks_per_week", "engagements_per_week", "other_engagements_per_week", "recency_days", "recency_any_days",
    "last_engaged_here", "data_weight", "timezone_known", "has_both",
    # the candidate hour, only through the profile's response there (so hours are ranked as it ranks them)
    "response", "response_rank", "response_vs_best", "rate_x_response", "engage_rate_x_response",
]
_COLUMN = {name: i for i, name in enumerate(FEATURES)}
# Every feature that varies with the candidate hour is monotone increasing: across one person's hours
# the model may only say "more of their response here, more clicks", never learn a brand's send times.
MONOTONE = {"response": 1, "response_rank": 1, "response_vs_best": 1, "rate_x_response": 1,
            "engage_rate_x_response": 1, "click_rate": 1, "activity": 1, "activity_next3": 1, "activity_prev2": 1,
            "cohort_response": 1, "own_engagements_this_hour": 1, "own_engagements_near_hour": 1}



@dataclass
class Rows:
    """What the features of a set of subscribers need, gathered once (known or cold-start)."""

    shape: np.ndarray  # [n, 2, H]
    response: np.ndarray  # [n, 2, H]
    cohort_response: np.ndarray  # [n, 2, H]
    numbers: np.ndarray  # [n, 2, 8]: click_rate, engage_rate, sends, clicks, engagements, recency, data_weight, pad
    recency_any: np.ndarray  # [n]
    last_channel: np.ndarray  # [n] int, -1 none
    timezone_known: np.ndarray  # [n]
    has_both: np.ndarray  # [n]
    daily_engagements: np.ndarray  # [n, 2, 24]
    daily_sends: np.ndarray  # [n, 2, 24]
    rank: np.ndarray | None = None  # [n, 2, H]: share of the person's hours with a lower response
    best: np.ndarray | None = None  # [n, 2]: their best response

    def __post_init__(self) -> None:
        if self.rank is None:
            order = self.response.argsort(axis=-1, kind="stable").argsort(axis=-1, kind="stable")
            self.rank = (order / float(H)).astype(np.float32)
            self.best = self.response.max(axis=-1)

    def __len__(self) -> int:
        return len(self.shape)


_NUMBER_COLUMNS = ("click_rate", "engage_rate", "sends", "clicks", "engagements", "recency_days", "data_weight")
WEEKS = 7  # index in Rows.numbers of the weeks of history (the same for both channels)


def gather_rows(profiles: Profiles, rows: np.ndarray, cohorts: np.ndarray | None = None,
                has_email: np.ndarray | None = None, has_sms: np.ndarray | None = None,
                timezone_known: np.ndarray | None = None) -> Rows:
    """Rows >= 0 are profile rows; -1 rows are cold starts built from `cohorts` (-1: population)."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    known = rows >= 0
    cohorts = np.full(n, -1, dtype=np.int64) if cohorts is None else np.asarray(cohorts, dtype=np.int64)
    table = profiles.table

    coh_shape = np.where((cohorts >= 0)[:, None, None], profiles.cohort_shape[np.maximum(cohorts, 0)],
                         profiles.population_shape[None])
    coh_resp = np.where((cohorts >= 0)[:, None, None], profiles.cohort_response[np.maximum(cohorts, 0)],
                        profiles.population_response[None])
    pop_rates = profiles.cohort_rates.mean(axis=0) if len(profiles.cohorts) else np.zeros((2, 2))
    coh_rates = np.where((cohorts >= 0)[:, None, None], profiles.cohort_rates[np.maximum(cohorts, 0)], pop_rates[None])

    numbers = np.zeros((n, 2, 8), dtype=np.float64)
    numbers[:, :, 0] = coh_rates[..., 0]
    numbers[:, :, 1] = coh_rates[..., 1]
    numbers[:, :, 5] = np.nan
    numbers[:, :, WEEKS] = 1.0
    shape = coh_shape.astype(np.float32).copy()
    response = coh_resp.astype(np.float32).copy()
    recency_any = np.full(n, np.nan)
    last_channel = np.full(n, -1, dtype=np.int64)
    tz_known = np.zeros(n) if timezone_known is None else np.asarray(timezone_known, dtype=float)
    both = np.zeros(n)
    if has_email is not None and has_sms is not None:
        both = (np.asarray(has_email) & np.asarray(has_sms)).astype(float)
    daily_e = np.zeros((n, 2, 24), dtype=np.float32)
    daily_s = np.zeros((n, 2, 24), dtype=np.float32)
    if known.any():
        r = rows[known]
        shape[known] = profiles.shape[r]
        response[known] = profiles.response[r]
        for c, name in enumerate(S.CHANNELS):
            for k, col in enumerate(_NUMBER_COLUMNS):
                numbers[known, c, k] = table[f"{name}_{col}"].to_numpy()[r]
        numbers[known, :, WEEKS] = table["weeks_observed"].to_numpy()[r][:, None]
        recency_any[known] = table["recency_days"].to_numpy()[r]
        last_channel[known] = table["last_engaged_channel"].to_numpy()[r]
        tz_known[known] = (table[S.TZ_SOURCE].to_numpy()[r] != "default").astype(float)
        both[known] = (table["has_email"].to_numpy()[r] & table["has_sms"].to_numpy()[r]).astype(float)
        cohort_known = table["cohort"].to_numpy()[r]
        coh_resp[known] = profiles.cohort_response[cohort_known]
        daily_e[known] = profiles.daily_engagements[r]
        daily_s[known] = profiles.daily_sends[r]
    return Rows(shape, response, coh_resp.astype(np.float32), numbers, recency_any, last_channel, tz_known, both,
                daily_e, daily_s)


def feature_matrix(g: Rows, profiles: Profiles, idx: np.ndarray, channel: np.ndarray, how: np.ndarray) -> np.ndarray:
    """One feature row per (gathered row idx, channel, local hour-of-week) cell: float32 [m, len(FEATURES)]."""
    idx = np.asarray(idx, dtype=np.int64)
    c = np.asarray(channel, dtype=np.int64)
    h = np.asarray(how, dtype=np.int64) % H
    resp = g.response[idx, c, h]
    out = np.empty((len(idx), len(FEATURES)), dtype=np.float32)

    def put(name: str, values) -> None:
        if name in _COLUMN:  # computing a dropped feature costs little; it keeps experiments one edit away
            out[:, _COLUMN[name]] = values
    put("channel", c)
    put("local_hour", h % 24)
    put("weekday", h // 24)
    put("response", resp)
    put("response_rank", g.rank[idx, c, h])
    put("response_vs_best", resp / np.maximum(g.best[idx, c], 1e-9))
    act = g.shape
    put("activity", act[idx, c, h] * H)
    put("activity_next3", (act[idx, c, h] + act[idx, c, (h + 1) % H] + act[idx, c, (h + 2) % H]) * H / 3)
    put("activity_prev2", (act[idx, c, (h - 1) % H] + act[idx, c, (h - 2) % H]) * H / 2)
    put("cohort_response", g.cohort_response[idx, c, h])
    put("population_response", profiles.population_response[c, h])
    nums, other = g.numbers[idx, c], g.numbers[idx, 1 - c]
    put("click_rate", nums[:, 0])
    put("engage_rate", nums[:, 1])
    put("other_click_rate", other[:, 0])
    put("other_engage_rate", other[:, 1])
    weeks = nums[:, WEEKS]
    put("sends_per_week", nums[:, 2] / weeks)
    put("clicks_per_week", nums[:, 3] / weeks)
    put("engagements_per_week", nums[:, 4] / weeks)
    put("other_engagements_per_week", other[:, 4] / weeks)
    put("recency_days", nums[:, 5])
    put("recency_any_days", g.recency_any[idx])
    last = g.last_channel[idx]
    put("last_engaged_here", np.where(last < 0, np.nan, (last == c).astype(float)))
    put("data_weight", nums[:, 6])
    put("timezone_known", g.timezone_known[idx])
    put("has_both", g.has_both[idx])
    put("rate_x_response", nums[:, 0] * resp)
    put("engage_rate_x_response", nums[:, 1] * resp)
    hod = h % 24
    de, ds = g.daily_engagements[idx, c], g.daily_sends[idx, c]
    m = np.arange(len(idx))
    here = de[m, hod]
    put("own_engagements_this_hour", here / weeks)
    put("own_engagements_near_hour", (here + de[m, (hod + 1) % 24] + de[m, (hod - 1) % 24]) / weeks)
    put("own_sends_this_hour", ds[m, hod] / weeks)
    put("own_engagement_rate_this_hour", (here + 0.1) / (ds[m, hod] + 1.0))
    return out


def grid_matrix(g: Rows, profiles: Profiles, local_how: np.ndarray, channels: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """Features for every row x channel x candidate hour; local_how is [n, n_hours]. Returns [n*len(ch)*n_hours, F]."""
    n, n_hours = local_how.shape
    idx = np.repeat(np.arange(n), len(channels) * n_hours)
    ch = np.tile(np.repeat(np.asarray(channels), n_hours), n)
    how = np.repeat(local_how[:, None, :], len(channels), axis=1).reshape(-1)
    return feature_matrix(g, profiles, idx, ch, how)


def as_frame(matrix: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(matrix, columns=FEATURES)
