"""sendtime: which channel and what time to send, per subscriber.

From Python (a notebook, a script), the CLI's operations return objects: `sendtime.train(...)`,
`sendtime.load().predict(...)`, `.plan(...)`, `sendtime.evaluate(...)` (see `notebook.py`). Importing
the package imports nothing heavy: each function imports its stage when called.
"""

from sendtime.notebook import Model, evaluate, load, refresh, report, schedule, simulate, train, tune

__all__ = [
    "Model",
    "evaluate",
    "load",
    "refresh",
    "report",
    "schedule",
    "simulate",
    "train",
    "tune",
    "__version__",
]


def __getattr__(name: str) -> str:
    if name == "__version__":  # looked up when asked: the installed package's metadata
        return installed_version()
    raise AttributeError(f"module 'sendtime' has no attribute {name!r}")


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sendtime")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"
