"""Row-block NumPy helpers shared by the send-rate assignment's phases (`capacity`, `price_rounds`).

They read a value matrix `v[m, H]` (`-inf`: infeasible) a block of rows at a time, so that a million
rows never make a temporary of more than about 32 MB; choice `H` means "not sending".
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

NO_HOUR = -1
_CHUNK_CELLS = 1 << 22  # cells per block in row-wise passes, to bound temporary memory (~32 MB)


def largest(v: np.ndarray) -> float:
    """Largest finite |value| (the scale of rounding errors)."""
    out = 0.0
    for s in blocks(len(v), v.shape[1]):
        block = np.abs(v[s])
        out = max(out, float(np.max(block, where=np.isfinite(block), initial=0.0)))
    return out


def best_choice(v: np.ndarray, prices: np.ndarray, tol: float) -> np.ndarray:
    """Each row's best hour net of prices, or H (not sending) when nothing is worth >= 0."""
    m, n_hours = v.shape
    out = np.full(m, n_hours, dtype=np.int64)
    if not n_hours:
        return out
    for s in blocks(m, n_hours):
        r = v[s] - prices
        choice = spread_argmax(r, np.arange(s.start, s.stop), tol)
        out[s] = np.where(r[np.arange(len(r)), choice] >= 0, choice, n_hours)
    return out


def spread_argmax(
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


def best_open(v: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Each row's best feasible hour among those not closed, -1 when none."""
    out = np.full(len(v), NO_HOUR, dtype=np.int64)
    if not v.shape[1]:
        return out
    for s in blocks(len(v), v.shape[1]):
        r = np.where(closed, -np.inf, v[s])
        choice = r.argmax(axis=1)
        out[s] = np.where(np.isfinite(r[np.arange(len(r)), choice]), choice, NO_HOUR)
    return out


def fill_positions(choice: np.ndarray, room: np.ndarray, n_hours: int) -> int | None:
    """Position in `choice` of the row that takes the last free slot of some hour first, or None."""
    counts = np.bincount(choice[choice >= 0], minlength=n_hours)
    filling = np.flatnonzero((counts >= room) & (room > 0))
    if not len(filling):
        return None
    order = np.argsort(choice, kind="stable")
    starts = np.searchsorted(choice[order], filling)
    return int(order[starts + room[filling] - 1].min())


def value_at(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Value of each row at its choice (0 for "not sending")."""
    placed = x < v.shape[1]
    out = np.zeros(len(x))
    out[placed] = v[np.flatnonzero(placed), x[placed]]
    return out


def blocks(n_rows: int, width: int) -> Iterator[slice]:
    step = max(1, _CHUNK_CELLS // max(width, 1))
    for lo in range(0, n_rows, step):
        yield slice(lo, min(lo + step, n_rows))


def as_matrix(value: np.ndarray) -> np.ndarray:
    v = np.asarray(value)
    v = v if v.dtype == np.float64 else v.astype(np.float64)
    if v.ndim != 2:
        raise ValueError(f"value: expected shape [rows, hours], got {v.shape}")
    if np.isnan(v).any() or np.isposinf(v).any():
        raise ValueError("value: contains NaN or +inf; use -inf for an infeasible hour")
    return v


def as_capacity(capacity: np.ndarray, n_hours: int) -> np.ndarray:
    cap = np.asarray(capacity)
    if cap.shape != (n_hours,):
        raise ValueError(f"capacity: expected shape ({n_hours},), got {cap.shape}")
    if not np.issubdtype(cap.dtype, np.integer) or (cap < 0).any():
        raise ValueError("capacity: expected non-negative integers (UNLIMITED for no cap)")
    return cap.astype(np.int64)
