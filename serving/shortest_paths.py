"""The send-rate assignment's exact finisher (`capacity.assign_hours`): successive shortest paths.

After the price rounds a few hours may still be over-full; each repair moves their excess rows along
the cheapest chain of moves on the small graph of hours, so the final plan is provably optimal.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

_POOL_CELLS = 1 << 22  # cells of the exact finisher's candidate pools: (H+1) hours x (H+1) nodes x k rows


class ShortestPaths:
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
