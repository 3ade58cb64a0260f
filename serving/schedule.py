"""`sendtime schedule`: the batch campaign plan, one row out for every audience row in.

The plan uses the predictor and policy of the HTTP API (`Predictor.score`, `feasible_mask` with SMS quiet
hours from `sms_allowed`, `decide`), then the campaign's shared limits from `allocation`:

- Without `--max-sms` and `--max-per-hour`, every row gets exactly the API's decision (`decide`'s argmax
  of `click_value * P(click) - cost`, `sms_cost` for an SMS).
- SMS budget (`--max-sms N`): the rows the per-row policy would text compete for N texts by their SMS
  gain (`allocation.sms_gain`: `click_value * (best SMS - best e-mail) - sms_cost`; for an SMS-only row
  the alternative is not sending, so `click_value * best SMS - sms_cost`). The largest gains win (ties:
  the earlier row). A row with e-mail that loses falls back to its best e-mail hour. **SMS-only rows
  need SMS or nothing**: they rank by the same gain (so a positive gain competes on equal terms, and a
  non-positive one only gets what is left once every positive gain is funded, exactly what the per-row
  policy would do with an unlimited budget); SMS-only rows the budget cannot fund get no send, reason
  `sms budget exhausted`. The plan never holds more than N texts.
- Send-rate caps (`--max-per-hour CHANNEL=N`): per channel, `capacity.assign_hours` gives each row the
  hour that maximises the campaign's total expected engagement under the cap (an exact transportation
  solution, not first come, first served), only ever at feasible hours (inside the window, SMS inside
  quiet hours). A row no hour of its channel can hold tries its other channel in the room left (an SMS
  row moves to e-mail first, freeing budget; an e-mail row may take a text the budget still has), else
  gets no send, reason `send-rate cap full`. The summary reports what each limit costs in expected
  engagement: the SMS budget, the per-row plan minus the budget-only plan; each channel's cap, the
  budget-only plan of that channel's rows minus their final plan (fallbacks included, so a cap's cost
  can come out negative when fallback texts engage more than the e-mails they replace: the per-row
  policy had preferred those e-mails because of the SMS cost).
- Holdout (`--holdout SHARE`): `allocation.holdout_mask` on subscriber_id and `--seed` picks a control
  group that is the same whatever the audience's order or size. It gets the campaign's plain send:
  e-mail at `--campaign-time` (default: the window start), SMS-only rows by SMS at the first
  quiet-hours-feasible hour at or after it; `holdout=True`, reason `holdout: campaign time`. Holdout
  rows are placed first and count against the budget and the caps (a full hour spills them to the
  next hour with room, as a throttled plain send would).
- Exploration (`--explore SHARE`): `decide`'s exploration (seeded by `--seed`) gives a share of the
  non-holdout rows a uniformly random feasible (channel, hour) cell, `explored=True`, with its
  propensity. Explored rows are placed after holdout rows; one whose random cell the budget or caps
  cannot hold goes back to the plan (`explored=False`). `propensity` is the probability the policy had
  of choosing the row's cell: `share / k + (1 - share) * [cell is the planned one]` with k feasible
  cells (exact without caps; with caps, "the planned cell" of an explored row is its uncapped argmax);
  1 for holdout rows (their cell is fixed), NaN without a send.
- Duplicates: a person may appear on several rows (the same contact twice, or an e-mail and a phone
  the identity graph links). Every row is kept, in order, but only the first row of each
  `subscriber_id` is planned; later ones get no send, reason `duplicate: same subscriber as an earlier
  row (one send per person)`. (`schedule_frame(..., duplicates="all")` plans every row on its own
  instead; the benchmark uses it to plan a million rows drawn from a small simulated world.)
  Rows without any usable contact get no send and say why: `no contact`, `invalid email`, `invalid
  phone`, `email suppressed: hard bounce on 2026-10-07` (the suppression rule that applied, see
  features/suppression.py: `unsubscribed on ...`, `3 bounces in a row since ...`), ... A usable row with an unusable second contact is planned and its
  reason ends in `; invalid phone` (or e-mail). A CSV's empty line is an empty row, not skipped.

Output columns (after the audience's own, unchanged and in order): `subscriber_id`, `channel` (`email`,
`sms`, or empty), `send_at` (UTC, `2026-11-03T17:00:00Z`, inside [start, end)), `expected_engagement`
(P(click within 24 h of send_at)), `reason`, `window_start`, `window_end`, `holdout`, `explored`,
`propensity`. Times are ISO-8601 text in CSV and Parquet alike. The file is written atomically.

Speed: no per-row Python on the hot path. `Predictor.resolve` runs once per distinct (email, phone)
pair (on every core for large audiences: new phone numbers are parsed once each, in forked workers),
and the model is asked once per distinct scoring input (rows whose resolved fields coincide share one
score grid). It scores only what the plan can use (`top_hours`, `top_k`): each row's `top_k` feasible
hours per channel by the profile's rank, which the champion's monotone hour features make exactly its
own best hours, plus the campaign cell; then whatever the send-rate assignment, exploration, holdout
spills and wide windows turn out to need, planning again when the assignment needs more. The plan is
the full grid's, row for row (tests/unit/test_top_hours.py, tests/integration/test_top_hours_model.py);
a model without that monotonicity, or a stand-in predictor without `score_top`, gets every cell scored.
Audiences of 50k rows or more show tqdm bars (scoring chunks, capacity rounds).
`python -m sendtime.experiments.bench_schedule` measures every stage (`--end-to-end`: N different people).
"""

from __future__ import annotations

import glob
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import PolicySettings, Settings
from sendtime.features.local_time import candidate_hours, declared_zones
from sendtime.serving.allocation import holdout_mask, sms_gain
from sendtime.serving.capacity import UNLIMITED, assign_hours
from sendtime.serving.policy import _windows as best_windows  # shared with decide: same windows as the API
from sendtime.serving.policy import decide, feasible_mask
from sendtime.serving.top_hours import TOP_K, LazyScores, scoring_groups, worth_it

EMAIL, SMS = S.CHANNELS.index(S.EMAIL), S.CHANNELS.index(S.SMS)
NONE = -1
FORMATS = (".csv", ".parquet")
ISO = "%Y-%m-%dT%H:%M:%SZ"
PROGRESS_MIN_ROWS = 50_000  # progress bars on runs at least this long
_EXPLORE_STREAM = 0x5E7D  # mixed into --seed: exploration draws stay independent of other seeded draws

HOLDOUT, EXPLORED, WINDOW_START, WINDOW_END, PROPENSITY = (
    "holdout",
    "explored",
    "window_start",
    "window_end",
    "propensity",
)
PLAN_COLUMNS = (
    S.SUBSCRIBER_ID,
    S.PLAN_CHANNEL,
    S.SEND_AT,
    S.EXPECTED_ENGAGEMENT,
    S.REASON,
    WINDOW_START,
    WINDOW_END,
    HOLDOUT,
    EXPLORED,
    PROPENSITY,
)

REASON_HOLDOUT = "holdout: campaign time"
REASON_DUPLICATE = "duplicate: same subscriber as an earlier row (one send per person)"
REASON_NO_FEASIBLE = "no feasible hour (quiet hours)"
REASON_NO_CONTACT = "no contact"
REASON_BUDGET = "sms budget exhausted"
REASON_CAP = "send-rate cap full"
REASON_BAD_ZONE = "invalid timezone (not an IANA name): no sms"


class EngineNotAvailable(NotImplementedError, ValueError):
    """An engine this build cannot run yet (a ValueError too, so the CLI reports it as a clear error)."""


# --- options -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The campaign window: candidate UTC hour starts in [start, end) and the campaign's plain send hour."""

    start: pd.Timestamp
    end: pd.Timestamp
    hours: pd.DatetimeIndex
    campaign_time: pd.Timestamp
    campaign_hour: int  # index into hours: the first hour start at or after campaign_time


def parse_instant(text: str, option: str) -> pd.Timestamp:
    """An ISO-8601 instant that carries its offset (or Z), as a UTC Timestamp; errors name the option."""
    try:
        ts = pd.Timestamp(str(text).strip())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{option} {text!r}: not an ISO-8601 time (e.g. 2026-11-03T05:00:00Z)") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"{option} {text!r}: not an ISO-8601 time (e.g. 2026-11-03T05:00:00Z)")
    try:  # pandas reads years up to 9999, but every plan and model time is in nanoseconds
        ts = ts.as_unit("ns")
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{option} {text!r}: out of the supported range (years 1678 to 2261)") from exc
    if ts.tz is None:
        raise ValueError(
            f"{option} {text!r}: needs a UTC offset or Z (e.g. 2026-11-03T05:00:00Z or 2026-11-03T00:00:00-05:00);"
            " a time without one is ambiguous"
        )
    return ts.tz_convert("UTC")


def parse_window(start: str, end: str, campaign_time: str | None = None, max_days: float = 14) -> Window:
    """Validate --start/--end/--campaign-time: offsets required, end after start, at most `max_days` long."""
    t0, t1 = parse_instant(start, "--start"), parse_instant(end, "--end")
    if t1 <= t0:
        raise ValueError(f"--end {end!r} must be after --start {start!r}")
    if t1 - t0 > pd.Timedelta(days=max_days):
        raise ValueError(
            f"window {start} to {end} is {(t1 - t0) / pd.Timedelta(days=1):.1f} days; at most {max_days:g} days"
        )
    hours = candidate_hours(t0, t1)
    if not len(hours):
        raise ValueError(f"window {start} to {end} holds no clock-hour start: sends are planned on the hour")
    campaign = t0 if campaign_time is None else parse_instant(campaign_time, "--campaign-time")
    if not t0 <= campaign < t1:
        raise ValueError(f"--campaign-time {campaign_time!r} must be inside the window [{start}, {end})")
    index = int(hours.searchsorted(campaign, side="left"))
    if index >= len(hours):
        raise ValueError(
            f"--campaign-time {campaign_time!r}: no clock-hour start at or after it inside the window"
        )
    return Window(t0, t1, hours, campaign, index)


def _check_format(path: Path, what: str) -> None:
    if path.suffix.lower() not in FORMATS:
        raise ValueError(
            f"{what} {path}: unknown extension {path.suffix or '(none)'!r}; use .csv or .parquet"
        )


def _channel_caps(max_per_hour: Mapping[str, int] | None) -> dict[int, int]:
    caps: dict[int, int] = {}
    for name, value in (max_per_hour or {}).items():
        key = str(name).strip().lower()
        if key not in S.CHANNELS:
            raise ValueError(f"--max-per-hour: unknown channel {name!r}; expected one of {list(S.CHANNELS)}")
        if value is None or int(value) < 0:
            raise ValueError(f"--max-per-hour {key}={value}: expected a whole number >= 0")
        caps[S.CHANNELS.index(key)] = int(value)
    return caps


# --- audience ----------------------------------------------------------------------------------


def read_audience(path: str | Path) -> pd.DataFrame:
    """The audience table; CSV is read as text (phone numbers keep their '+' and leading zeros, every
    cell comes back exactly as written, and an empty line is an empty row), Parquet with its own types."""
    path = Path(path)
    _check_format(path, "audience file")
    if not path.exists():
        raise FileNotFoundError(f"audience file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"audience file {path} is not a file")
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # parsers raise many types: name the file, keep the cause
        raise ValueError(f"audience file {path}: cannot read it as {path.suffix.lower()[1:]}: {exc}") from exc
    if S.AUDIENCE_EMAIL not in frame.columns and S.AUDIENCE_PHONE not in frame.columns:
        raise ValueError(
            f"audience file {path}: needs a column {S.AUDIENCE_EMAIL!r} or {S.AUDIENCE_PHONE!r} (or both); "
            f"found {list(map(str, frame.columns))}"
        )
    clash = [c for c in frame.columns if c in PLAN_COLUMNS]
    if clash:
        raise ValueError(
            f"audience file {path}: column(s) {clash} would be overwritten by the plan's; rename them"
        )
    return frame.reset_index(drop=True)


def contacts(frame: pd.DataFrame, column: str) -> pd.Series:
    """A contact column as objects with None where missing; a missing column means no contact at all."""
    if column not in frame.columns:
        return pd.Series([None] * len(frame), dtype=object)
    values = frame[column].astype(object)
    return values.where(values.notna(), None).reset_index(drop=True)


# --- the planning core (scores in, decisions out; no model, no files) ----------------------------


@dataclass
class CampaignPlan:
    """One decision per row plus what the campaign-wide limits did; hours index the window's hours."""

    channel: np.ndarray  # int8 [n]: 0 e-mail, 1 SMS, -1 no send
    hour: np.ndarray  # int64 [n]: -1 without a send
    window_start: np.ndarray  # int64 [n]
    window_end: np.ndarray  # int64 [n]: one past the last hour
    expected: np.ndarray  # float [n]: score at the chosen cell, NaN without a send
    reason: np.ndarray  # object [n]
    holdout: np.ndarray  # bool [n]
    explored: np.ndarray  # bool [n]
    propensity: np.ndarray  # float [n]
    max_sms: int | None = None
    caps: dict[int, int] = field(default_factory=dict)  # channel -> sends per hour
    baseline: float = 0.0  # expected engagement of a campaign-time send of the same rows (no caps)
    uncapped: float = 0.0  # expected engagement of the per-row decisions of the planned (free) rows
    cost: dict[str, float] = field(default_factory=dict)  # limit -> expected engagement it costs
    moved_by_cap: int = 0  # rows at another hour than their best because of a cap
    fallbacks: int = 0  # rows sent on their other channel because their own was full
    contactable: int = (
        0  # rows with a usable contact (not a duplicate): what holdout and exploration draw from
    )

    def __len__(self) -> int:
        return len(self.channel)

    @property
    def sms_used(self) -> int:
        return int((self.channel == SMS).sum())

    @property
    def total(self) -> float:
        return float(np.nansum(self.expected))

    def sends_per_hour(self, n_hours: int) -> np.ndarray:
        """int [2, H]: planned sends per channel and hour."""
        out = np.zeros((len(S.CHANNELS), n_hours), dtype=np.int64)
        sent = self.channel >= 0
        np.add.at(out, (self.channel[sent].astype(np.int64), self.hour[sent]), 1)
        return out


def plan_campaign(
    scores: np.ndarray,
    feasible: np.ndarray,
    policy: PolicySettings,
    *,
    max_sms: int | None = None,
    max_per_hour: Mapping[str, int] | None = None,
    holdout: np.ndarray | None = None,
    campaign_hour: int = 0,
    explore: float = 0.0,
    seed: int = 0,
    base_reasons: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
    progress: bool = False,
    assignments: list | None = None,
) -> CampaignPlan:
    """Channel and hour for every row of a campaign (the rules are in the module docstring).

    `scores[n, 2, H]`: P(click) per row, channel (0 e-mail, 1 SMS) and candidate hour; `feasible[n, 2,
    H]`: where a send is allowed (`policy.feasible_mask`); `max_per_hour`: channel name -> sends per
    hour; `holdout[n]`: the control group (kept at the campaign time); `campaign_hour`: index of the
    campaign's plain send hour; `eligible[n, 2]` tells "no contact" apart from "no feasible hour".
    `assignments`: a list to which every send-rate assignment made is appended as (rows, channel, hour
    capacities, `AssignmentResult`), for a caller that planned on a partial grid (`top_hours`).
    """
    scores = np.asarray(scores)
    scores = scores if np.issubdtype(scores.dtype, np.floating) else scores.astype(np.float64)
    feasible = np.asarray(feasible, dtype=bool)
    if scores.ndim != 3 or scores.shape[1] != len(S.CHANNELS) or feasible.shape != scores.shape:
        raise ValueError(
            f"scores and feasible: expected one shape [n, 2, H], got {scores.shape} and {feasible.shape}"
        )
    n, _, n_hours = scores.shape
    if max_sms is not None and int(max_sms) < 0:
        raise ValueError(f"--max-sms must be >= 0, got {max_sms}")
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"--explore must be a share in [0, 1], got {explore}")
    if n_hours and not 0 <= campaign_hour < n_hours:
        raise ValueError(f"campaign_hour {campaign_hour} is outside the window's {n_hours} hours")
    caps = _channel_caps(max_per_hour)
    eligible = feasible.any(axis=2) if eligible is None else np.asarray(eligible, dtype=bool)
    base = np.full(n, "", dtype=object) if base_reasons is None else np.asarray(base_reasons, dtype=object)
    hold = np.zeros(n, dtype=bool) if holdout is None else np.asarray(holdout, dtype=bool).copy()
    hold &= feasible.any(axis=(1, 2)) | eligible.any(axis=1)

    # the API's decision per row: argmax, and (seeded) exploration on top of it
    d0 = decide(
        scores,
        feasible,
        policy,
        np.random.default_rng(0),
        explore_share=0.0,
        base_reasons=base,
        eligible=eligible,
    )
    dx = d0
    if explore > 0:
        dx = decide(
            scores,
            feasible,
            policy,
            np.random.default_rng([seed, _EXPLORE_STREAM]),
            explore_share=explore,
            base_reasons=base,
            eligible=eligible,
        )
    camp_channel, camp_hour = campaign_cells(feasible, campaign_hour)

    channel, hour = dx.channel.astype(np.int8), dx.hour.astype(np.int64)
    reason = np.asarray(dx.reason, dtype=object).copy()
    explored = dx.explored & ~hold
    no_hour = (channel < 0) & eligible.any(axis=1)
    reason[no_hour] = REASON_NO_FEASIBLE
    plan = CampaignPlan(
        channel,
        hour,
        hour.copy(),
        hour + 1,
        np.full(n, np.nan),
        reason,
        hold,
        explored,
        np.full(n, np.nan),
        max_sms=None if max_sms is None else int(max_sms),
        caps=caps,
    )
    plan.baseline = _total(scores, camp_channel, camp_hour)
    plan.contactable = int(eligible.any(axis=1).sum())

    if max_sms is None and not caps:  # no shared limit: the per-row decisions are the plan
        budget, room = np.inf, {c: np.full(n_hours, UNLIMITED, dtype=np.int64) for c in (EMAIL, SMS)}
        why = _place_fixed(plan, np.flatnonzero(hold), camp_channel, camp_hour, feasible, budget, room)
        plan.uncapped = _total(
            scores,
            d0.channel[~hold & ~explored],
            d0.hour[~hold & ~explored],
            np.flatnonzero(~hold & ~explored),
        )
    else:
        budget = np.inf if max_sms is None else float(max_sms)
        room = {c: np.full(n_hours, caps.get(c, UNLIMITED), dtype=np.int64) for c in (EMAIL, SMS)}
        plan.channel[:], plan.hour[:] = NONE, -1
        why = _place_fixed(plan, np.flatnonzero(hold), camp_channel, camp_hour, feasible, budget, room)
        budget -= plan.sms_used
        kept = _place_explored(plan, np.flatnonzero(explored), dx, budget, room, caps)
        plan.explored[:] = False
        plan.explored[kept] = True
        budget = (np.inf if max_sms is None else float(max_sms)) - plan.sms_used
        free = np.flatnonzero(~hold & ~plan.explored & (d0.channel >= 0))
        _plan_free(plan, free, scores, feasible, d0, base, policy, budget, room, caps, progress, assignments)

    score_cells_of_plan(plan, scores, feasible, policy)
    fixed = hold & (plan.channel >= 0)
    plan.reason[hold] = np.where(why[hold] == "", REASON_HOLDOUT, REASON_HOLDOUT + "; " + why[hold])

    k = feasible.reshape(n, 2 * n_hours).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        plan.propensity = np.where(plan.channel >= 0, (1.0 - explore) + explore / k, np.nan)
    plan.propensity[plan.explored] = dx.propensity[plan.explored]
    plan.propensity[fixed] = 1.0
    return plan


def score_cells_of_plan(
    plan: CampaignPlan, scores: np.ndarray, feasible: np.ndarray, policy: PolicySettings
) -> None:
    """The plan's expected engagement at its cells and its best windows (holdout rows: their hour),
    the only parts of a plan read from scores once its cells are chosen."""
    sent = np.flatnonzero(plan.channel >= 0)
    plan.expected[sent] = scores[sent, plan.channel[sent], plan.hour[sent]]
    ws, we = best_windows(scores, feasible, plan.channel, plan.hour, policy.window_hours)
    plan.window_start, plan.window_end = ws, we
    fixed = plan.holdout & (plan.channel >= 0)
    plan.window_start[fixed], plan.window_end[fixed] = plan.hour[fixed], plan.hour[fixed] + 1


def window_cells(plan: CampaignPlan, n_hours: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, channel, hour) of every cell `score_cells_of_plan` may read: each sent row's cell and, for
    windows wider than an hour, the hours within `width - 1` of it on its channel."""
    sent = np.flatnonzero(plan.channel >= 0)
    span = np.arange(1 - width, width) if width > 1 else np.zeros(1, dtype=np.int64)
    hours = plan.hour[sent][:, None] + span[None, :]
    rows = np.broadcast_to(sent[:, None], hours.shape)
    channel = np.broadcast_to(plan.channel[sent].astype(np.int64)[:, None], hours.shape)
    inside = (hours >= 0) & (hours < n_hours)
    return rows[inside], channel[inside], hours[inside]


def campaign_cells(feasible: np.ndarray, campaign_hour: int) -> tuple[np.ndarray, np.ndarray]:
    """The plain campaign send per row: e-mail at the campaign hour when the row has e-mail, else SMS at
    the first feasible hour at or after it; (-1, -1) when neither is possible."""
    n, _, n_hours = feasible.shape
    channel = np.full(n, NONE, dtype=np.int8)
    hour = np.full(n, -1, dtype=np.int64)
    if not n_hours:
        return channel, hour
    email = feasible[:, EMAIL, campaign_hour]
    later = feasible[:, SMS, campaign_hour:]
    sms = ~email & later.any(axis=1)
    channel[email], hour[email] = EMAIL, campaign_hour
    channel[sms], hour[sms] = SMS, campaign_hour + later[sms].argmax(axis=1)
    return channel, hour


def _total(
    scores: np.ndarray, channel: np.ndarray, hour: np.ndarray, rows: np.ndarray | None = None
) -> float:
    rows = np.arange(len(scores)) if rows is None else rows
    sent = channel >= 0
    return float(scores[rows[sent], channel[sent], hour[sent]].astype(np.float64).sum())


def _place_fixed(plan, rows, camp_channel, camp_hour, feasible, budget, room) -> np.ndarray:
    """Holdout rows at the campaign's plain cells, in row order, against the budget and the caps.

    A full hour spills a row to the next feasible hour with room; returns why a row got no send ("" else).
    """
    why = np.full(len(plan.channel), "", dtype=object)
    plan.channel[rows], plan.hour[rows] = NONE, -1
    channel, hour = camp_channel[rows], camp_hour[rows]
    why[rows[channel < 0]] = REASON_NO_FEASIBLE
    sms = rows[channel == SMS]
    if np.isfinite(budget) and len(sms) > budget:
        unfunded = sms[int(budget) :]
        why[unfunded] = REASON_BUDGET
        rows = rows[~np.isin(rows, unfunded)]
        channel, hour = camp_channel[rows], camp_hour[rows]
    for c in (EMAIL, SMS):
        mine = rows[channel == c]
        if not len(mine):
            continue
        got = _spill_forward(feasible[mine, c], hour[channel == c], room[c])
        placed = got >= 0
        plan.channel[mine[placed]], plan.hour[mine[placed]] = c, got[placed]
        plan.channel[mine[~placed]], plan.hour[mine[~placed]] = NONE, -1
        why[mine[~placed]] = REASON_CAP
    return why


def _spill_forward(feasible: np.ndarray, earliest: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Rows in order take the first feasible hour at or after their earliest with room (room updated)."""
    m, n_hours = feasible.shape
    got = np.full(m, -1, dtype=np.int64)
    if (room >= m).all():  # no cap can bind: everyone at the first feasible hour at or after `earliest`
        ok = feasible & (np.arange(n_hours)[None, :] >= earliest[:, None])
        any_ok = ok.any(axis=1)
        got[any_ok] = ok[any_ok].argmax(axis=1)
    else:
        pending = np.ones(m, dtype=bool)
        for j in range(n_hours):
            if room[j] <= 0:
                continue
            candidates = np.flatnonzero(pending & feasible[:, j] & (earliest <= j))[: room[j]]
            got[candidates], pending[candidates] = j, False
    room -= np.bincount(got[got >= 0], minlength=n_hours)
    return got


def _place_explored(plan, rows, dx, budget, room, caps) -> np.ndarray:
    """Explored rows keep their random cell where the budget and the caps still have room (row order)."""
    channel, hour = dx.channel[rows].astype(np.int64), dx.hour[rows]
    ok = np.ones(len(rows), dtype=bool)
    if np.isfinite(budget):
        sms = np.flatnonzero(channel == SMS)
        ok[sms[max(int(budget), 0) :]] = False
    n_hours = len(room[EMAIL])
    cell = channel * n_hours + hour
    order = np.lexsort((rows, cell))  # grouped by cell, row order within
    rank = np.empty(len(rows), dtype=np.int64)
    for c in caps:  # only capped channels can run out of room
        mask = ok[order] & (channel[order] == c)
        sub = order[mask]
        starts = np.searchsorted(cell[sub], cell[sub], side="left")
        rank[sub] = np.arange(len(sub)) - starts
        ok[sub] &= rank[sub] < room[c][hour[sub]]
    kept = rows[ok]
    plan.channel[kept], plan.hour[kept] = dx.channel[kept], dx.hour[kept]
    for c in (EMAIL, SMS):
        room[c] -= np.bincount(plan.hour[kept][plan.channel[kept] == c], minlength=n_hours)
    plan.reason[kept] = dx.reason[kept]
    return kept


def _best_hour(scores: np.ndarray, feasible: np.ndarray, rows: np.ndarray, c: int) -> np.ndarray:
    return np.where(feasible[rows, c], scores[rows, c], -np.inf).argmax(axis=1)


def _plan_free(plan, rows, scores, feasible, d0, base, policy, budget, room, caps, progress, record) -> None:
    """The rows the optimiser plans: SMS budget by gain, hours by `assign_hours`, then the fallbacks."""
    want, hour0 = d0.channel[rows].astype(np.int8), d0.hour[rows]
    ch, hour_b = want.copy(), hour0.copy()

    # 1. budget: the per-row policy's SMS rows, largest gain first
    texting = np.flatnonzero(want == SMS)
    if len(texting) > budget:
        r = rows[texting]
        best_e = np.where(feasible[r, EMAIL], scores[r, EMAIL], -np.inf).max(axis=1)
        best_s = np.where(feasible[r, SMS], scores[r, SMS], -np.inf).max(axis=1)
        gain = sms_gain(best_e, best_s, policy.sms_cost, policy.click_value)
        losers = texting[np.argsort(-gain, kind="stable")[int(budget) :]]
        has_email = feasible[rows[losers], EMAIL].any(axis=1)
        ch[losers] = np.where(has_email, EMAIL, NONE)
        to_email = losers[has_email]
        hour_b[to_email] = _best_hour(scores, feasible, rows[to_email], EMAIL)
        hour_b[losers[~has_email]] = -1
    sent_b = ch >= 0
    value_b = np.zeros(len(rows))
    value_b[sent_b] = scores[rows[sent_b], ch[sent_b], hour_b[sent_b]]

    # 2. hours under the caps (a channel without a cap keeps each row's best hour)
    hour = hour_b.copy()
    for c in caps:
        mine = np.flatnonzero(ch == c)
        if len(mine):
            r = rows[mine]
            result = assign_hours(np.where(feasible[r, c], scores[r, c], -np.inf), room[c], progress=progress)
            hour[mine] = result.hour
            if record is not None:
                record.append((r, c, room[c].copy(), result))
    for c in (EMAIL, SMS):
        room[c] -= np.bincount(hour[(ch == c) & (hour >= 0)], minlength=len(room[c]))
    final = np.where(hour >= 0, ch, NONE).astype(np.int8)

    # 3. fallbacks: left out by a full channel, try the other one in the room left
    fallback = np.zeros(len(rows), dtype=bool)
    out = np.flatnonzero((ch >= 0) & (hour < 0))
    for c in (EMAIL, SMS):
        cand = out[(ch[out] == 1 - c) & feasible[rows[out], c].any(axis=1) & (final[out] < 0)]
        if c == SMS and len(cand):
            left = budget - int((final == SMS).sum())
            best_s = np.where(feasible[rows[cand], SMS], scores[rows[cand], SMS], -np.inf).max(axis=1)
            gain = sms_gain(np.full(len(cand), -np.inf), best_s, policy.sms_cost, policy.click_value)
            cand = cand[np.argsort(-gain, kind="stable")][: max(int(min(left, len(cand))), 0)]
        if not len(cand):
            continue
        r = rows[cand]
        result = assign_hours(np.where(feasible[r, c], scores[r, c], -np.inf), room[c])
        got = result.hour
        if record is not None:
            record.append((r, c, room[c].copy(), result))
        ok = got >= 0
        final[cand[ok]], hour[cand[ok]], fallback[cand[ok]] = c, got[ok], True
        room[c] -= np.bincount(got[ok], minlength=len(room[c]))
    hour = np.where(final >= 0, hour, -1)
    plan.channel[rows], plan.hour[rows] = final, hour

    # reasons and costs
    value = np.zeros(len(rows))
    sent = final >= 0
    value[sent] = scores[rows[sent], final[sent], hour[sent]]
    plan.uncapped = float(np.nansum(d0.expected[rows]))
    plan.cost = {"sms budget": plan.uncapped - float(value_b.sum())}
    for c, name in ((EMAIL, "email cap"), (SMS, "sms cap")):
        plan.cost[name] = float((value_b - value)[ch == c].sum())
    same = (final == want) & (hour == hour0)
    moved = sent & ~same & ~fallback & (final == ch) & (hour != hour_b)
    plan.moved_by_cap, plan.fallbacks = int(moved.sum()), int(fallback.sum())
    names = np.array(S.CHANNELS, dtype=object)
    policy_text = np.full(len(rows), "", dtype=object)
    demoted = (final == EMAIL) & (want == SMS) & ~fallback
    policy_text[demoted] = f"{S.EMAIL}: {S.SMS} budget went to larger gains"
    policy_text[demoted & moved] = (
        f"{S.EMAIL}: {S.SMS} budget went to larger gains; hour moved by the send-rate cap"
    )
    hour_moved = moved & ~demoted
    policy_text[hour_moved] = names[final[hour_moved]] + ": hour moved by the send-rate cap"
    policy_text[fallback] = names[final[fallback]] + ": " + names[1 - final[fallback]] + " send-rate cap full"
    policy_text[(final < 0) & (ch < 0)] = REASON_BUDGET
    policy_text[(final < 0) & (ch >= 0)] = REASON_CAP
    reason = np.asarray(d0.reason[rows], dtype=object).copy()
    changed = ~same
    reason[changed] = join_reasons(base[rows][changed], policy_text[changed])
    plan.reason[rows] = reason


def join_reasons(base: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """'<base>; <policy>' per row ('<policy>' where base is empty), built once per distinct pair."""
    if not len(policy):
        return np.array([], dtype=object)
    b_codes, b_names = pd.factorize(pd.Series(base, dtype=object).fillna("").astype(str))
    p_codes, p_names = pd.factorize(pd.Series(policy, dtype=object).fillna("").astype(str))
    keys, inverse = np.unique(b_codes.astype(np.int64) * len(p_names) + p_codes, return_inverse=True)
    texts = []
    for key in keys:
        b, p = str(b_names[key // len(p_names)]), str(p_names[key % len(p_names)])
        texts.append(f"{b}; {p}" if b and p else (b or p))
    return np.array(texts, dtype=object)[inverse.reshape(-1)]


# --- the batch job -----------------------------------------------------------------------------


@dataclass
class ScheduleResult:
    frame: pd.DataFrame  # the plan table: audience columns, then PLAN_COLUMNS
    plan: CampaignPlan
    window: Window
    model_version: str
    duplicates: int
    scored_rows: int  # distinct scoring inputs the model was called for
    timings: dict[str, float]
    scored_cells: int = 0  # (distinct input, channel, hour) cells the model scored
    plan_rounds: int = 1  # plans made: more than one when the capacity certificate asked for more cells
    invalid_timezones: int = 0  # rows whose declared timezone is not an IANA name (planned without SMS)


def resolve_audience(predictor, emails: pd.Series, phones: pd.Series, timezones: pd.Series | None = None):
    """`predictor.resolve` once per distinct (email, phone[, timezone]) row, expanded back to every row.
    `timezones` None: the audience declares no zones (and the predictor is asked with two columns)."""
    n = len(emails)
    columns = [emails, phones] if timezones is None else [emails, phones, timezones]
    codes = np.zeros(n, dtype=np.int64)
    for column in columns:
        part, uniques = pd.factorize(pd.Series(column, dtype=object).reset_index(drop=True))
        codes = pd.factorize(codes * (len(uniques) + 1) + (part + 1))[0].astype(np.int64)
    distinct, first = np.unique(codes, return_index=True)  # codes are 0..k-1 in order of first appearance
    if len(distinct) == n:
        return predictor.resolve(*(list(c) for c in columns))
    sub = predictor.resolve(*(list(np.asarray(c, dtype=object)[first]) for c in columns))
    return sub.take(codes)


def declared_timezones(frame: pd.DataFrame) -> pd.Series | None:
    """The audience's optional `timezone` column (None when it has none), blanks as None."""
    if S.AUDIENCE_TIMEZONE not in frame.columns:
        return None
    return contacts(frame, S.AUDIENCE_TIMEZONE)


def score_audience(predictor, audience, hours: pd.DatetimeIndex, progress: bool = False, dedupe: bool = True):
    """`predictor.score` once per distinct scoring input; returns (scores [n, 2, H], distinct rows).

    Two rows whose resolved fields (everything in `Audience` but subscriber_id) coincide get the same
    grid from the model, so repeats (a person listed twice, cold starts of one cohort) are scored once.
    """
    n = len(audience)
    groups = scoring_groups(audience) if dedupe and n > 1 else (np.arange(n), np.arange(n))
    scores, distinct, _ = _score_distinct(predictor, audience, hours, progress, groups)
    return scores, distinct


def _score_distinct(predictor, audience, hours, progress: bool, groups: tuple[np.ndarray, np.ndarray]):
    """`score_audience` on given `scoring_groups`, and the (input, channel, hour) cells it scored."""
    n = len(audience)
    codes, first = groups
    if len(first) == n:
        return predictor.score(audience, hours, progress=progress), n, int(audience.has.sum()) * len(hours)
    sub = audience.take(first)
    cells = int(np.asarray(sub.has).sum()) * len(hours)
    return predictor.score(sub, hours, progress=progress)[codes], len(first), cells


def uses_top_hours(predictor, top_k: int | None, n_hours: int) -> bool:
    """Whether the plan may score only each row's top hours (`top_hours`): a predictor that can
    (`score_top`, and a model that ranks hours as the profile does), and more than `top_k` hours."""
    if not top_k or top_k >= n_hours or not hasattr(predictor, "score_top"):
        return False
    return bool(predictor.ranks_hours_like_profile)


def plan_on_top_hours(predictor, aud, window: Window, reachable, feasible, options, timings, groups, top_k):
    """`plan_campaign` on a grid where only the cells it can use are scored (see `top_hours`): the
    top hours and campaign cell of every row first, then whatever the capacity check
    (`LazyScores.unsettled`) and the chosen cells ask for, planning again until the check passes.
    Returns (plan, distinct scoring inputs, cells scored, plans made)."""
    policy = predictor.settings.policy
    clock = time.perf_counter()
    camp_channel, camp_hour = campaign_cells(reachable, window.campaign_hour)
    extra = np.zeros(reachable.shape, dtype=bool)
    has = np.flatnonzero(camp_channel >= 0)
    extra[has, camp_channel[has], camp_hour[has]] = True
    lazy = LazyScores.build(
        predictor, aud, window.hours, reachable, extra, top_k, groups, options["progress"]
    )
    lazy.score_crowded(feasible, _channel_caps(options["max_per_hour"]), policy, options["max_sms"])
    clock = _lap(timings, "score", clock)
    rounds = 0
    while True:
        assignments: list = []
        with np.errstate(invalid="ignore"):  # `decide` computes windows it never returns, on -inf cells
            plan = plan_campaign(lazy.grid(), feasible, policy, assignments=assignments, **options)
        rounds += 1
        clock = _lap(timings, "allocate", clock)
        failing = lazy.unsettled(assignments)
        if not failing:
            break
        for rows, c in failing:
            lazy.ensure_all(rows, c)
        clock = _lap(timings, "score", clock)
    if lazy.ensure(*window_cells(plan, len(window.hours), policy.window_hours)):
        score_cells_of_plan(plan, lazy.grid(), feasible, policy)
    _lap(timings, "score", clock)
    return plan, len(lazy.audience), lazy.cells, rounds


def schedule_frame(
    frame: pd.DataFrame,
    predictor,
    window: Window,
    *,
    max_sms: int | None = None,
    max_per_hour: Mapping[str, int] | None = None,
    holdout: float = 0.0,
    explore: float = 0.0,
    seed: int = 0,
    progress: bool | None = None,
    dedupe_scoring: bool = True,
    duplicates: str = "first",
    timings: dict[str, float] | None = None,
    top_k: int | None = TOP_K,
    top_hours: bool | None = None,
) -> ScheduleResult:
    """Plan an audience table with a loaded predictor: resolve, score, decide under the limits.

    `duplicates`: "first" plans only the first row of each subscriber (one send per person), "all"
    plans every row on its own. `top_k`, `top_hours`: score each row's `top_k` best hours per channel
    first and the rest only where the plan needs them (`top_hours`: the same plan, for a fraction of
    the model calls) - always (True, where the model allows), never (False, or `top_k` None), or when
    it is likely to pay (None: `top_hours.worth_it`, many distinct inputs).
    """
    if duplicates not in ("first", "all"):
        raise ValueError(f"duplicates must be 'first' or 'all', got {duplicates!r}")
    from sendtime.serving.quiet_hours import load_rules, sms_allowed

    if not 0.0 <= holdout <= 1.0:
        raise ValueError(f"--holdout must be a share in [0, 1], got {holdout}")
    timings = {} if timings is None else timings
    policy = predictor.settings.policy
    n = len(frame)
    progress = n >= PROGRESS_MIN_ROWS if progress is None else progress
    clock = time.perf_counter()

    zones = declared_timezones(frame)
    aud = resolve_audience(
        predictor, contacts(frame, S.AUDIENCE_EMAIL), contacts(frame, S.AUDIENCE_PHONE), zones
    )
    bad_zone = declared_zones(zones, n)[1]
    clock = _lap(timings, "resolve", clock)

    ids = pd.Series(aud.subscriber_id, dtype=object)
    duplicate = (ids.duplicated(keep="first") & ids.notna()).to_numpy() & (duplicates == "first")
    eligible = aud.has & ~duplicate[:, None]
    allowed = sms_allowed(window.hours, aud.sms_zones, aud.state, load_rules(policy))
    reachable = feasible_mask(aud.has, allowed, window.hours, None, policy)  # before one-send-per-person
    feasible = reachable & eligible[:, :, None]
    hold = holdout_mask(ids, holdout, seed) if holdout > 0 else np.zeros(n, dtype=bool)
    options = dict(
        max_sms=max_sms,
        max_per_hour=max_per_hour,
        holdout=hold & eligible.any(axis=1),
        campaign_hour=window.campaign_hour,
        explore=explore,
        seed=seed,
        base_reasons=aud.base_reasons(),
        eligible=eligible,
        progress=progress,
    )
    clock = _lap(timings, "allocate", clock)
    groups = scoring_groups(aud) if dedupe_scoring and n > 1 else (np.arange(n), np.arange(n))
    full_cells = int(aud.has[groups[1]].sum()) * len(window.hours)
    clock = _lap(timings, "score", clock)
    wanted = top_hours if top_hours is not None else worth_it(full_cells, n)
    if wanted and uses_top_hours(predictor, top_k, len(window.hours)):
        plan, distinct, cells, rounds = plan_on_top_hours(
            predictor, aud, window, reachable, feasible, options, timings, groups, top_k
        )
        clock = time.perf_counter()
    else:
        scores, distinct, cells = _score_distinct(predictor, aud, window.hours, progress, groups)
        rounds = 1
        clock = _lap(timings, "score", clock)
        plan = plan_campaign(scores, feasible, policy, **options)
    _explain_unreachable(plan, aud, duplicate, bad_zone)
    clock = _lap(timings, "allocate", clock)
    table = plan_table(frame, aud.subscriber_id, plan, window.hours)
    _lap(timings, "assemble", clock)
    return ScheduleResult(
        table,
        plan,
        window,
        predictor.model_version,
        int(duplicate.sum()),
        distinct,
        timings,
        cells,
        rounds,
        int(bad_zone.sum()),
    )


def _lap(timings: dict[str, float], stage: str, since: float) -> float:
    now = time.perf_counter()
    timings[stage] = timings.get(stage, 0.0) + now - since
    return now


def _explain_unreachable(
    plan: CampaignPlan, aud, duplicate: np.ndarray, bad_zone: np.ndarray | None = None
) -> None:
    """Say why a row without a usable contact gets nothing; note an unusable second contact and a declared
    timezone that is not an IANA name (such a row is planned without SMS: see `Predictor.resolve`)."""
    none = ~aud.has.any(axis=1)
    why = np.asarray(aud.optout_reason, dtype=object)  # "email suppressed: hard bounce on 2026-10-07", ...
    parts = [
        (aud.invalid[:, EMAIL], np.full(len(plan), "invalid email", dtype=object)),
        (aud.invalid[:, SMS], np.full(len(plan), "invalid phone", dtype=object)),
        (aud.opted_out[:, EMAIL], why[:, EMAIL]),
        (aud.opted_out[:, SMS], why[:, SMS]),
    ]
    detail = np.full(len(plan), "", dtype=object)
    for mask, text in parts:
        detail[mask] = detail[mask] + np.where(detail[mask] == "", "", ", ").astype(object) + text[mask]
    plan.reason[none] = np.where(detail[none] == "", REASON_NO_CONTACT, detail[none])
    usable_other = ~none & ~duplicate & (detail != "")
    plan.reason[usable_other] = plan.reason[usable_other] + "; " + detail[usable_other]
    plan.reason[duplicate] = REASON_DUPLICATE
    if bad_zone is not None:  # on every such row, after whatever else its reason says
        bad = np.asarray(bad_zone, dtype=bool)
        plan.reason[bad] = plan.reason[bad] + "; " + REASON_BAD_ZONE


def plan_table(
    frame: pd.DataFrame, subscriber_id: np.ndarray, plan: CampaignPlan, hours: pd.DatetimeIndex
) -> pd.DataFrame:
    """The audience's columns, unchanged and in order, then the plan's (ISO-8601 UTC text for times)."""
    starts = np.array([*hours.strftime(ISO), None], dtype=object)  # index -1 picks None
    ends = np.array([*(hours + pd.Timedelta(hours=1)).strftime(ISO), None], dtype=object)
    sent = plan.channel >= 0
    names = np.array([*S.CHANNELS, None], dtype=object)
    columns = {
        S.SUBSCRIBER_ID: np.asarray(subscriber_id, dtype=object),
        S.PLAN_CHANNEL: names[plan.channel.astype(np.int64)],
        S.SEND_AT: starts[np.where(sent, plan.hour, -1)],
        S.EXPECTED_ENGAGEMENT: plan.expected.astype(np.float64),
        S.REASON: plan.reason.astype(object),
        WINDOW_START: starts[np.where(sent, plan.window_start, -1)],
        WINDOW_END: ends[np.where(sent, plan.window_end - 1, -1)],
        HOLDOUT: plan.holdout.astype(bool),
        EXPLORED: plan.explored.astype(bool),
        PROPENSITY: plan.propensity.astype(np.float64),
    }
    extra = pd.DataFrame(columns, index=frame.index)
    return pd.concat([frame, extra], axis=1)


def write_plan(table: pd.DataFrame, out: str | Path) -> Path:
    """Write the plan by the extension of `out`, atomically: a temporary file beside it, then os.replace."""
    out = Path(out)
    _check_format(out, "--out")
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return out


class atomic_path:  # noqa: N801 (used as a context manager, reads like a function)
    """`with atomic_path(target) as tmp:` write to tmp; on success it replaces target, on error it vanishes.

    Where the file system can (Linux, O_TMPFILE), the file being written has no name at all until it is
    complete: `tmp` is its /proc/self/fd path, and it is given a name and moved over the target only at
    the end. A process killed mid-write (even by SIGKILL, when no clean-up can run) then leaves nothing
    behind; elsewhere the file is a hidden sibling, removed on any exception (SIGTERM included: the CLI
    turns it into one) and swept by the next write once its process is gone. The file gets the usual
    permissions (umask), not a private temp file's 0600; the rename is atomic (same folder).
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.fd: int | None = None

    def _hidden_name(self) -> Path:
        return self.target.with_name(f".{self.target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_orphans(self.target)
        flag = getattr(os, "O_TMPFILE", 0)
        if flag and Path("/proc/self/fd").is_dir():
            try:
                self.fd = os.open(self.target.parent, flag | os.O_WRONLY, 0o666)
                return Path(f"/proc/self/fd/{self.fd}")
            except OSError:  # a file system without unnamed files: the named way below
                self.fd = None
        self.tmp = self._hidden_name()
        return self.tmp

    def __exit__(self, kind, value, traceback) -> None:
        if self.fd is None:
            if kind is None:
                os.replace(self.tmp, self.target)
            else:
                self.tmp.unlink(missing_ok=True)
            return
        try:
            if kind is None:
                named = self._hidden_name()  # a name for the few microseconds before the rename
                folder = os.open(named.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:  # a dir fd makes Python call linkat(AT_SYMLINK_FOLLOW), which names an unnamed file
                    os.link(f"/proc/self/fd/{self.fd}", named.name, dst_dir_fd=folder, follow_symlinks=True)
                finally:
                    os.close(folder)
                try:
                    os.replace(named, self.target)
                except BaseException:
                    named.unlink(missing_ok=True)
                    raise
        finally:
            os.close(self.fd)
            self.fd = None


def _sweep_orphans(target: Path) -> None:
    """Remove hidden temporaries of `target` left by writers that are gone (killed mid-write)."""
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        parts = path.name[len(target.name) + 2 : -len(".tmp")].split(".")
        if len(parts) == 2 and parts[0].isdigit() and not _alive(int(parts[0])):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def load_predictor(settings: Settings):
    """The champion's predictor; without one, an error that says how to get one."""
    from sendtime.serving.predictor import Predictor

    try:
        return Predictor.from_registry(settings)
    except LookupError as exc:
        raise LookupError(
            f"no champion model to plan with: train one with `sendtime train --data DIR` ({exc})"
        ) from exc


def run_schedule(
    audience: str | Path,
    start: str,
    end: str,
    out: str | Path,
    settings: Settings,
    max_sms: int | None = None,
    max_per_hour: Mapping[str, int] | None = None,
    holdout: float = 0.0,
    explore: float = 0.0,
    campaign_time: str | None = None,
    seed: int = 0,
    engine: str = "local",
    echo: Callable[[str], None] = print,
    predictor=None,
) -> int:
    """`sendtime schedule`: read the audience, plan it, write the plan and its plot, print the summary."""
    from sendtime.serving.plan_report import format_summary, plot_plan

    out, audience = Path(out), Path(audience)
    _check_format(out, "--out")
    window = parse_window(start, end, campaign_time, settings.serving.max_window_days)
    _channel_caps(max_per_hour)
    for option, share in (("--holdout", holdout), ("--explore", explore)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{option} must be a share in [0, 1], got {share}")
    if max_sms is not None and max_sms < 0:
        raise ValueError(f"--max-sms must be >= 0, got {max_sms}")
    if out.resolve() == audience.resolve():
        raise ValueError(f"--out {out} is the audience file itself; write the plan elsewhere")
    if engine != "local":
        # --- SPARK ENGINE: the distributed planner (resolution and scoring on Spark, limits on the driver) ---
        from sendtime.serving.spark_schedule import run_schedule_spark

        return run_schedule_spark(
            audience,
            window,
            out,
            settings,
            engine=engine,
            echo=echo,
            predictor=predictor,
            max_sms=max_sms,
            max_per_hour=max_per_hour,
            holdout=holdout,
            explore=explore,
            seed=seed,
        )

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    frame = read_audience(audience)
    clock = _lap(timings, "read", clock)
    predictor = predictor or load_predictor(settings)
    clock = _lap(timings, "load model", clock)
    result = schedule_frame(
        frame,
        predictor,
        window,
        max_sms=max_sms,
        max_per_hour=max_per_hour,
        holdout=holdout,
        explore=explore,
        seed=seed,
        timings=timings,
    )
    clock = time.perf_counter()
    write_plan(result.frame, out)
    clock = _lap(timings, "write", clock)
    png = plot_plan(result.plan, window.hours, out.with_suffix(".png"))
    _lap(timings, "plot", clock)
    echo(format_summary(result, out, png))
    sys.stdout.flush()
    return 0
