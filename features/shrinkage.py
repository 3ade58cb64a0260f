"""The shrinkage search: how far each channel's shapes lean on their priors, chosen on held-out blocks.

Sparse data needs borrowed strength (the cohort, the person's other channel, typical rhythms), but as
a person's evidence grows their own pattern must win. How much to borrow is not guessed: every strength
is the one that best predicts held-out blocks of the history (features/heldout.py) from the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import ProfileSettings
from sendtime.features.exposure import normalise
from sendtime.features.heldout import (
    DailyHeldout,
    Fold,
    History,
    Sample,
    heldout_blocks,
    heldout_loglik,
    over_folds,
)
from sendtime.features.prepare import FeatureBase
from sendtime.features.priors import (
    Cohorts,
    DailyInputs,
    cohort_codes,
    daily_shape,
    fold_types,
    person_shapes,
    smoothed_cohorts,
)
from sendtime.features.rhythms import Rhythms, fit_channel_rhythms
from sendtime.features.strengths import DEFAULT, ChannelStrengths, Shrinkage

H = S.HOURS_PER_WEEK
BETA_GRID = (0.0, 0.25, 0.5, 0.75)
BLUR_GRID = (0.0, 0.15, 0.3, 0.45)
TRIGGER_GRID = (0.0, 0.25, 1.0, 4.0, 16.0, 64.0)
RHYTHM_TYPES_GRID = (3, 6, 10, 16)  # number of typical daily rhythms (features/rhythms.py)
RHYTHM_WEIGHT_GRID = (0.5, 0.75, 1.0)  # share of the cohort prior replaced by the person's likely rhythm
RHYTHM_TEMPER_GRID = (0.25, 0.5, 1.0)  # how far a person's own events are trusted to pick a rhythm
RHYTHM_OTHER_GRID = (0.0, 0.25, 0.5, 1.0)  # weight of the other channel's answers in picking the rhythm
WEEKEND_SHIFT_GRID = (-1, 0, 1, 2, 3)  # hours later the same habits run at the weekend
# held-out people per channel, over all blocks: plenty to choose a handful of strengths
MAX_HELDOUT_ROWS = 5_000
# earlier held-out blocks are added only while a channel has fewer held-out people than this
ENOUGH_HELDOUT_ROWS = 2_000
# where each channel's coordinate search starts: no borrowing, no blur, no rhythms, the strongest prior
# (cohort strength and weekend shift are chosen before it, for both channels)
SEARCH_START = replace(DEFAULT, alpha_weekly=np.inf, beta=0.0, blur=0.0, alpha_daily=512.0)

Scored = tuple[float, ChannelStrengths]  # (held-out log-likelihood, strengths at their best daily strength)


def _best(candidates) -> ChannelStrengths:
    """The strengths of the best-scored candidate; ties go to the first."""
    return max(candidates, key=lambda t: t[0])[1]


def _choose_rhythms(
    best: ChannelStrengths, fitted: list[tuple[int, bool]], score: Callable[[ChannelStrengths], Scored]
) -> ChannelStrengths:
    """Which typical rhythms (or none) at the current weight and temper, then the weight x temper of the
    chosen ones, then the weight of the other channel's answers in picking one."""

    def using(key: tuple[int, bool], weight: float, temper: float) -> ChannelStrengths:
        return replace(
            best,
            rhythm_types=key[0],
            rhythm_pooled=bool(key[1]),
            rhythm_weight=weight if key[0] else 0.0,
            rhythm_temper=temper,
        )

    weight, temper = (best.rhythm_weight, best.rhythm_temper) if best.rhythm_weight > 0 else (0.75, 0.5)
    best = _best(score(using(key, weight, temper)) for key in [(0, False), *fitted])
    if best.rhythm_types > 0:
        key = best.rhythm_key
        best = _best(score(using(key, g, t)) for g in RHYTHM_WEIGHT_GRID for t in RHYTHM_TEMPER_GRID)
        best = _best(score(replace(best, rhythm_other=o)) for o in RHYTHM_OTHER_GRID)
    return best


class _ChannelFold:
    """One block's view of one channel during the search: its sample of people (their evidence from
    outside the block and in it) and what the hour-of-day search needs of both."""

    def __init__(self, sample: Sample, codes: np.ndarray, coh: Cohorts, rhythms: dict, c: int):
        self.sample, self.codes, self.cohorts, self.rhythms = sample, codes, coh, rhythms
        self.inputs = DailyInputs.build(sample.train, coh, codes, c, rhythms)
        self.scorer = DailyHeldout.build(sample.held, coh, codes, c)
        self.events = self.scorer.total

    def loglik(self, shape: np.ndarray, c: int) -> float:
        return heldout_loglik(shape, self.sample.held, np.arange(self.sample.rows.size), c)


class _Scores:
    """Held-out scores of one channel's strengths over all blocks at once."""

    def __init__(self, views: list[_ChannelFold], c: int):
        self.views, self.c, self.events = views, c, [v.events for v in views]

    def best_alpha(self, p: ChannelStrengths, alphas: list[float]) -> Scored:
        """The best daily strength for p, by the hour-of-day score (fast, up to terms p does not change)."""
        shapes = [v.scorer.score(daily_shape(v.inputs, p, np.asarray(alphas))) for v in self.views]
        scores = over_folds(shapes, self.events)
        k = int(np.argmax(scores))
        return float(scores[k]), replace(p, alpha_daily=alphas[k])

    def weekly_ll(self, p: ChannelStrengths) -> float:
        """The full held-out log-likelihood of the hour-of-week shapes p gives."""
        c = self.c
        lls = [
            v.loglik(person_shapes(v.sample.train, v.cohorts, v.codes, c, p, v.rhythms, v.inputs), c)
            for v in self.views
        ]
        return float(over_folds(lls, self.events))

    def cohort_ll(self) -> float:
        lls = [v.loglik(v.cohorts.weekly[v.codes, self.c], self.c) for v in self.views]
        return float(over_folds(lls, self.events))


def _search_channel(
    views: list[_ChannelFold], c: int, grid: list[float], start: ChannelStrengths
) -> ChannelStrengths:
    """The coordinate search of one channel's strengths from `start`, scored over all held-out blocks."""
    scores = _Scores(views, c)
    best_alpha = scores.best_alpha
    best = replace(start, alpha_daily=grid[-1])
    has_triggers = any(bool(v.sample.train.triggers.any()) for v in views)
    fitted = sorted({k for v in views for k, r in v.rhythms.items() if r is not None})
    for _ in range(2):  # two rounds of coordinate search
        best = _best(
            best_alpha(replace(best, blur=blur, beta=beta), grid) for blur in BLUR_GRID for beta in BETA_GRID
        )
        if has_triggers:
            best = _best(
                best_alpha(replace(best, trigger_weight=w, other_trigger_weight=v), grid)
                for w in TRIGGER_GRID
                for v in TRIGGER_GRID
            )
        best = _choose_rhythms(best, fitted, lambda p: best_alpha(p, grid))
    best = max((replace(best, alpha_weekly=a) for a in [*grid, np.inf]), key=scores.weekly_ll)
    return replace(
        best,
        alpha_weekly=min(best.alpha_weekly, 1e6),  # JSON has no infinity
        heldout_loglik=scores.weekly_ll(best),
        heldout_loglik_cohort=scores.cohort_ll(),
    )


def _channel_views(
    folds: list[Fold],
    codes: np.ndarray,
    c: int,
    cohorts: list[Cohorts],
    rhythms: list[dict[tuple[int, bool], Rhythms | None]],
) -> list[_ChannelFold]:
    """Channel c's view of every block that has held-out people on it."""
    views = []
    for fold, coh, rhy in zip(folds, cohorts, rhythms, strict=True):
        sample = fold.samples[c]
        if sample is not None:
            views.append(_ChannelFold(sample, codes[sample.rows], coh, rhy, c))
    return views


def _choose_weekend_shift(
    folds: list[Fold], channels: list[int], codes: np.ndarray, strength: np.ndarray, grid: list[float]
) -> int:
    """How many hours later habits run at the weekend, by the full held-out log-likelihood of both
    channels' hour-of-week shapes (each channel at its best blur and daily strength for that shift).

    A shift lets a person's weekday habit, learnt from all seven days, land at the right weekend hour;
    the cohort's weekday/weekend modulation alone can only reweigh hours, not move a personal peak.
    One shift for both channels: a person's weekend lie-in moves both, and a small export's few
    weekend SMS answers alone picked shifts at random. 0 is one of the choices. `channels`: those with
    held-out people to judge by."""

    def score(shift: int) -> float:
        cohorts = [smoothed_cohorts(*fold.cohort_sums, strength, np.full(2, shift)) for fold in folds]
        total, events = 0.0, 0.0
        for c in channels:
            scores = _Scores(_channel_views(folds, codes, c, cohorts, [{}] * len(folds)), c)
            best = _best(scores.best_alpha(replace(SEARCH_START, blur=b), grid) for b in BLUR_GRID)
            total += scores.weekly_ll(best) * sum(scores.events)
            events += sum(scores.events)
        return total / max(events, 1e-9)

    if not channels:
        return 0
    return max(sorted(WEEKEND_SHIFT_GRID, key=abs), key=score)  # ties go to the smaller shift, 0 first


def _choose_half_life(
    history: History,
    folds: list[Fold],
    c: int,
    cohorts: list[Cohorts],
    grid: list[float],
    start: ChannelStrengths,
) -> float:
    """Channel c's recency half life (0: no decay), by the full held-out log-likelihood of the
    hour-of-week shapes at the best blur and daily strength for each; the chosen one's samples replace
    the blocks' (in place), so the rest of the search sees the evidence the profiles will use.

    The weights are relative within a person (features/exposure.py), so the half life only says which
    of a person's events tell most about them now; how much their evidence counts is their event count.
    """
    default = history.settings.half_life_days
    half_lives = sorted(
        {float(h) for h in history.settings.half_life_grid} | {default}, key=lambda h: h != default
    )
    codes, tried = history.codes, {}

    def score(half_life: float) -> float:
        samples = [
            fold.samples[c] if half_life == default else fold.with_half_life(history, c, half_life)
            for fold in folds
        ]
        tried[half_life] = samples
        views = [
            _ChannelFold(sample, codes[sample.rows], coh, {}, c)
            for sample, coh in zip(samples, cohorts, strict=True)
            if sample is not None
        ]
        scores = _Scores(views, c)
        best = _best(scores.best_alpha(replace(start, blur=b), grid) for b in BLUR_GRID)
        return scores.weekly_ll(best)

    if len(half_lives) == 1:  # nothing to choose: the blocks' samples already use it
        return default
    chosen = max(half_lives, key=score)  # ties go to the configured half life
    for fold, sample in zip(folds, tried[chosen], strict=True):
        fold.samples[c] = sample
    return chosen


def choose_shrinkage(
    base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings, kernel: np.ndarray
) -> Shrinkage:
    """Per channel, pick every strength by the log-likelihood of held-out blocks of the history.

    Each block (the last `holdout_days` before as_of, then earlier ones, up to `holdout_folds`) is
    predicted from the evidence outside it, and the scores add up over blocks, weighted by their events.
    Blocks are added newest first until each channel has ENOUGH_HELDOUT_ROWS held-out people (at most
    MAX_HELDOUT_ROWS are sampled): one block alone left the sparse channel (SMS: a few hundred people in
    a small export) to chance, the strengths it picked swinging from world to world by more than they
    gained; a large export stops after one block and pays nothing.

    Coordinate search: cohort strength; the weekend shift (both channels); the recency half life (per
    channel, `half_life_grid`); then, twice, hour-of-day blur x borrowing from the other channel
    (beta) x daily strength, triggered-send weights x daily strength, and typical rhythms (how many, how
    much of the cohort prior they replace, how far a person's events pick one) x daily strength; last
    the weekly strength.
    """
    names, codes = cohort_codes(base)
    history = History(base, as_of, kernel, settings, codes, len(names))
    rng = np.random.default_rng(0)
    past = base.engagements["channel"].to_numpy()[(base.engagements["at"] < as_of).to_numpy()]
    wanted = np.array([MAX_HELDOUT_ROWS if (past == c).any() else 0 for c in range(2)])
    folds: list[Fold] = []
    for block in heldout_blocks(base, as_of, settings):  # newest first, while some channel needs people
        if folds and not (wanted > MAX_HELDOUT_ROWS - ENOUGH_HELDOUT_ROWS).any():
            break
        folds.append(Fold.build(history, block, wanted, rng))
        wanted = wanted - [0 if s is None else s.rows.size for s in folds[-1].samples]
    grid = [float(g) for g in settings.shrinkage_grid]
    chosen: list[ChannelStrengths] = []
    judged: list[int] = []  # channels with held-out people
    for c in range(len(S.CHANNELS)):
        used = [(fold, fold.samples[c]) for fold in folds if fold.samples[c] is not None]
        if not used:
            chosen.append(
                replace(DEFAULT, heldout_rows=0, heldout_folds=0, half_life_days=settings.half_life_days)
            )
            continue
        events = [sample.events for _, sample in used]

        def over_blocks(shape_of, c: int = c, used=used, events=events) -> float:
            """shape_of(fold, rows) -> [rows, H]; its held-out log-likelihood over all blocks."""
            lls = [
                heldout_loglik(shape_of(fold, sample.rows), sample.held, np.arange(sample.rows.size), c)
                for fold, sample in used
            ]
            return float(over_folds(lls, events))

        def cohort_ll(strength: float, c: int = c, over_blocks=over_blocks) -> float:
            return over_blocks(
                lambda f, r: smoothed_cohorts(*f.cohort_sums, np.full(2, strength)).weekly[codes[r], c]
            )

        judged.append(c)
        population = over_blocks(
            lambda f, r, c=c: np.broadcast_to(normalise(f.cohort_sums[1] + 1e-3)[c], (r.size, H))
        )
        chosen.append(
            replace(
                SEARCH_START,
                cohort_strength=float(max((g * 24 for g in grid), key=cohort_ll)),
                heldout_rows=int(sum(sample.rows.size for _, sample in used)),
                heldout_folds=len(used),
                heldout_loglik_population=population,
            )
        )
    cohort_strength = np.array([s.cohort_strength for s in chosen])
    shift = _choose_weekend_shift(folds, judged, codes, cohort_strength, grid)
    chosen = [replace(s, weekend_shift=int(shift)) for s in chosen]
    shifts = np.full(2, shift)
    rhythm_choices = [(k, pool) for k in RHYTHM_TYPES_GRID for pool in (False, True)]
    cohorts = [smoothed_cohorts(*fold.cohort_sums, cohort_strength, shifts) for fold in folds]
    folded = [fold_types(fold.rhythm_evidence, shifts) for fold in folds]
    pooled_shapes: list[dict] = [{} for _ in folds]  # pooled rhythm shapes serve both channels
    for c in judged:
        chosen[c] = replace(
            chosen[c], half_life_days=_choose_half_life(history, folds, c, cohorts, grid, chosen[c])
        )
        rhythms = [
            fit_channel_rhythms(daily, codes, len(names), c, rhythm_choices, pooled)
            if fold.samples[c] is not None
            else {}
            for fold, daily, pooled in zip(folds, folded, pooled_shapes, strict=True)
        ]
        chosen[c] = _search_channel(_channel_views(folds, codes, c, cohorts, rhythms), c, grid, chosen[c])
    return Shrinkage(*chosen)
