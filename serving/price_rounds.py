"""The send-rate assignment's first phase: a Jacobi auction on hour prices (`capacity.assign_hours`).

Cheap rounds that remove most of the excess of over-full hours while keeping the optimality conditions
the exact finisher (`shortest_paths`) starts from; they stop once a round pays less than a repair.
"""

from __future__ import annotations

import numpy as np

from sendtime.serving.capacity_arrays import blocks, spread_argmax

_MAX_ROUNDS = 500  # price rounds at most before the exact finisher takes over
# measured costs in "cells read" (one value of `value`, a few ns): a price round costs about 3 per row
# + 3 per row of an over-full hour + the cells it reads; one exact repair about 150000 + 1500 per hour
_ROUND_COST = (3.0, 3.0)
_REPAIR_COST = (150_000.0, 1_500.0)


def price_rounds(
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
        for s in blocks(len(rows), v.shape[1]):
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
    for s in blocks(len(rows), n_hours):
        r = v[rows[s]] - prices
        i = np.arange(len(r))
        here = r[i, left[s]]
        r[i, left[s]] = -np.inf
        choice = spread_argmax(r, rows[s], tol, roomy)
        other = r[i, choice]
        choice = np.where(other >= 0, choice, n_hours)
        out[s] = np.where(here > np.maximum(other, 0.0) + tol, left[s], choice)
    return out
