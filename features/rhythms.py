"""Typical daily rhythms: a mixture of a few hour-of-day shapes that most people's habits resemble.

Why: a person with two SMS clicks says little about their day on their own, and the cohort (timezone)
average is flat because it pools early risers with night owls. Habits are not arbitrary, though: a
few kinds (before work, commute, lunch, evening...) cover most people. Fitted on everybody's evidence,
the mixture turns two clicks at 12:40 into "probably a lunch-time person" and lends the whole lunch
shape, not a blurred spike at 12:00. The number of rhythms (one of them is just the cohort average)
and how much a person's few events are trusted to pick one are chosen on held-out weeks like every
other strength (`shrinkage.choose_shrinkage`), so on data without such structure the choice falls back
to the cohort.

Model: multinomial mixture over the 24 hours of the day, fitted by EM on the exposure-corrected
evidence of people with some events; cohort-specific mixing weights (so a person with no events gets
their cohort's blend of rhythms, close to the cohort shape); a person's posterior over rhythms weighs
answers to sends against where sends were pending (`posterior_mean`), and its likelihood is raised to a
`temper` in (0, 1], because repeat visits are not independent draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOURS = 24
FIT_ROWS = 10_000  # people sampled to fit the rhythms: plenty for a handful of 24-bin shapes
MIN_EVENTS = 2.0  # people with fewer (weighted) events do not inform the shapes
ITERATIONS = 100
TOLERANCE = 1e-4  # stop when the mean log-likelihood per person gains less than this in an iteration
SHAPE_PSEUDO = 0.5  # events of the pooled shape added to each rhythm: no hour has probability 0
COHORT_PSEUDO = 10.0  # people's worth of global weights in each cohort's mixing weights


@dataclass
class Rhythms:
    """K daily shapes and the mixing weights per cohort."""

    shapes: np.ndarray  # [k, 24], rows sum to 1
    weights: np.ndarray  # [n_cohorts, k], rows sum to 1

    def posterior_mean(self, evidence: list[Answers], cohorts: np.ndarray, temper: float) -> np.ndarray:
        """Each person's expected hour-of-day shape given their evidence: sum_k P(k | evidence) shape_k."""
        log_q = np.log(self.shapes)  # [k, 24]
        loglik = sum(part.loglik(self.shapes, log_q) for part in evidence)
        log_r = np.log(self.weights[cohorts]) + temper * loglik  # [m, k]
        log_r -= log_r.max(axis=1, keepdims=True)
        r = np.exp(log_r)
        r /= r.sum(axis=1, keepdims=True)
        return r @ self.shapes


@dataclass
class Answers:
    """Events by hour of day [m, 24] and, for answers to sends, where sends were pending.

    Without `exposure` an event is a draw from the rhythm (activity: a triggered send, an open in an
    export without sends). With `exposure` [m, 24] (rows summing to 1) an answer can only come where
    something was pending: under rhythm k its probability is q_k(h) e(h) / sum_h' q_k(h') e(h'). A
    click right after a weekly blast then says little about the rhythm (every rhythm explains it), a
    click at an hour we rarely send says a lot.
    """

    counts: np.ndarray
    exposure: np.ndarray | None = None

    def loglik(self, shapes: np.ndarray, log_shapes: np.ndarray) -> np.ndarray:
        """[m, k] log-likelihood of each row's events under each rhythm (up to a per-row constant)."""
        out = self.counts @ log_shapes.T
        if self.exposure is not None:
            out -= self.counts.sum(axis=1)[:, None] * np.log(self.exposure @ shapes.T)
        return out


def fit_rhythms(
    evidence: np.ndarray,
    cohorts: np.ndarray,
    n_cohorts: int,
    k: int,
    seed: int = 0,
    shapes_from: np.ndarray | None = None,
) -> Rhythms | None:
    """EM for a k-component multinomial mixture over hours of the day; None when too few people have data.

    `evidence` [n, 24] (one row per person, cohorts [n]) sets the mixing weights; the shapes are fitted
    on `shapes_from` [any, 24] when given (e.g. both channels' rows), else on `evidence`.
    """
    fitted = fit_shapes(evidence if shapes_from is None else shapes_from, k, seed)
    return None if fitted is None else with_cohort_weights(*fitted, evidence, cohorts, n_cohorts)


def fit_shapes(evidence: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(shapes [k, 24], global mix [k]) by EM on the rows with some events; None when too few have any.

    Deterministic for a given seed (k-means++-style start on the normalised shapes, weighted by events).
    """
    totals = evidence.sum(axis=1)
    rows = np.flatnonzero(totals >= MIN_EVENTS)
    if rows.size < 5 * k:
        return None
    rng = np.random.default_rng(seed)
    if rows.size > FIT_ROWS:
        rows = np.sort(rng.choice(rows, FIT_ROWS, replace=False))
    x = evidence[rows]
    pooled = x.sum(axis=0) + 1e-3
    pooled /= pooled.sum()
    shares = (x + 0.5 * pooled) / (x.sum(axis=1, keepdims=True) + 0.5)
    shapes = _spread_start(shares, x.sum(axis=1), k, rng, pooled)
    mix = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(ITERATIONS):
        log_r = np.log(mix) + x @ np.log(shapes).T
        top = log_r.max(axis=1, keepdims=True)
        r = np.exp(log_r - top)
        total = r.sum(axis=1, keepdims=True)
        loglik = float((top + np.log(total)).mean())
        if loglik - previous < TOLERANCE:
            break
        previous = loglik
        r /= total
        shapes = r.T @ x + SHAPE_PSEUDO * pooled
        shapes /= shapes.sum(axis=1, keepdims=True)
        mix = (r.sum(axis=0) + 1.0) / (len(x) + k)
    return shapes, mix


def with_cohort_weights(
    shapes: np.ndarray, mix: np.ndarray, evidence: np.ndarray, cohorts: np.ndarray, n_cohorts: int
) -> Rhythms:
    """Mixing weights per cohort from every person's posterior (tempered at 1), shrunk to the global mix."""
    k = len(shapes)
    log_r = np.log(mix) + evidence @ np.log(shapes).T
    log_r -= log_r.max(axis=1, keepdims=True)
    r_all = np.exp(log_r)
    r_all /= r_all.sum(axis=1, keepdims=True)
    r_all[evidence.sum(axis=1) <= 0] = 0.0  # nobody's evidence, nobody's vote
    per_cohort = np.zeros((n_cohorts, k))
    for j in range(k):
        per_cohort[:, j] = np.bincount(cohorts, weights=r_all[:, j], minlength=n_cohorts)
    weights = per_cohort + COHORT_PSEUDO * mix
    weights /= weights.sum(axis=1, keepdims=True)
    return Rhythms(shapes=shapes, weights=weights)


def fit_channel_rhythms(
    both: np.ndarray,
    codes: np.ndarray,
    n_cohorts: int,
    c: int,
    types: list[tuple[int, bool]],
    pooled_shapes: dict | None = None,
) -> dict[tuple[int, bool], Rhythms | None]:
    """Typical daily rhythms of channel c for each (number, pooled) asked for, fitted on everybody's
    corrected engagements and triggered sends (`both`, [n, 2, 24]): of this channel, or (pooled) of both
    channels, which gives the shapes more data where one channel is sparse (SMS) and the day's habits
    are shared. Pooled shapes are the same for both channels: pass one `pooled_shapes` dict to fit them once.
    """
    pooled_shapes = {} if pooled_shapes is None else pooled_shapes
    out: dict[tuple[int, bool], Rhythms | None] = {}
    for k, pool in types:
        if pool:
            if k not in pooled_shapes:
                pooled_shapes[k] = fit_shapes(np.concatenate([both[:, 0], both[:, 1]]), k)
            fitted = pooled_shapes[k]
        else:
            fitted = fit_shapes(both[:, c], k)
        out[(k, pool)] = (
            None if fitted is None else with_cohort_weights(*fitted, both[:, c], codes, n_cohorts)
        )
    return out


def _spread_start(shares: np.ndarray, totals: np.ndarray, k: int, rng, pooled: np.ndarray) -> np.ndarray:
    """k starting shapes far apart (k-means++ on the people's shares, favouring people with more events)."""
    first = rng.choice(len(shares), p=totals / totals.sum())
    centres = [shares[first]]
    dist = ((shares - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        p = dist * totals
        i = rng.choice(len(shares), p=p / p.sum()) if p.sum() > 0 else rng.integers(len(shares))
        centres.append(shares[i])
        dist = np.minimum(dist, ((shares - shares[i]) ** 2).sum(axis=1))
    start = np.array(centres) + 0.05 * pooled
    return start / start.sum(axis=1, keepdims=True)
