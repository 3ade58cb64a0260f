"""The planning core of `sendtime schedule`: scores in, one decision per row out (no model, no files).

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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from sendtime import schema as S
from sendtime.configs.settings import PolicySettings
from sendtime.serving.campaign_options import channel_caps
from sendtime.serving.capacity import UNLIMITED
from sendtime.serving.limits import PlanContext, place_explored, place_fixed, plan_free
from sendtime.serving.policy import _windows as best_windows  # shared with decide: same windows as the API
from sendtime.serving.policy import decide
from sendtime.serving.reasons import REASON_HOLDOUT, REASON_NO_FEASIBLE

EMAIL, SMS = S.CHANNELS.index(S.EMAIL), S.CHANNELS.index(S.SMS)
NONE = -1


@dataclass(frozen=True)
class PlanOptions:
    """`plan_campaign`'s keyword options, as one value a caller that plans several times passes around."""

    max_sms: int | None = None
    max_per_hour: Mapping[str, int] | None = None
    holdout: np.ndarray | None = None
    campaign_hour: int = 0
    explore: float = 0.0
    seed: int = 0
    base_reasons: np.ndarray | None = None
    eligible: np.ndarray | None = None
    progress: bool = False

    def kwargs(self) -> dict:
        """The options as keyword arguments (arrays shared, not copied as `dataclasses.asdict` would)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_EXPLORE_STREAM = 0x5E7D  # mixed into --seed: exploration draws stay independent of other seeded draws


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
    caps = channel_caps(max_per_hour)
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
    ctx = PlanContext(scores, feasible, policy, caps, progress, assignments)
    plan.contactable = int(eligible.any(axis=1).sum())

    if max_sms is None and not caps:  # no shared limit: the per-row decisions are the plan
        budget, room = np.inf, {c: np.full(n_hours, UNLIMITED, dtype=np.int64) for c in (EMAIL, SMS)}
        why = place_fixed(plan, ctx, np.flatnonzero(hold), (camp_channel, camp_hour), budget, room)
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
        why = place_fixed(plan, ctx, np.flatnonzero(hold), (camp_channel, camp_hour), budget, room)
        budget -= plan.sms_used
        kept = place_explored(plan, ctx, np.flatnonzero(explored), dx, budget, room)
        plan.explored[:] = False
        plan.explored[kept] = True
        budget = (np.inf if max_sms is None else float(max_sms)) - plan.sms_used
        free = np.flatnonzero(~hold & ~plan.explored & (d0.channel >= 0))
        plan_free(plan, ctx, free, d0, base, budget, room)

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
