"""Pure per-item work spread over the cores with forked worker processes, only when that is safe.

Why fork: workers start at once and inherit what the caller already holds (a loaded snapshot, its
address index) instead of pickling or re-loading it, and no `if __name__ == "__main__"` guard is asked
of the caller's script (a fork server or spawned workers would import it again).
Why only sometimes: a fork copies memory but not threads, so a lock another thread held at that
moment stays locked in the child. Workers are forked only while no other Python thread runs (a batch
job, a benchmark; tqdm's idle monitor thread aside); a server's threads, or a platform without fork,
get `None` and the caller does the work itself. Either way the answers are the same: callers only hand
over pure functions.

Why workers never outlive their parent: a killed `sendtime schedule` must not leave workers behind.
Each worker asks Linux to kill it when its parent dies (`prctl(PR_SET_PDEATHSIG)`, which covers even
SIGKILL of the parent) and checks that the parent it was forked by is still there; when the parent is
stopped by an exception instead (SIGTERM becomes `SystemExit` in the CLI, Ctrl-C `KeyboardInterrupt`),
the workers are killed at once rather than left to finish the queued work.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
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


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """In a forked child: be killed (SIGKILL) when the parent process dies, however it dies; exit now if
    it already has. Linux only (prctl); elsewhere a no-op, and the parent's own clean-up has to do."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect: nobody waits for us
        os._exit(1)


def _start_worker(parent: int, initializer: Callable | None) -> None:
    # the parent's SIGTERM handler (raise SystemExit) is not the worker's business: a signal to the
    # whole process group should just end it; SIGINT likewise is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    if initializer is not None:
        initializer()


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now: the parent is leaving, their results are no longer wanted."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.kill()


def map_in_forks(fn: Callable, jobs: list, workers: int, initializer: Callable | None = None) -> list | None:
    """`[fn(job) for job in jobs]` on `workers` forked processes, in order; None when forking is not
    safe here or the workers could not run (the caller then computes in its own process)."""
    if workers < 2 or len(jobs) < 2 or not can_fork():
        return None
    try:
        context = multiprocessing.get_context("fork")
        start = functools.partial(_start_worker, os.getpid(), initializer)
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=start)
        try:
            return list(pool.map(fn, jobs))
        except BaseException:
            _kill_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    except (OSError, BrokenProcessPool) as exc:
        warnings.warn(f"worker processes failed, computing in this one: {exc}", RuntimeWarning, stacklevel=2)
        return None
