"""Score only the hours a campaign plan can use: each person-channel's best few, more on demand.

Why it is exact. Within one person and channel the model's features split in two: level features
(rates, recency, how much we know) are the same at every candidate hour, and hour features
(`response`, `response_rank`, `response_vs_best`, `rate_x_response`, `engage_rate_x_response`) all
rise with the profile's response rank of the hour. The champion is trained with every hour feature
monotone increasing, so its probability never falls as the rank rises, and the tie-break
(`1 + 1e-3 * response_rank`) makes it rise strictly (`LazyScores.build` scores every hour of a
person-channel where that margin ever vanishes). So the profile's rank orders a person-channel's
hours exactly as the model's scores do, and scoring only the `k` feasible hours of highest rank
gives every per-channel maximum, hence `decide`'s choice, the SMS budget's gains and every per-row
decision, unchanged. `model_ranks_like_profile` checks the premise on each champion (constraints in
the booster, hour features rising with the rank on sampled profiles); where it fails the plan scores
every cell, as before.

An unscored hour is never silently treated as good or as unavailable:
- its score is at most `bound` (the lowest of its row's top-`k` scores);
- the send-rate cap's assignment (`capacity.assign_hours`) is solved on the scored cells, then
  checked (`unsettled`): every row the solver read beyond its best hour must have had all its hours
  scored, or (where only its price rounds ran) provably never looked at an unscored one. Rows that
  fail have all their feasible hours scored and the plan is made again, until none fails. The solver
  then took exactly the steps it takes on the full grid, so it returns the same assignment, ties
  among identical rows included (an optimum alone would not do: it can swap identical rows);
- cells the plan lands on for other reasons (exploration's random cells, holdout sends spilled past a
  full hour, the hours of a best window) are scored once the plan is known (`ensure`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.features.model_features import FEATURES, feature_matrix, gather_rows

TOP_K = 4  # hours scored per person-channel up front (plus the campaign's own cell)
CROWDED = 0.3  # share of a channel's rows its caps turn away, above which all its hours are scored
CELLS_PER_ROW = 5  # full-grid cells of distinct inputs per audience row from which top hours pay
SAMPLE_PROFILES = 64  # profiles sampled to check that hour features rise with the response rank
MARGIN = 1e-9  # slack of every check: far above rounding, far below any difference that matters


def model_ranks_like_profile(predictor) -> bool:
    """True when every feature that varies across one person-channel's hours rises with the profile's
    response rank (checked on sampled profiles, the cohorts' and the population's) and is constrained
    monotone increasing in the booster. Either failing means the model may rank hours otherwise."""
    names = list(predictor.booster.feature_name())
    constraints = list(predictor.booster.dump_model().get("monotone_constraints") or [])
    if names != list(FEATURES) or len(constraints) != len(names):
        return False
    profiles = predictor.profiles
    m = min(len(profiles), SAMPLE_PROFILES)
    n_cohorts = len(profiles.cohorts)
    rows = np.r_[np.arange(m), np.full(min(n_cohorts, SAMPLE_PROFILES) + 1, -1)]
    cohorts = np.r_[np.full(m, -1), np.arange(min(n_cohorts, SAMPLE_PROFILES)), -1]
    g = gather_rows(
        profiles, rows, cohorts=cohorts, has_email=np.ones(len(rows), bool), has_sms=np.ones(len(rows), bool)
    )
    n, week = len(rows), S.HOURS_PER_WEEK
    idx = np.repeat(np.arange(n), 2 * week)
    channel = np.tile(np.repeat([0, 1], week), n)
    how = np.tile(np.arange(week), 2 * n)
    X = feature_matrix(g, profiles, idx, channel, how).reshape(n, 2, week, len(names)).astype(np.float64)
    order = np.argsort(g.rank, axis=2, kind="stable")  # each person-channel's hours, lowest rank first
    X = np.take_along_axis(X, order[:, :, :, None], axis=2)
    before, after = X[:, :, :-1], X[:, :, 1:]
    differ = (after != before) & ~(np.isnan(after) & np.isnan(before))  # NaN to NaN is no change
    rising = ~differ | (after > before)  # a step involving one NaN is neither
    varies = differ.any(axis=(0, 1, 2))
    return all(constraints[f] == 1 and rising[..., f].all() for f in np.flatnonzero(varies))


def worth_it(distinct_cells: int, rows: int) -> bool:
    """Whether scoring only top hours is likely to pay: it saves most of the model's work (~1 us a
    cell) but a binding cap may ask for a second plan (~4 us a row). A million different people (48M
    cells) gain ~25 s; a million rows of 5,000 people (a quarter of a million cells) would lose seconds."""
    return rows > 0 and distinct_cells >= CELLS_PER_ROW * rows


def scoring_groups(audience) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, first row of each code): rows whose resolved fields (all but subscriber_id)
    coincide get one code, so their scores are computed once."""
    n = len(audience)
    codes = np.zeros(n, dtype=np.int64)
    for name in type(audience).__dataclass_fields__:
        if name == S.SUBSCRIBER_ID:
            continue
        values = np.asarray(getattr(audience, name))
        for column in values.reshape(n, -1).T:
            part, uniques = pd.factorize(pd.Series(column, dtype=object if column.dtype == object else None))
            codes = pd.factorize(codes * (len(uniques) + 1) + (part + 1))[0].astype(np.int64)
    _, first = np.unique(codes, return_index=True)  # codes are 0..k-1 in order of first appearance
    return codes, first


@dataclass
class LazyScores:
    """A plan's score grid with only some cells scored (-inf elsewhere), kept per distinct scoring input.

    `scores`, `scored` [m, 2, H] and `bound` [m, 2] are the distinct inputs' (see `Predictor.score_top`);
    `codes` maps the plan's n rows to them. `grid()` is the [n, 2, H] view the planner reads.
    """

    predictor: object
    audience: object  # Audience of the m distinct inputs
    hours: pd.DatetimeIndex
    codes: np.ndarray
    feasible: np.ndarray
    scores: np.ndarray
    scored: np.ndarray
    bound: np.ndarray
    cells: int = 0  # cells scored so far
    _grid: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def build(cls, predictor, audience, hours, feasible, extra, k=TOP_K, groups=None, progress=False):
        """Top-k hours (and the `extra` cells) of every row; `feasible`, `extra`: [n, 2, H] per row;
        `groups`: `scoring_groups(audience)` to score each distinct input once (None: every row)."""
        n = len(audience)
        codes, first = (np.arange(n), np.arange(n)) if groups is None else groups
        if len(first) < n:
            audience = audience.take(first)
            feasible, extra = feasible[first], extra[first]
        scores, scored, bound = predictor.score_top(
            audience, hours, feasible, max(int(k), 2), extra, progress
        )
        lazy = cls(
            predictor, audience, hours, codes, feasible & audience.has[:, :, None], scores, scored, bound
        )
        lazy.cells = int(scored.sum())
        # the rank order puts the top score strictly above every unscored one; should it ever come
        # within MARGIN of them (far inside a solver's tie tolerance), score the whole person-channel
        top = np.where(scored, scores, -np.inf).max(axis=2)
        tied = np.flatnonzero((np.isfinite(bound) & (top <= bound + MARGIN)).ravel())
        if len(tied):
            lazy._score_all(tied // 2, tied % 2)
        return lazy

    def score_crowded(
        self, feasible: np.ndarray, caps: dict[int, int], policy, max_sms: int | None
    ) -> list[int]:
        """Score every hour, up front, of the rows of a channel whose cap is far below its demand;
        returns those channels. A speed heuristic only (the plan is the same either way): when most
        rows first want an hour that is over its cap, the cap's solver reads nearly every row in full,
        so `unsettled` would ask for them after a first plan and the plan would be made twice.

        Each row's channel is estimated as the plan's first step makes it (best value after the SMS
        cost; texts beyond `max_sms` to the smallest gains go back to e-mail) and its first choice as
        that channel's best hour; a channel is crowded when the rows its caps must turn away from their
        first choice are more than `CROWDED` of its rows. (On the benchmark world the solver needed its
        exact finisher, which reads whole rows, at caps of half the uncapped peak, turning away ~38% of
        the e-mail rows, and not at 65% or 80% of it: 25% and 15%.)
        """
        from sendtime.serving.allocation import sms_gain

        grid = self.grid()
        best = np.where(feasible, grid, -np.inf).max(axis=2)  # [n, 2]: the true maxima (top-1 is scored)
        value = policy.click_value * best - np.array([0.0, policy.sms_cost])[None, :]
        channel = np.where(value[:, 1] > value[:, 0], 1, 0)
        texting = np.flatnonzero((channel == 1) & np.isfinite(best[:, 1]))
        if max_sms is not None and len(texting) > max_sms:
            gain = sms_gain(best[texting, 0], best[texting, 1], policy.sms_cost, policy.click_value)
            channel[texting[np.argsort(-gain, kind="stable")[int(max_sms) :]]] = 0
        crowded = []
        for c, cap in caps.items():
            rows = np.flatnonzero((channel == c) & np.isfinite(best[:, c]))
            if not len(rows):
                continue
            first = np.where(feasible[rows, c], grid[rows, c], -np.inf).argmax(axis=1)
            demand = np.bincount(first, minlength=grid.shape[2])
            if np.maximum(demand - cap, 0).sum() > CROWDED * len(rows):
                self.ensure_all(rows, c)
                crowded.append(c)
        return crowded

    def grid(self) -> np.ndarray:
        """float32 [n, 2, H]: scores where scored, -inf elsewhere."""
        if self._grid is None:
            self._grid = (
                self.scores
                if np.array_equal(self.codes, np.arange(len(self.codes)))
                else self.scores[self.codes]
            )
        return self._grid

    def ensure(self, rows: np.ndarray, channel: np.ndarray, hour: np.ndarray) -> int:
        """Score the given plan cells where feasible and not yet scored; returns how many were."""
        d = self.codes[np.asarray(rows, dtype=np.int64)]
        channel, hour = np.asarray(channel, dtype=np.int64), np.asarray(hour, dtype=np.int64)
        todo = self.feasible[d, channel, hour] & ~self.scored[d, channel, hour]
        if not todo.any():
            return 0
        cells = np.unique(np.stack([d[todo], channel[todo], hour[todo]]), axis=1)
        return self._score(*cells)

    def ensure_all(self, rows: np.ndarray, channel: int) -> int:
        """Score every feasible hour of the plan rows `rows` on `channel`."""
        d = np.unique(self.codes[np.asarray(rows, dtype=np.int64)])
        return self._score_all(d, np.full(len(d), channel))

    def _score_all(self, d: np.ndarray, channel: np.ndarray) -> int:
        self.bound[d, channel] = -np.inf
        todo = self.feasible[d, channel] & ~self.scored[d, channel]
        i, j = np.nonzero(todo)
        return self._score(d[i], channel[i], j)

    def _score(self, d: np.ndarray, channel: np.ndarray, hour: np.ndarray) -> int:
        if not len(d):
            return 0
        values = self.predictor.score_cells(self.audience, self.hours, d, channel, hour)
        self.scores[d, channel, hour] = values
        self.scored[d, channel, hour] = True
        if self._grid is not None and self._grid is not self.scores:
            rows = np.flatnonzero(np.isin(self.codes, np.unique(d)))
            self._grid[rows] = self.scores[self.codes[rows]]
        self.cells += len(d)
        return len(d)

    def unsettled(self, assignments: list) -> list[tuple[np.ndarray, int]]:
        """Rows of the recorded capacity assignments (plan rows, channel, hour capacities,
        `AssignmentResult`) whose unscored hours the solver could have read: they need all their
        hours scored before the assignment can be trusted to be the full grid's (module docstring).

        `capacity.assign_hours` starts every row at its best hour (the top-ranked one, scored). Its
        price rounds then read the rows of over-full hours; its exact finisher reads every row of a full
        hour; rows left out are read again to fill free room. A row it never moved and whose hour was
        never full is read by none of these. So, with the result in hand:
        - rows that moved, were left out, or sit in (or started from) a full hour are read: when the
          finisher ran, each of them must have every hour scored (its pools compare whole rows);
        - when it did not, only the price rounds read them, and only through their best choices net
          of the prices, which only rise: a row passes if its second-best scored hour at the final
          prices beats the bound of its unscored hours, so no unscored hour was ever among its best two.
        Rows left out are always read in full. A row whose best hour is tied (the same local hour twice
        in the window) counts as moved, since the solver may have started it at either.
        """
        out = []
        for rows, c, capacity, result in assignments:
            d = self.codes[rows]
            open_ = np.isfinite(self.bound[d, c])
            if not open_.any():
                continue
            values = self.scores[d, c]
            n_hours = values.shape[1]
            x = result.hour
            best = values.max(axis=1)
            first = values.argmax(axis=1)
            tied = (values == best[:, None]).sum(axis=1) > 1
            load = np.bincount(x[x >= 0], minlength=n_hours)
            full = load >= np.minimum(capacity, len(rows))
            read = (x < 0) | (x != first) | tied
            if result.augmentations > 0:
                read |= full[first] | full[np.maximum(x, 0)]
                fail = open_ & read
            else:
                net = values.astype(np.float64) - result.prices[None, :]
                second = (
                    np.partition(net, n_hours - 2, axis=1)[:, -2] if n_hours > 1 else np.full(len(d), -np.inf)
                )
                fail = open_ & ((x < 0) | tied | ~(self.bound[d, c] < second - MARGIN))
            if fail.any():
                out.append((rows[fail], c))
        return out
