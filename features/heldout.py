"""Held-out blocks of the history, the people sampled from them, and how well a shape predicts them.

The shrinkage search (features/shrinkage.py) predicts each block from the evidence outside it. Only
what the search reads is kept per block: at 10M events each block's full evidence would take a gigabyte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sendtime.configs.settings import ProfileSettings
from sendtime.features.exposure import Evidence, evidence, normalise
from sendtime.features.prepare import FeatureBase
from sendtime.features.priors import Cohorts, cohort_sums, fold_types, rhythm_evidence, to_daily


def heldout_start(base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings) -> pd.Timestamp:
    """The held-out tail: the last `holdout_days`, widened until it holds `holdout_min_share` of the
    engagements before as_of (sparse, long exports would otherwise choose strengths on a handful of people)."""
    cut = as_of - pd.Timedelta(days=settings.holdout_days)
    times = base.engagements.loc[base.engagements["at"] < as_of, "at"]
    if len(times) and (times >= cut).mean() < settings.holdout_min_share:
        cut = min(cut, times.quantile(1 - settings.holdout_min_share))
    return cut


def heldout_blocks(
    base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The held-out blocks, newest first: the tail before as_of (see `heldout_start`), then up to
    `holdout_folds - 1` earlier blocks of the same length that still hold some data. The search uses
    them newest first and only as many as it needs people (see `shrinkage.choose_shrinkage`)."""
    cut = heldout_start(base, as_of, settings)
    length, first = as_of - cut, base.span[0]
    return [
        (as_of - length * (k + 1), as_of - length * k)
        for k in range(settings.holdout_folds)
        if as_of - length * k > first
    ]


def heldout_loglik(shape: np.ndarray, heldout: Evidence, rows: np.ndarray, c: int) -> float:
    """Mean log-probability of the held-out engagement hours on channel c, given the held-out exposure."""
    p = normalise(shape[rows] * heldout.exposure[rows, c])
    counts = heldout.hourly[rows, c]
    return float((counts * np.log(p + 1e-12)).sum() / max(counts.sum(), 1e-9))


def over_folds(scores: list, weights: list[float]):
    """Held-out scores are means per event; over blocks, weigh each by its events."""
    return sum(w * x for w, x in zip(weights, scores, strict=True)) / max(sum(weights), 1e-9)


@dataclass(frozen=True)
class History:
    """What every block is cut from: the feature base before `as_of`, its delay kernel, the settings
    and each person's cohort code."""

    base: FeatureBase
    as_of: pd.Timestamp
    kernel: np.ndarray
    settings: ProfileSettings
    codes: np.ndarray
    n_cohorts: int


@dataclass
class Sample:
    """The people of one block with held-out events on one channel (a sample when many): their
    evidence from outside the block and in it."""

    rows: np.ndarray
    train: Evidence
    held: Evidence

    @property
    def events(self) -> float:
        return float(self.held.hourly.sum())


@dataclass
class Fold:
    """One held-out block, reduced to what the search reads: the cohort sums and everybody's rhythm
    evidence from outside the block, and per channel a sample of people (None when too few)."""

    cohort_sums: tuple[np.ndarray, np.ndarray]
    rhythm_evidence: np.ndarray
    samples: list[Sample | None]
    block: tuple[pd.Timestamp, pd.Timestamp]

    @classmethod
    def build(
        cls,
        history: History,
        block: tuple[pd.Timestamp, pd.Timestamp],
        wanted: np.ndarray,
        rng: np.random.Generator,
    ) -> Fold:
        """`wanted[c]`: how many more held-out people channel c needs (a random sample of them)."""
        base, kernel, lo, hi = history.base, history.kernel, *block
        train = evidence(
            base, kernel, history.as_of, weigh_from=lo, half_life=history.settings.half_life_days, skip=block
        )
        eng = base.engagements
        in_block = eng[(eng["at"] >= lo) & (eng["at"] < hi)]
        flat = in_block["sub"].to_numpy().astype(np.int64) * 2 + in_block["channel"].to_numpy()
        held_counts = np.bincount(flat, minlength=len(base.subscribers) * 2).reshape(-1, 2)
        samples: list[Sample | None] = []
        for c in range(2):
            rows = np.flatnonzero(held_counts[:, c] > 0)
            if rows.size < 10 or wanted[c] <= 0 or train.counts[:, c].sum() == 0:
                samples.append(None)
                continue
            if rows.size > wanted[c]:
                rows = np.sort(rng.choice(rows, int(wanted[c]), replace=False))
            held = evidence(base, kernel, hi, start=lo, subs=rows)
            samples.append(Sample(rows, train.take(rows), held))
        return cls(
            cohort_sums(train, history.codes, history.n_cohorts), rhythm_evidence(train), samples, block
        )

    def with_half_life(self, history: History, c: int, half_life: float) -> Sample | None:
        """Channel c's sample with its people's evidence from outside the block weighed by another half
        life (their own events only: the cohort sums keep `half_life_days`, a population-level blend
        that the decay barely moves)."""
        sample = self.samples[c]
        if sample is None:
            return None
        lo = self.block[0]
        train = evidence(
            history.base,
            history.kernel,
            history.as_of,
            weigh_from=lo,
            half_life=half_life,
            skip=self.block,
            subs=sample.rows,
        )
        return Sample(sample.rows, train, sample.held)


@dataclass
class DailyHeldout:
    """The held-out log-likelihood of a weekly shape built from an hour-of-day shape q, computed at 24 bins:
    log p(h) = log q(h mod 24) - log sum_h' q(h' mod 24) m(h') e(h') + terms that do not depend on q."""

    counts: np.ndarray  # [m, 24] held-out engagements by hour of day
    weight: np.ndarray  # [m, 24] sum over the week's days of modulation x held-out exposure
    total: float

    @classmethod
    def build(cls, held: Evidence, coh: Cohorts, codes: np.ndarray, c: int) -> DailyHeldout:
        counts = fold_types(held.day_types("hourly")[:, c], coh.shifts[c])
        weight = to_daily(coh.modulation[codes, c] * held.exposure[:, c], coh.shifts[c])
        return cls(counts, weight, float(max(counts.sum(), 1e-9)))

    def score(self, q: np.ndarray) -> np.ndarray:
        """q is [..., m, 24]; one score per leading index."""
        norm = np.log((q * self.weight).sum(axis=-1) + 1e-300)
        own = (self.counts * np.log(q + 1e-12)).sum(axis=(-1, -2))
        return (own - (self.counts.sum(axis=-1) * norm).sum(axis=-1)) / self.total
