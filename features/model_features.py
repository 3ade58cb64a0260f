"""Model features for (subscriber, channel, candidate local hour-of-week) cells.

Shared by training and serving so the two can never disagree. Features are *relative to the candidate
hour* (the person's response and activity at and around it, its rank among their hours) rather than
one column per hour, so the model generalises to hours at which this person was never sent anything.
Cold-start rows (unknown subscribers) use their cohort's (or the population's) pattern and rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sendtime import schema as S
from sendtime.features.profiles import Profiles

H = S.HOURS_PER_WEEK
FEATURES = [
    # the person's level, per channel: how much they engage, how recently, how much we know
    "channel",
    "click_rate",
    "engage_rate",
    "other_click_rate",
    "other_engage_rate",
    "sends_per_week",
    "clicks_per_week",
    "engagements_per_week",
    "other_engagements_per_week",
    "recency_days",
    "recency_any_days",
    "last_engaged_here",
    "data_weight",
    "timezone_known",
    "has_both",
    # the candidate hour, only through the profile's response there (so hours are ranked as it ranks them)
    "response",
    "response_rank",
    "response_vs_best",
    "rate_x_response",
    "engage_rate_x_response",
]
# Every feature that varies with the candidate hour is monotone increasing: across one person's hours
# the model may only say "more of their response here, more clicks", never learn a brand's send times.
MONOTONE = {
    "response": 1,
    "response_rank": 1,
    "response_vs_best": 1,
    "rate_x_response": 1,
    "engage_rate_x_response": 1,
    "click_rate": 1,
}


@dataclass
class Rows:
    """What the features of a set of subscribers need, gathered once (known or cold-start)."""

    response: np.ndarray  # [n, 2, H]
    rank: np.ndarray  # [n, 2, H]: share of the person's hours with a lower response
    best: np.ndarray  # [n, 2]: their best response
    numbers: (
        np.ndarray
    )  # [n, 2, 8]: click_rate, engage_rate, sends, clicks, engagements, recency, data_weight, weeks
    recency_any: np.ndarray  # [n]
    last_channel: np.ndarray  # [n] int, -1 none
    timezone_known: np.ndarray  # [n]
    has_both: np.ndarray  # [n]

    def __len__(self) -> int:
        return len(self.response)


_NUMBER_COLUMNS = (
    "click_rate",
    "engage_rate",
    "sends",
    "clicks",
    "engagements",
    "recency_days",
    "data_weight",
)
WEEKS = 7  # index in Rows.numbers of the weeks of history (the same for both channels)


def hour_ranks(response: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each hour among the row's hours in [0, 1), best response) over the last axis."""
    order = response.argsort(axis=-1, kind="stable").argsort(axis=-1, kind="stable")
    return (order / float(response.shape[-1])).astype(np.float32), response.max(axis=-1)


def _ranks(profiles: Profiles) -> dict[str, np.ndarray]:
    """Ranks of every profile's, cohort's and the population's hours: computed once per snapshot, since
    sorting 168 hours per person on every scoring call was a third of the scoring time."""
    cached = getattr(profiles, "_hour_ranks", None)
    if cached is None:
        rank, best = hour_ranks(profiles.response)
        cohort_rank, cohort_best = hour_ranks(profiles.cohort_response)
        pop_rank, pop_best = hour_ranks(profiles.population_response)
        cached = {
            "rank": rank,
            "best": best,
            "cohort_rank": cohort_rank,
            "cohort_best": cohort_best,
            "pop_rank": pop_rank,
            "pop_best": pop_best,
        }
        object.__setattr__(profiles, "_hour_ranks", cached)
    return cached


def _columns(profiles: Profiles) -> dict[str, np.ndarray]:
    """The profile columns `gather_rows` reads, as arrays taken out of the frame once per snapshot (a
    column lookup costs ~10 us, and a single API request would pay for twenty of them)."""
    cached = getattr(profiles, "_gather_columns", None)
    if cached is None:
        names = [f"{c}_{col}" for c in S.CHANNELS for col in _NUMBER_COLUMNS]
        names += [
            "weeks_observed",
            "recency_days",
            "last_engaged_channel",
            S.TZ_SOURCE,
            "has_email",
            "has_sms",
        ]
        cached = {name: profiles.table[name].to_numpy() for name in names}
        object.__setattr__(profiles, "_gather_columns", cached)
    return cached


def gather_rows(
    profiles: Profiles,
    rows: np.ndarray,
    cohorts: np.ndarray | None = None,
    has_email: np.ndarray | None = None,
    has_sms: np.ndarray | None = None,
    timezone_known: np.ndarray | None = None,
) -> Rows:
    """Rows >= 0 are profile rows; -1 rows are cold starts built from `cohorts` (-1: population)."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    known = rows >= 0
    cohorts = np.full(n, -1, dtype=np.int64) if cohorts is None else np.asarray(cohorts, dtype=np.int64)
    ranks = _ranks(profiles)
    in_cohort = cohorts >= 0
    coh = np.maximum(cohorts, 0)

    def prior(cohort_values: np.ndarray, population_values: np.ndarray) -> np.ndarray:
        extra = (slice(None),) + (None,) * (cohort_values.ndim - 1)
        return np.where(in_cohort[extra], cohort_values[coh], population_values[None])

    response = prior(profiles.cohort_response, profiles.population_response).astype(np.float32)
    rank = prior(ranks["cohort_rank"], ranks["pop_rank"]).astype(np.float32)
    best = prior(ranks["cohort_best"], ranks["pop_best"])
    pop_rates = profiles.cohort_rates.mean(axis=0) if len(profiles.cohorts) else np.zeros((2, 2))
    coh_rates = prior(profiles.cohort_rates, pop_rates)

    numbers = np.zeros((n, 2, 8), dtype=np.float64)
    numbers[:, :, 0] = coh_rates[..., 0]
    numbers[:, :, 1] = coh_rates[..., 1]
    numbers[:, :, 5] = np.nan
    numbers[:, :, WEEKS] = 1.0
    recency_any = np.full(n, np.nan)
    last_channel = np.full(n, -1, dtype=np.int64)
    tz_known = np.zeros(n) if timezone_known is None else np.asarray(timezone_known, dtype=float)
    both = np.zeros(n)
    if has_email is not None and has_sms is not None:
        both = (np.asarray(has_email) & np.asarray(has_sms)).astype(float)
    if known.any():
        r = rows[known]
        table = _columns(profiles)
        response[known] = profiles.response[r]
        rank[known] = ranks["rank"][r]
        best[known] = ranks["best"][r]
        for c, name in enumerate(S.CHANNELS):
            for k, col in enumerate(_NUMBER_COLUMNS):
                numbers[known, c, k] = table[f"{name}_{col}"][r]
        numbers[known, :, WEEKS] = table["weeks_observed"][r][:, None]
        recency_any[known] = table["recency_days"][r]
        last_channel[known] = table["last_engaged_channel"][r]
        tz_known[known] = (table[S.TZ_SOURCE][r] != "default").astype(float)
        both[known] = (table["has_email"][r] & table["has_sms"][r]).astype(float)
    return Rows(response, rank, best, numbers, recency_any, last_channel, tz_known, both)


def feature_matrix(
    g: Rows, profiles: Profiles, idx: np.ndarray, channel: np.ndarray, how: np.ndarray
) -> np.ndarray:
    """One feature row per (gathered row idx, channel, local hour-of-week) cell: float32 [m, len(FEATURES)]."""
    idx = np.asarray(idx, dtype=np.int64)
    c = np.asarray(channel, dtype=np.int64)
    h = np.asarray(how, dtype=np.int64) % H
    resp = g.response[idx, c, h]
    nums, other = g.numbers[idx, c], g.numbers[idx, 1 - c]
    weeks = nums[:, WEEKS]
    last = g.last_channel[idx]
    columns = {
        "channel": c,
        "click_rate": nums[:, 0],
        "engage_rate": nums[:, 1],
        "other_click_rate": other[:, 0],
        "other_engage_rate": other[:, 1],
        "sends_per_week": nums[:, 2] / weeks,
        "clicks_per_week": nums[:, 3] / weeks,
        "engagements_per_week": nums[:, 4] / weeks,
        "other_engagements_per_week": other[:, 4] / weeks,
        "recency_days": nums[:, 5],
        "recency_any_days": g.recency_any[idx],
        "last_engaged_here": np.where(last < 0, np.nan, (last == c).astype(float)),
        "data_weight": nums[:, 6],
        "timezone_known": g.timezone_known[idx],
        "has_both": g.has_both[idx],
        "response": resp,
        "response_rank": g.rank[idx, c, h],
        "response_vs_best": resp / np.maximum(g.best[idx, c], 1e-9),
        "rate_x_response": nums[:, 0] * resp,
        "engage_rate_x_response": nums[:, 1] * resp,
    }
    out = np.empty((len(idx), len(FEATURES)), dtype=np.float32)
    for i, name in enumerate(FEATURES):
        out[:, i] = columns[name]
    return out
