"""`schedule_frame`: an audience table planned with a loaded predictor (resolve, score, decide under
the campaign's limits), the local engine's planner and the Spark engine's driver side.

- Duplicates: a person may appear on several rows (the same contact twice, or an e-mail and a phone
  the identity graph links). Every row is kept, in order, but only the first row of each
  `subscriber_id` is planned; later ones get no send, reason `duplicate: same subscriber as an earlier
  row (one send per person)`. (`schedule_frame(..., duplicates="all")` plans every row on its own
  instead; the benchmark uses it to plan a million rows drawn from a small simulated world.)
  Rows without any usable contact get no send and say why: `no contact`, `invalid email`, `invalid
  phone`, `email suppressed: hard bounce on 2026-10-07` (the suppression rule that applied, see
  features/suppression.py: `unsubscribed on ...`, `3 bounces in a row since ...`), ... A usable row with an unusable second contact is planned and its
  reason ends in `; invalid phone` (or e-mail). A CSV's empty line is an empty row, not skipped.

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

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features.local_time import declared_zones
from sendtime.serving.allocation import holdout_mask
from sendtime.serving.campaign import (
    CampaignPlan,
    PlanOptions,
    campaign_cells,
    plan_campaign,
    score_cells_of_plan,
    window_cells,
)
from sendtime.serving.campaign_options import Window, channel_caps
from sendtime.serving.feasibility import feasible_cells
from sendtime.serving.plan_io import contacts, declared_timezones, plan_table
from sendtime.serving.reasons import (
    REASON_BAD_ZONE,
    REASON_DUPLICATE,
    REASON_INVALID_EMAIL,
    REASON_INVALID_PHONE,
    REASON_NO_CONTACT,
)
from sendtime.serving.top_hours import TOP_K, LazyScores, scoring_groups, worth_it

log = logging.getLogger(__name__)

EMAIL, SMS = S.CHANNELS.index(S.EMAIL), S.CHANNELS.index(S.SMS)


PROGRESS_MIN_ROWS = 50_000  # progress bars on runs at least this long


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


def plan_on_top_hours(
    predictor, aud, window: Window, reachable, feasible, options: PlanOptions, timings, groups, top_k
):
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
    lazy = LazyScores.build(predictor, aud, window.hours, reachable, extra, top_k, groups, options.progress)
    lazy.score_crowded(feasible, channel_caps(options.max_per_hour), policy, options.max_sms)
    clock = lap(timings, "score", clock)
    rounds = 0
    while True:
        assignments: list = []
        with np.errstate(invalid="ignore"):  # `decide` computes windows it never returns, on -inf cells
            plan = plan_campaign(lazy.grid(), feasible, policy, assignments=assignments, **options.kwargs())
        rounds += 1
        clock = lap(timings, "allocate", clock)
        failing = lazy.unsettled(assignments)
        if not failing:
            break
        for rows, c in failing:
            lazy.ensure_all(rows, c)
        clock = lap(timings, "score", clock)
    if lazy.ensure(*window_cells(plan, len(window.hours), policy.window_hours)):
        score_cells_of_plan(plan, lazy.grid(), feasible, policy)
    lap(timings, "score", clock)
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
    clock = lap(timings, "resolve", clock)

    ids = pd.Series(aud.subscriber_id, dtype=object)
    duplicate = (ids.duplicated(keep="first") & ids.notna()).to_numpy() & (duplicates == "first")
    eligible = aud.has & ~duplicate[:, None]
    reachable = feasible_cells(aud, window.hours, policy)  # before one-send-per-person
    feasible = reachable & eligible[:, :, None]
    hold = holdout_mask(ids, holdout, seed) if holdout > 0 else np.zeros(n, dtype=bool)
    options = PlanOptions(
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
    clock = lap(timings, "allocate", clock)
    groups = scoring_groups(aud) if dedupe_scoring and n > 1 else (np.arange(n), np.arange(n))
    full_cells = int(aud.has[groups[1]].sum()) * len(window.hours)
    clock = lap(timings, "score", clock)
    wanted = top_hours if top_hours is not None else worth_it(full_cells, n)
    if wanted and uses_top_hours(predictor, top_k, len(window.hours)):
        plan, distinct, cells, rounds = plan_on_top_hours(
            predictor, aud, window, reachable, feasible, options, timings, groups, top_k
        )
        clock = time.perf_counter()
    else:
        scores, distinct, cells = _score_distinct(predictor, aud, window.hours, progress, groups)
        rounds = 1
        clock = lap(timings, "score", clock)
        plan = plan_campaign(scores, feasible, policy, **options.kwargs())
    _explain_unreachable(plan, aud, duplicate, bad_zone)
    clock = lap(timings, "allocate", clock)
    table = plan_table(frame, aud.subscriber_id, plan, window.hours)
    lap(timings, "assemble", clock)
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


def lap(timings: dict[str, float], stage: str, since: float) -> float:
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
        (aud.invalid[:, EMAIL], np.full(len(plan), REASON_INVALID_EMAIL, dtype=object)),
        (aud.invalid[:, SMS], np.full(len(plan), REASON_INVALID_PHONE, dtype=object)),
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


def load_predictor(settings: Settings):
    """The champion's predictor; without one, an error that says how to get one."""
    from sendtime.serving.predictor import Predictor

    try:
        predictor = Predictor.from_registry(settings)
    except LookupError as exc:
        raise LookupError(
            f"no champion model to plan with: train one with `sendtime train --data DIR` ({exc})"
        ) from exc
    log.info(
        "model version %s loaded, profiles as of %s",
        predictor.model_version,
        predictor.meta.get("profiles_as_of"),
    )
    return predictor
