"""The CLI's logging: sendtime's own loggers at the chosen level on standard error, other libraries'
only from WARNING up (except at DEBUG), so that INFO shows sendtime's steps and not MLflow's or
Alembic's. The level comes from `--log-level` (before or after the command), `-v` (DEBUG), or
SENDTIME_LOG_LEVEL; the default is WARNING, so a command's standard error holds only what went wrong."""

from __future__ import annotations

import argparse
import logging
import os
import sys

LOG_LEVEL_ENV = "SENDTIME_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class StderrHandler(logging.StreamHandler):
    """The CLI's own handler, told apart from any other so that a second set-up replaces it."""


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,
        help=f"INFO logs each step (data loaded, features built, model trained, version registered, plan "
        f"written) on standard error; default WARNING, or ${LOG_LEVEL_ENV}",
    )


def configure(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Set up logging from the parsed options; an unknown level in the environment is a usage error.
    An explicit `--log-level` is passed on to child processes (`serve`'s BentoML worker reads it)."""
    given = getattr(args, "log_level", None)
    level = given or ("DEBUG" if args.verbose else os.environ.get(LOG_LEVEL_ENV, "").strip().upper())
    if level and level not in LOG_LEVELS:
        parser.error(f"${LOG_LEVEL_ENV}={level!r}: expected one of {', '.join(LOG_LEVELS)}")
    setup_logging(level or "WARNING")
    if given:
        os.environ[LOG_LEVEL_ENV] = given


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(old)
    handler = StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.getLogger("sendtime").setLevel(level)
