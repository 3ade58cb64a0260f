"""Send-rate caps of a batch campaign plan (`--max-per-hour`): the optimal hour for every row.

`assign_hours` solves the transportation problem (rows to hours under per-hour capacities) exactly,
fast enough for a million rows: identical hours merged, price rounds (`price_rounds`), then an exact
finisher (`shortest_paths`); `greedy_first_come` is the naive plan, for comparison only.

Conventions: a value of `-inf` marks an infeasible hour; -1 means "no hour".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from sendtime.serving.capacity_arrays import (
    NO_HOUR,
    as_capacity,
    as_matrix,
    best_choice,
    best_open,
    blocks,
    fill_positions,
    largest,
    value_at,
)
from sendtime.serving.price_rounds import price_rounds
from sendtime.serving.shortest_paths import ShortestPaths

UNLIMITED = np.iinfo(np.int64).max  # capacity meaning "no cap"


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
    1. Price rounds (`price_rounds`, a Jacobi auction on hour prices): every over-full hour raises
       its price just enough that only `capacity` rows still prefer it; the others move to their
       next best choice. Prices only rise and never pass the smallest equilibrium prices, so every
       row stays at a best choice and every priced hour stays full, while the excess shrinks.
    2. Exact finisher (`ShortestPaths`, successive shortest paths with the prices as potentials on
       the graph of the H hours and "out"): each excess row left moves along the cheapest chain of
       moves to an hour with room or out; prices are updated so the conditions above keep holding.
    At the end no hour is over-full and the conditions hold, so the plan is optimal; `duality_gap`
    (dual bound minus plan value, ~1e-12 from rounding) certifies it on every call. A round costs
    O(m) plus the rows it reads (only those near their margin); a repair about O(H^2).
    """
    v = as_matrix(value)
    n_hours = v.shape[1]
    cap = as_capacity(capacity, n_hours)
    tol = 1e-12 * max(largest(v), 1.0)

    same = _identical_hours(v)  # hours every row values alike: one hour with their summed capacity
    keep = np.flatnonzero(same == np.arange(n_hours))
    merged = v[:, keep] if len(keep) < n_hours else v
    merged_cap = np.bincount(
        np.searchsorted(keep, same), weights=np.minimum(cap, len(v)), minlength=len(keep)
    )
    first = best_choice(merged, np.zeros(len(keep)), tol)  # len(keep): not sending
    unconstrained = float(value_at(merged, first).sum())
    with tqdm(desc="capacity", unit="step", disable=None if progress else True) as bar:
        x, prices, rounds, augmentations = _solve(merged, merged_cap.astype(np.int64), first.copy(), tol, bar)
    hour = _split_identical(np.append(keep, NO_HOUR)[x], same, cap)  # x == len(keep): not sending
    prices = prices[np.searchsorted(keep, same)] if n_hours else prices

    total = float(value_at(v, np.where(hour >= 0, hour, n_hours)).sum())
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
    rounds = price_rounds(v, cap, x, prices, load, tol, bar)
    augmentations = ShortestPaths(v, cap, x, prices, load).run(bar)
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
    for s in blocks(m, n_hours):
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
    v = as_matrix(value)
    m, n_hours = v.shape
    cap = as_capacity(capacity, n_hours)
    hour = np.full(m, NO_HOUR, dtype=np.int64)
    closed = cap <= 0
    choice = best_open(v, closed)
    used = np.zeros(n_hours, dtype=np.int64)
    start = 0
    while start < m:
        rest = choice[start:]
        fills_at = fill_positions(rest, cap - used, n_hours)
        end = m if fills_at is None else start + fills_at + 1
        hour[start:end] = choice[start:end]
        placed = choice[start:end]
        used += np.bincount(placed[placed >= 0], minlength=n_hours)
        if fills_at is None:
            break
        closed[choice[end - 1]] = True
        start = end
        redo = start + np.flatnonzero(choice[start:] == choice[end - 1])
        choice[redo] = best_open(v[redo], closed)
    return hour


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


def _dual_bound(v: np.ndarray, cap: np.ndarray, prices: np.ndarray) -> float:
    """Upper bound on any plan's value: sum of cap * price + each row's best value net of price."""
    bound = float((cap[prices > 0].astype(np.float64) * prices[prices > 0]).sum())
    for s in blocks(len(v), v.shape[1]):
        bound += float(np.maximum((v[s] - prices).max(axis=1, initial=-np.inf), 0.0).sum())
    return bound


def _used(hour: np.ndarray, n_hours: int) -> np.ndarray:
    return np.bincount(hour[hour >= 0], minlength=n_hours).astype(np.int64)
