"""Pure per-item work spread over the cores with forked worker processes, only when that is safe.

Why fork: workers start at once and inherit what the caller already holds (a loaded snapshot, its
address index) instead of pickling or re-loading it, and no `if __name__ == "__main__"` guard is asked
of the caller's script (a fork server or spawned workers would import it again).
Why only sometimes: a fork copies memory but not threads, so a lock another thread held at that
moment stays locked in the child. Workers are forked only while no other Python thread runs (a batch
job, a benchmark; tqdm's idle monitor thread aside); a server's threads, or a platform without fork,
get `None` and the caller does the work itself. Either way the answers are the same: callers only hand
over pure functions.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

CHUNKS_PER_WORKER = 4  # smaller chunks even out the workers' finishing times


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# Threads known to hold nothing a worker needs: tqdm's monitor (a daemon every tqdm bar starts, even a
# disabled one, that sleeps and now and then checks open bars under tqdm's own lock, which workers never use).
IDLE_THREADS = frozenset({"tqdm_monitor"})


def can_fork() -> bool:
    """Fork is available and no other thread could hold a lock the workers might need."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    me = threading.current_thread()
    return all(t is me or (t.daemon and t.name in IDLE_THREADS) for t in threading.enumerate())


def chunks(values: Sequence, parts: int) -> list:
    """`values` cut into at most `parts` consecutive, nearly equal, non-empty slices."""
    size = -(-len(values) // max(parts, 1)) if len(values) else 1
    return [values[i : i + size] for i in range(0, len(values), size)]


def map_in_forks(fn: Callable, jobs: list, workers: int, initializer: Callable | None = None) -> list | None:
    """`[fn(job) for job in jobs]` on `workers` forked processes, in order; None when forking is not
    safe here or the workers could not run (the caller then computes in its own process)."""
    if workers < 2 or len(jobs) < 2 or not can_fork():
        return None
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer) as pool:
            return list(pool.map(fn, jobs))
    except (OSError, BrokenProcessPool) as exc:
        warnings.warn(f"worker processes failed, computing in this one: {exc}", RuntimeWarning, stacklevel=2)
        return None
