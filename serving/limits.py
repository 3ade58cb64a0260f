"""The campaign's shared limits on top of the per-row decisions: holdout and explored rows placed first
against the SMS budget and the send-rate caps, then the free rows by SMS gain and `assign_hours`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sendtime import schema as S
from sendtime.configs.settings import PolicySettings
from sendtime.serving.allocation import sms_gain
from sendtime.serving.capacity import assign_hours
from sendtime.serving.reasons import (
    REASON_BUDGET,
    REASON_CAP,
    REASON_HOUR_MOVED,
    REASON_NO_FEASIBLE,
    REASON_SMS_DEMOTED,
    fallback_reason,
    join_reasons,
)

EMAIL, SMS = S.CHANNELS.index(S.EMAIL), S.CHANNELS.index(S.SMS)
NONE = -1


@dataclass(frozen=True)
class PlanContext:
    """What every placement step reads and none changes: the score grid `[n, 2, H]`, where sends are
    allowed, the policy, the capped channels (channel -> sends per hour), whether to show progress, and
    a list to which each send-rate assignment is appended (rows, channel, room, result), or None."""

    scores: np.ndarray
    feasible: np.ndarray
    policy: PolicySettings
    caps: Mapping[int, int]
    progress: bool = False
    record: list | None = None


def place_fixed(
    plan, ctx: PlanContext, rows: np.ndarray, campaign: tuple[np.ndarray, np.ndarray], budget: float, room
) -> np.ndarray:
    """Holdout rows at the campaign's plain cells, in row order, against the budget and the caps.

    A full hour spills a row to the next feasible hour with room; returns why a row got no send ("" else).
    """
    camp_channel, camp_hour = campaign
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
        got = _spill_forward(ctx.feasible[mine, c], hour[channel == c], room[c])
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


def place_explored(plan, ctx: PlanContext, rows: np.ndarray, dx, budget: float, room) -> np.ndarray:
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
    for c in ctx.caps:  # only capped channels can run out of room
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


def plan_free(plan, ctx: PlanContext, rows: np.ndarray, d0, base: np.ndarray, budget: float, room) -> None:
    """The rows the optimiser plans: SMS budget by gain, hours by `assign_hours`, then the fallbacks."""
    scores, feasible, policy, record = ctx.scores, ctx.feasible, ctx.policy, ctx.record
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
    for c in ctx.caps:
        mine = np.flatnonzero(ch == c)
        if len(mine):
            r = rows[mine]
            result = assign_hours(
                np.where(feasible[r, c], scores[r, c], -np.inf), room[c], progress=ctx.progress
            )
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
    policy_text[demoted] = REASON_SMS_DEMOTED
    policy_text[demoted & moved] = f"{REASON_SMS_DEMOTED}; {REASON_HOUR_MOVED}"
    hour_moved = moved & ~demoted
    policy_text[hour_moved] = names[final[hour_moved]] + ": " + REASON_HOUR_MOVED
    policy_text[fallback] = fallback_reason(names[final[fallback]], names[1 - final[fallback]])
    policy_text[(final < 0) & (ch < 0)] = REASON_BUDGET
    policy_text[(final < 0) & (ch >= 0)] = REASON_CAP
    reason = np.asarray(d0.reason[rows], dtype=object).copy()
    changed = ~same
    reason[changed] = join_reasons(base[rows][changed], policy_text[changed])
    plan.reason[rows] = reason
