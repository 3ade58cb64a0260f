"""Global optimisation for batch campaign plans (`sendtime schedule`): SMS budget, send-rate caps, holdout.

Per-row decisions (`policy.decide`) are optimal one subscriber at a time, but a campaign has shared
limits: at most `--max-sms` texts, at most `--max-per-hour` sends per clock hour on a channel. Giving
those scarce resources to whoever comes first in the file throws value away; these functions hand them
to the rows that gain most, as pure NumPy/SciPy functions on score arrays:

- `allocate_sms_budget`: exact top-k of the SMS gain over e-mail;
- `assign_hours`: the optimal hour for every row under per-hour capacities (a transportation problem),
  solved exactly with hour prices, fast enough for a million rows;
- `holdout_mask`: a reproducible control group keyed by subscriber.

Conventions: channel 0 = e-mail, 1 = SMS (`schema.CHANNELS`); a value of `-inf` marks an infeasible
cell (no contact, SMS quiet hours, outside the window); -1 means "no channel" or "no hour".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from tqdm.auto import tqdm

NO_CHANNEL = -1
NO_HOUR = -1
UNLIMITED = np.iinfo(np.int64).max  # capacity meaning "no cap"

_CHUNK_CELLS = 1 << 22  # cells per block in row-wise passes, to bound temporary memory (~32 MB)
_MAX_ROUNDS = 500  # price rounds at most before the exact finisher takes over
_POOL_CELLS = 1 << 22  # cells of the exact finisher's candidate pools: (H+1) hours x (H+1) nodes x k rows
# measured costs in "cells read" (one value of `value`, a few ns): a price round costs about 3 per row
# + 3 per row of an over-full hour + the cells it reads; one exact repair about 150000 + 1500 per hour
_ROUND_COST = (3.0, 3.0)
_REPAIR_COST = (150_000.0, 1_500.0)


# --- 1. SMS budget -----------------------------------------------------------------------------


def sms_gain(
    best_email: np.ndarray, best_sms: np.ndarray, sms_cost: float = 0.0, click_value: float = 1.0
) -> np.ndarray:
    """What sending SMS instead of the alternative is worth, per row (-inf where SMS is infeasible).

    The alternative is the best e-mail cell; for a row without e-mail (SMS-only) it is not sending,
    worth 0, so SMS-only rows compete for the budget on the same footing as everyone else.
    """
    email, sms = _as_vector("best_email", best_email), _as_vector("best_sms", best_sms)
    if email.shape != sms.shape:
        raise ValueError(f"best_email and best_sms: shapes differ, {email.shape} vs {sms.shape}")
    if not click_value > 0:
        raise ValueError(f"click_value must be positive, got {click_value}")
    alternative = np.where(np.isfinite(email), email, 0.0)
    with np.errstate(invalid="ignore"):
        gain = click_value * (sms - alternative) - sms_cost
    return np.where(np.isfinite(sms), gain, -np.inf)


def allocate_sms_budget(
    best_email: np.ndarray,
    best_sms: np.ndarray,
    max_sms: int | None,
    sms_cost: float = 0.0,
    click_value: float = 1.0,
) -> np.ndarray:
    """Channel per row (int8: 0 e-mail, 1 SMS, -1 none) that spends the SMS budget where it gains most.

    Rule: a row's SMS gain is `click_value * (best_sms - best_email) - sms_cost`; for a row with no
    e-mail contact it is `click_value * best_sms - sms_cost`, because its alternative is not sending.
    SMS goes to the rows with the largest positive gains, never more than `max_sms` of them
    (`None`: no budget, every row with a positive gain gets SMS). Ties at the budget's edge go to the
    earlier rows, so the plan is deterministic. Every other row gets e-mail if it has e-mail, else
    nothing (-1: an SMS-only row whose gain is not positive, or that the budget could not fund).

    Selecting the top k gains is exactly optimal for the budget alone: the rows' gains add up and
    one SMS is one unit of budget whatever the row.
    """
    gain = sms_gain(best_email, best_sms, sms_cost, click_value)
    has_email = np.isfinite(_as_vector("best_email", best_email))
    wanted = np.flatnonzero(gain > 0)
    if max_sms is not None:
        if max_sms < 0:
            raise ValueError(f"max_sms must be >= 0 or None, got {max_sms}")
        wanted = _top_k(wanted, gain[wanted], int(max_sms))
    channel = np.where(has_email, 0, NO_CHANNEL).astype(np.int8)
    channel[wanted] = 1
    return channel


def _top_k(rows: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """The k rows of highest score (rows ascending); ties at the k-th score go to the earlier rows."""
    if k >= len(rows):
        return rows
    if k == 0:
        return rows[:0]
    kth = score[np.argpartition(-score, k - 1)[k - 1]]
    above = rows[score > kth]
    tied = rows[score == kth][: k - len(above)]
    return np.sort(np.concatenate([above, tied]))


# --- 2. send-rate capacity ---------------------------------------------------------------------


@dataclass
class AssignmentResult:
    """An optimal assignment of rows to hours under per-hour capacities."""

    hour: np.ndarray  # int64 [m]: the hour index, -1 when no feasible hour had room
    total_value: float  # sum of value at the chosen hours
    unconstrained_value: float  # each row at its own best hour, as if there were no caps
    cost_of_cap: float  # unconstrained_value - total_value: what the caps cost
    n_unassigned: int  # rows with a feasible hour that stay unsent because the caps are full
    iterations: int  # price rounds
    augmentations: int = 0  # exact shortest-path repairs after the price rounds
    prices: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [H] value of one more slot per hour
    duality_gap: float = 0.0  # dual bound - total_value: 0 up to rounding proves optimality


def assign_hours(value: np.ndarray, capacity: np.ndarray, progress: bool = False) -> AssignmentResult:
    """Maximise the total value of a campaign under per-hour send caps; exact, for millions of rows.

    `value[m, H]`: the expected engagement of each row at each hour on its chosen channel (`-inf`:
    infeasible, never used). `capacity[H]`: sends allowed per hour (`UNLIMITED` = no cap). Each row
    is sent at most once; a row left out is worth 0. Values are meant to be >= 0 (probabilities):
    then a row is left out (-1) only when every feasible hour is full, and when the caps cannot hold
    everyone the rows left out are those whose loss is least. (A row whose every feasible value is
    negative is better not sent, and is left out.)

    Why not first come, first served: a row that is as happy at 09:00 as at 10:00 should leave the
    last 10:00 slot to a row that only responds at 10:00 (`greedy_first_come` does not).

    Method: this is a transportation problem (unit demands, hour capacities). Its dual has one price
    per hour, and a plan is optimal exactly when every row sits at its best hour at value minus
    price (or out, worth 0) and only full hours have a positive price.
    0. Hours whose columns are identical for every row (the same hour of the week in a two-week
       window) are merged into one hour with their summed capacity, and split again at the end.
    1. Price rounds (`_price_rounds`, a Jacobi auction on hour prices): every over-full hour raises
       its price just enough that only `capacity` rows still prefer it; the others move to their
       next best choice. Prices only rise and never pass the smallest equilibrium prices, so every
       row stays at a best choice and every priced hour stays full, while the excess shrinks.
    2. Exact finisher (`_ShortestPaths`, successive shortest paths with the prices as potentials on
       the graph of the H hours and "out"): each excess row left moves along the cheapest chain of
       moves to an hour with room or out; prices are updated so the conditions above keep holding.
    At the end no hour is over-full and the conditions hold, so the plan is optimal; `duality_gap`
    (dual bound minus plan value, ~1e-12 from rounding) certifies it on every call. A round costs
    O(m) plus the rows it reads (only those near their margin); a repair about O(H^2).
    """
    v = _as_matrix(value)
    n_hours = v.shape[1]
    cap = _as_capacity(capacity, n_hours)
    tol = 1e-12 * max(_largest(v), 1.0)

    same = _identical_hours(v)  # hours every row values alike: one hour with their summed capacity
    keep = np.flatnonzero(same == np.arange(n_hours))
    merged = v[:, keep] if len(keep) < n_hours else v
    merged_cap = np.bincount(
        np.searchsorted(keep, same), weights=np.minimum(cap, len(v)), minlength=len(keep)
    )
    first = _best_choice(merged, np.zeros(len(keep)), tol)  # len(keep): not sending
    unconstrained = float(_value_at(merged, first).sum())
    with tqdm(desc="capacity", unit="step", disable=not progress) as bar:
        x, prices, rounds, augmentations = _solve(merged, merged_cap.astype(np.int64), first.copy(), tol, bar)
    hour = _split_identical(np.append(keep, NO_HOUR)[x], same, cap)  # x == len(keep): not sending
    prices = prices[np.searchsorted(keep, same)] if n_hours else prices

    total = float(_value_at(v, np.where(hour >= 0, hour, n_hours)).sum())
    return AssignmentResult(
        hour=hour,
        total_value=total,
        unconstrained_value=unconstrained,
        cost_of_cap=unconstrained - total,
        n_unassigned=int(((hour == NO_HOUR) & (first < len(keep))).sum()),
        iterations=rounds,
        augmentations=augmentations,
        prices=prices,
        duality_gap=_dual_bound(v, cap, prices) - total,
    )


def _solve(
    v: np.ndarray, cap: np.ndarray, x: np.ndarray, tol: float, bar
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """From every row at its best choice `x` (hour, or H for not sending) to an optimal plan:
    returns the choices, the hour prices, the price rounds and the exact repairs."""
    n_hours = v.shape[1]
    prices = np.zeros(n_hours)
    load = np.bincount(x, minlength=n_hours + 1)[:n_hours]
    rounds = _price_rounds(v, cap, x, prices, load, tol, bar)
    augmentations = _ShortestPaths(v, cap, x, prices, load).run(bar)
    _fill_free_room(v, cap, x, load)
    return x, prices, rounds, augmentations


def _identical_hours(v: np.ndarray) -> np.ndarray:
    """For every hour, the first hour whose column is identical to it (itself if none).

    Columns are compared by two random projections first (O(m H), BLAS), then exactly. Identical
    columns are common when scores depend on the hour of the week and the window spans two weeks.
    """
    m, n_hours = v.shape
    same = np.arange(n_hours)
    if n_hours < 2 or not m:
        return same
    w = np.random.default_rng(0).standard_normal((m, 2))
    finger = np.zeros((n_hours, 4))
    for s in _blocks(m, n_hours):
        finite = np.isfinite(v[s])
        finger[:, :2] += np.where(finite, v[s], 0.0).T @ w[s]
        finger[:, 2:] += (~finite).T.astype(np.float64) @ w[s]
    order = np.lexsort(finger.T[::-1])
    close = np.all(np.isclose(finger[order[1:]], finger[order[:-1]], rtol=1e-9, atol=1e-9), axis=1)
    for run in np.split(order, np.flatnonzero(~close) + 1):
        firsts: list[int] = []
        for h in np.sort(run):
            match = next((f for f in firsts if np.array_equal(v[:, f], v[:, h])), None)
            if match is None:
                firsts.append(h)
            else:
                same[h] = match
    return same


def _split_identical(hour: np.ndarray, same: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Share the rows placed in a merged hour among its identical hours, earliest hour first."""
    out = hour.copy()
    for first in np.unique(same[same != np.arange(len(same))]):
        members = np.flatnonzero(same == first)
        rows = np.flatnonzero(hour == first)
        ends = np.cumsum(np.minimum(cap[members], len(rows)))
        out[rows] = members[np.searchsorted(ends, np.arange(len(rows)), side="right")]
    return out


def greedy_first_come(value: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """The naive plan, for comparison only: rows in input order each take their best hour with room.

    Returns the hour per row (-1 when no feasible hour has room). Vectorised by events: between two
    moments when an hour fills up, every row's best open hour is fixed, so at most H passes are needed.
    """
    v = _as_matrix(value)
    m, n_hours = v.shape
    cap = _as_capacity(capacity, n_hours)
    hour = np.full(m, NO_HOUR, dtype=np.int64)
    closed = cap <= 0
    choice = _best_open(v, closed)
    used = np.zeros(n_hours, dtype=np.int64)
    start = 0
    while start < m:
        rest = choice[start:]
        fills_at = _fill_positions(rest, cap - used, n_hours)
        end = m if fills_at is None else start + fills_at + 1
        hour[start:end] = choice[start:end]
        placed = choice[start:end]
        used += np.bincount(placed[placed >= 0], minlength=n_hours)
        if fills_at is None:
            break
        closed[choice[end - 1]] = True
        start = end
        redo = start + np.flatnonzero(choice[start:] == choice[end - 1])
        choice[redo] = _best_open(v[redo], closed)
    return hour


def _used(hour: np.ndarray, n_hours: int) -> np.ndarray:
    return np.bincount(hour[hour >= 0], minlength=n_hours).astype(np.int64)


# --- 4. holdout --------------------------------------------------------------------------------


def holdout_mask(keys: pd.Series, share: float, seed: int) -> np.ndarray:
    """bool per row: True for the control group that gets no send.

    A row is held out when a hash of (seed, key) falls below `share`: the same subscriber is in the
    same group whatever the audience's order and size, and another seed draws another group. The
    key is compared as text, so 123 and "123" are the same subscriber.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"holdout share must be in [0, 1], got {share}")
    text = pd.Series(keys, copy=False).astype(str)
    hash_key = hashlib.blake2b(str(int(seed)).encode(), digest_size=8).hexdigest()  # 16 characters
    hashed = pd.util.hash_pandas_object(text, index=False, hash_key=hash_key).to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53) < share


# --- price rounds ------------------------------------------------------------------------------


def _price_rounds(
    v: np.ndarray, cap: np.ndarray, x: np.ndarray, prices: np.ndarray, load: np.ndarray, tol: float, bar
) -> int:
    """Raise the prices of over-full hours until none is over-full or the rounds stop paying off.

    Updates `x`, `prices` and `load` in place and keeps two invariants the finisher relies on: every
    row is at a best choice under the prices, and an hour with a positive price holds >= capacity.
    Each round raises every over-full hour just enough that only `capacity` rows still prefer it
    (`_clear`); the others move to their next best choice, possibly another over-full hour, so the
    excess shrinks geometrically. The rounds stop when one removes less excess than the exact
    finisher would remove for the same work (`_ROUND_COST`).
    """
    n_hours, m = len(cap), len(x)
    memo = _Margins(m)
    rounds, unproductive = 0, 0
    excess = int(np.maximum(load - cap, 0).sum())
    while excess and rounds < _MAX_ROUNDS and unproductive < 3:
        over = np.flatnonzero(load > cap)
        rows = np.flatnonzero(np.append(load > cap, False)[x])
        rows = rows[np.argsort(x[rows].astype(np.int16 if n_hours < 2**15 else np.int64), kind="stable")]
        bounds = np.searchsorted(x[rows], np.arange(n_hours + 1))
        movers, cells = [], 0
        for h in over:
            rise, out, read = _clear(v, prices, memo, rows[bounds[h] : bounds[h + 1]], h, int(cap[h]))
            prices[h] += rise
            movers.append(out)
            cells += read
        gone = np.concatenate(movers)
        x[gone] = _next_choice(v, prices, gone, x[gone], load < cap, tol)
        load[:] = np.bincount(x, minlength=n_hours + 1)[:n_hours]
        rounds += 1
        left = int(np.maximum(load - cap, 0).sum())
        removed, excess = excess - left, left
        bar.update(1)
        bar.set_postfix(excess=excess)
        cost = _ROUND_COST[0] * m + _ROUND_COST[1] * len(rows) + cells
        unproductive = (
            unproductive + 1 if removed * (_REPAIR_COST[0] + _REPAIR_COST[1] * n_hours) < cost else 0
        )
    return rounds


def _clear(
    v: np.ndarray, prices: np.ndarray, memo: _Margins, rows: np.ndarray, hour: int, capacity: int
) -> tuple[float, np.ndarray, int]:
    """How much an over-full hour's price rises, and which of its rows leave (row numbers).

    A row's margin is its value (net of price) here over its best other choice (another hour or
    not sending). The rise is the e-th smallest margin (e = rows - capacity): rows with a smaller
    margin leave, rows tied at the rise are indifferent and the earliest of them stay, so exactly
    `capacity` rows remain, each still at a best choice; the others' prices only rose, so the
    hour's new price is never above the smallest equilibrium price. Only the rows that can be among
    the e smallest margins are read: remembered margins, lowered by how much the hour's price rose
    since, are lower bounds (other prices only rose), so reading the rows with the smallest bounds
    settles the e-th smallest as soon as it is below every bound left out.
    Returns the rise, the rows that leave, and the cells read.
    """
    n, e = len(rows), len(rows) - capacity
    bound = memo.lower(rows, hour, prices)
    size, cells = min(n, 2 * e + 64), 0
    while True:
        limit = np.inf if size >= n else float(np.partition(bound, size - 1)[size - 1])
        pick = np.flatnonzero(bound <= limit)
        margin = memo.exact(v, prices, rows[pick], hour)
        bound[pick] = margin
        cells += len(pick) * v.shape[1]
        rise = float(np.partition(margin, e - 1)[e - 1])
        if rise <= limit:
            break
        size *= 4
    below, tied = pick[margin < rise], pick[margin == rise]
    tied_leaving = tied[len(tied) - (e - len(below)) :]  # the earliest tied rows stay
    return rise, rows[np.sort(np.concatenate([below, tied_leaving]))], cells


class _Margins:
    """Each row's margin at its hour over its best other choice, remembered between price rounds."""

    def __init__(self, m: int):
        self.hour = np.full(m, -1)
        self.margin = np.zeros(m)
        self.price = np.zeros(m)  # the hour's price when remembered

    def lower(self, rows: np.ndarray, hour: int, prices: np.ndarray) -> np.ndarray:
        """Lower bounds of the rows' margins at `hour` now (-inf where none is remembered)."""
        known = self.hour[rows] == hour
        return np.where(known, self.margin[rows] - (prices[hour] - self.price[rows]), -np.inf)

    def exact(self, v: np.ndarray, prices: np.ndarray, rows: np.ndarray, hour: int) -> np.ndarray:
        out = np.empty(len(rows))
        for s in _blocks(len(rows), v.shape[1]):
            r = v[rows[s]] - prices
            here = r[:, hour].copy()
            r[:, hour] = -np.inf
            out[s] = here - np.maximum(r.max(axis=1, initial=-np.inf), 0.0)
        out = np.maximum(out, 0.0)
        self.hour[rows], self.margin[rows], self.price[rows] = hour, out, prices[hour]
        return out


def _next_choice(
    v: np.ndarray, prices: np.ndarray, rows: np.ndarray, left: np.ndarray, roomy: np.ndarray, tol: float
) -> np.ndarray:
    """Best choice of rows pushed out of their hours `left`: back only if strictly better; among
    equally good hours, one with room (`roomy`), spread by row."""
    n_hours = v.shape[1]
    out = np.empty(len(rows), dtype=np.int64)
    for s in _blocks(len(rows), n_hours):
        r = v[rows[s]] - prices
        i = np.arange(len(r))
        here = r[i, left[s]]
        r[i, left[s]] = -np.inf
        choice = _spread_argmax(r, rows[s], tol, roomy)
        other = r[i, choice]
        choice = np.where(other >= 0, choice, n_hours)
        out[s] = np.where(here > np.maximum(other, 0.0) + tol, left[s], choice)
    return out


# --- exact finisher ----------------------------------------------------------------------------


class _ShortestPaths:
    """Successive shortest paths on the hour graph, from a state that meets the optimality conditions.

    Nodes are the H hours plus "out" (index H, price 0, unlimited room). Moving a row from hour a to
    b loses (v_a - p_a) - (v_b - p_b) >= 0. The price shift is the same for every row of a pair, so
    the cheapest row per pair is kept price-free: per hour, a pool of the rows cheapest to move to
    each other node (plus rows that arrived since), and the current minimum of every column, updated
    only where the minimum's row left. Each step sends excess from over-full hours along the cheapest
    chain of moves to an hour with room or out, moving every row tied on the chain at once (identical
    rows are common: cohort priors), then updates the prices so the optimality conditions hold.
    """

    def __init__(self, v, cap, x, prices, load):
        self.v, self.cap, self.x, self.prices, self.load = v, cap, x, prices, load
        self.n = len(cap) + 1
        self.k = int(np.clip(_POOL_CELLS // self.n**2, 1, 1024))  # pool rows per node
        self.pools: dict[int, _Pool] = {}
        self.columns = np.tile(np.arange(self.n, dtype=np.int32), self.n)  # a dense graph in CSR form
        self.starts = np.arange(0, self.n * self.n + 1, self.n, dtype=np.int32)

    def run(self, bar) -> int:
        steps = 0
        while (self.load > self.cap).any():
            self._augment()
            steps += 1
            bar.update(1)
        return steps

    def _augment(self) -> None:
        """One shortest path (Dijkstra in C, on the (H+1)-node graph of cheapest moves), then move."""
        n_hours = self.n - 1
        p = np.append(self.prices, 0.0)
        source = np.flatnonzero(self.load > self.cap)
        sink = np.append(self.load < self.cap, True)
        tails = np.flatnonzero(~sink)  # hours with room and "out" end paths: no arcs out of them
        loss = np.full((self.n, self.n), np.inf)
        loss[tails] = np.maximum(np.stack([self._pool(a).best for a in tails]) - p[tails, None] + p, 0.0)
        graph = csr_matrix((loss.ravel(), self.columns, self.starts), shape=loss.shape)  # inf: no arc
        dist, pred, _ = dijkstra(graph, indices=source, min_only=True, return_predecessors=True)
        end = int(np.flatnonzero(sink)[np.argmin(dist[sink])])
        if not np.isfinite(dist[end]):  # cannot happen: every full hour has a move out of the plan
            raise RuntimeError("assign_hours: no way to relieve an over-full hour")
        path = [end]
        while pred[path[-1]] >= 0:
            path.append(int(pred[path[-1]]))
        path.reverse()
        self.prices += np.maximum(dist[end] - dist[:n_hours], 0.0)
        self._move(path)

    def _move(self, path: list[int]) -> None:
        """Move along the path as many tied rows as the excess, the room and the ties allow."""
        n_hours = self.n - 1
        head, tail = path[0], path[-1]
        units = int(self.load[head] - self.cap[head])
        if tail < n_hours:
            units = min(units, int(self.cap[tail] - self.load[tail]))
        arcs = list(zip(path[:-1], path[1:], strict=True))
        tied = [self.pools[a].tied(b, self.x) for a, b in arcs]
        units = min([units, *(len(t) for t in tied)])
        for (_, b), rows in zip(arcs, tied, strict=True):
            self.x[rows[:units]] = b
        for (a, b), rows in zip(arcs, tied, strict=True):
            self.pools[a].left(rows[:units], self.x)
            if b < n_hours and b in self.pools:
                self.pools[b].arrived(rows[:units])
        self.load[head] -= units
        if tail < n_hours:
            self.load[tail] += units

    def _pool(self, a: int) -> _Pool:
        pool = self.pools.get(a)
        if pool is None or pool.stale:
            pool = self.pools[a] = _Pool(self.v, self.x, a, self.k)
        return pool


class _Pool:
    """The rows of hour a that are cheapest to move to each other node, and the cheapest losses.

    Per node (column): the k rows of smallest price-free loss, sorted, with a pointer to the first
    row still at a; plus the rows that arrived since (few). When a column's minimum leaves, the
    pointer advances past rows that left (amortised O(1)); when it runs past the k rows, the pool is
    stale and rebuilt (rows outside it lose at least the k-th loss).
    """

    def __init__(self, v: np.ndarray, x: np.ndarray, a: int, k: int):
        self.v, self.a = v, a
        rows = np.flatnonzero(x == a)
        keys = _move_losses(v, rows, a).T  # [node, row]
        k = min(k, len(rows))
        self.complete = k == len(rows)
        top = (
            np.argpartition(keys, k - 1, axis=1)[:, :k]
            if 0 < k < len(rows)
            else np.tile(np.arange(k), (len(keys), 1))
        )
        top_keys = np.take_along_axis(keys, top, axis=1)
        order = np.argsort(top_keys, axis=1, kind="stable")
        self.keys = np.take_along_axis(top_keys, order, axis=1)  # [node, k] ascending
        self.rows = rows[np.take_along_axis(top, order, axis=1)]
        self.head = np.zeros(len(keys), dtype=np.int64)
        self.new_rows = np.zeros(0, dtype=np.int64)
        self.new_keys = np.zeros((0, len(keys)))
        self.stale = False
        self.best = np.full(len(keys), np.inf)
        self.best_row = np.full(len(keys), -1)
        self._refresh(np.arange(len(keys)), x)

    def tied(self, b: int, x: np.ndarray) -> np.ndarray:
        """Rows still here whose loss moving to b is the cheapest (row order)."""
        run = self.rows[b, self.head[b] :][self.keys[b, self.head[b] :] == self.best[b]]
        new = self.new_rows[self.new_keys[:, b] == self.best[b]]
        rows = np.concatenate([run, new])
        return np.unique(rows[x[rows] == self.a])

    def left(self, gone: np.ndarray, x: np.ndarray) -> None:
        """Rows `gone` left: refresh the columns whose minimum they were."""
        cols = np.flatnonzero(np.isin(self.best_row, gone))
        if len(cols):
            self._refresh(cols, x)

    def arrived(self, rows: np.ndarray) -> None:
        keys = _move_losses(self.v, rows, self.a)
        self.new_rows = np.concatenate([self.new_rows, rows])
        self.new_keys = np.concatenate([self.new_keys, keys])
        at = keys.argmin(axis=0)
        best = keys[at, np.arange(keys.shape[1])]
        better = best < self.best
        self.best[better], self.best_row[better] = best[better], rows[at][better]

    def _refresh(self, cols: np.ndarray, x: np.ndarray) -> None:
        k = self.keys.shape[1]
        for b in cols:  # advance past rows that left: each pool entry is passed at most once
            h = self.head[b]
            while h < k and x[self.rows[b, h]] != self.a:
                h += 1
            self.head[b] = h
        heads = np.minimum(self.head[cols], k - 1) if k else np.zeros(len(cols), dtype=np.int64)
        best = (
            np.where(self.head[cols] < k, self.keys[cols, heads], np.inf) if k else np.full(len(cols), np.inf)
        )
        best_row = self.rows[cols, heads] if k else np.full(len(cols), -1)
        if not self.complete and (self.head[cols] >= k).any():
            self.stale = True  # the k cheapest left: rows outside the pool may be cheaper than arrivals
        if len(self.new_rows):
            here = x[self.new_rows] == self.a
            self.new_rows, self.new_keys = self.new_rows[here], self.new_keys[here]
            if len(self.new_rows):
                sub = self.new_keys[:, cols]
                at = sub.argmin(axis=0)
                new_best = sub[at, np.arange(len(cols))]
                better = new_best < best
                best, best_row = (
                    np.where(better, new_best, best),
                    np.where(better, self.new_rows[at], best_row),
                )
        self.best[cols], self.best_row[cols] = best, best_row


def _move_losses(v: np.ndarray, rows: np.ndarray, a: int) -> np.ndarray:
    """Price-free loss of moving each row from hour a to every node: v_a - v_b, v_a for "out" (index
    H), inf to a itself or to an infeasible hour."""
    vr = v[rows]
    keys = np.empty((len(rows), vr.shape[1] + 1))
    keys[:, :-1] = vr[:, a : a + 1] - vr
    keys[:, -1] = vr[:, a]
    keys[:, a] = np.inf
    return keys


def _fill_free_room(v: np.ndarray, cap: np.ndarray, x: np.ndarray, load: np.ndarray) -> None:
    """Rows left out that still fit somewhere at a value >= 0 go there (worth 0 at the optimum)."""
    n_hours = len(cap)
    out = np.flatnonzero(x == n_hours)
    if not len(out) or not (load < cap).any():
        return
    vals = v[out]
    vals = np.where(vals >= 0, vals, -np.inf)
    got = greedy_first_come(vals, cap - load)
    x[out[got >= 0]] = got[got >= 0]
    load += _used(got, n_hours)


# --- small helpers -----------------------------------------------------------------------------


def _dual_bound(v: np.ndarray, cap: np.ndarray, prices: np.ndarray) -> float:
    """Upper bound on any plan's value: sum of cap * price + each row's best value net of price."""
    bound = float((cap[prices > 0].astype(np.float64) * prices[prices > 0]).sum())
    for s in _blocks(len(v), v.shape[1]):
        bound += float(np.maximum((v[s] - prices).max(axis=1, initial=-np.inf), 0.0).sum())
    return bound


def _largest(v: np.ndarray) -> float:
    """Largest finite |value| (the scale of rounding errors)."""
    out = 0.0
    for s in _blocks(len(v), v.shape[1]):
        block = np.abs(v[s])
        out = max(out, float(np.max(block, where=np.isfinite(block), initial=0.0)))
    return out


def _best_choice(v: np.ndarray, prices: np.ndarray, tol: float) -> np.ndarray:
    """Each row's best hour net of prices, or H (not sending) when nothing is worth >= 0."""
    m, n_hours = v.shape
    out = np.full(m, n_hours, dtype=np.int64)
    if not n_hours:
        return out
    for s in _blocks(m, n_hours):
        r = v[s] - prices
        choice = _spread_argmax(r, np.arange(s.start, s.stop), tol)
        out[s] = np.where(r[np.arange(len(r)), choice] >= 0, choice, n_hours)
    return out


def _spread_argmax(
    r: np.ndarray, salt: np.ndarray, tol: float, prefer: np.ndarray | None = None
) -> np.ndarray:
    """Argmax per row, except that ties (within tol) are spread over the tied columns by `salt`
    (row numbers), and go to `prefer` columns when some are tied: a hundred thousand rows equally
    happy on any day should not all start on the first day (nor all move to the same full hour)."""
    best = r.max(axis=1, keepdims=True, initial=-np.inf)
    tied = (r >= best - tol) & np.isfinite(r)
    if prefer is not None:
        good = tied & prefer
        tied = np.where(good.any(axis=1, keepdims=True), good, tied)
    count = tied.sum(axis=1)
    if (count <= 1).all():
        return r.argmax(axis=1)
    nth = salt % np.maximum(count, 1)
    return np.argmax(tied & (np.cumsum(tied, axis=1) - 1 == nth[:, None]), axis=1)


def _best_open(v: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Each row's best feasible hour among those not closed, -1 when none."""
    out = np.full(len(v), NO_HOUR, dtype=np.int64)
    if not v.shape[1]:
        return out
    for s in _blocks(len(v), v.shape[1]):
        r = np.where(closed, -np.inf, v[s])
        choice = r.argmax(axis=1)
        out[s] = np.where(np.isfinite(r[np.arange(len(r)), choice]), choice, NO_HOUR)
    return out


def _fill_positions(choice: np.ndarray, room: np.ndarray, n_hours: int) -> int | None:
    """Position in `choice` of the row that takes the last free slot of some hour first, or None."""
    counts = np.bincount(choice[choice >= 0], minlength=n_hours)
    filling = np.flatnonzero((counts >= room) & (room > 0))
    if not len(filling):
        return None
    order = np.argsort(choice, kind="stable")
    starts = np.searchsorted(choice[order], filling)
    return int(order[starts + room[filling] - 1].min())


def _value_at(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Value of each row at its choice (0 for "not sending")."""
    placed = x < v.shape[1]
    out = np.zeros(len(x))
    out[placed] = v[np.flatnonzero(placed), x[placed]]
    return out


def _blocks(n_rows: int, width: int) -> Iterator[slice]:
    step = max(1, _CHUNK_CELLS // max(width, 1))
    for lo in range(0, n_rows, step):
        yield slice(lo, min(lo + step, n_rows))


def _as_vector(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{name}: contains NaN; use -inf for an infeasible channel")
    return a


def _as_matrix(value: np.ndarray) -> np.ndarray:
    v = np.asarray(value)
    v = v if v.dtype == np.float64 else v.astype(np.float64)
    if v.ndim != 2:
        raise ValueError(f"value: expected shape [rows, hours], got {v.shape}")
    if np.isnan(v).any() or np.isposinf(v).any():
        raise ValueError("value: contains NaN or +inf; use -inf for an infeasible hour")
    return v


def _as_capacity(capacity: np.ndarray, n_hours: int) -> np.ndarray:
    cap = np.asarray(capacity)
    if cap.shape != (n_hours,):
        raise ValueError(f"capacity: expected shape ({n_hours},), got {cap.shape}")
    if not np.issubdtype(cap.dtype, np.integer) or (cap < 0).any():
        raise ValueError("capacity: expected non-negative integers (UNLIMITED for no cap)")
    return cap.astype(np.int64)
