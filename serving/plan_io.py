"""The batch plan's files: the audience read exactly as written, the plan table and its atomic write.

Output columns (after the audience's own, unchanged and in order): `subscriber_id`, `channel` (`email`,
`sms`, or empty), `send_at` (UTC, `2026-11-03T17:00:00Z`, inside [start, end)), `expected_engagement`
(P(click within 24 h of send_at)), `reason`, `window_start`, `window_end`, `holdout`, `explored`,
`propensity`. Times are ISO-8601 text in CSV and Parquet alike. The file is written atomically.
"""

from __future__ import annotations

import glob
import logging
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.serving.campaign import CampaignPlan

log = logging.getLogger(__name__)

FORMATS = (".csv", ".parquet")
ISO = "%Y-%m-%dT%H:%M:%SZ"


HOLDOUT, EXPLORED, WINDOW_START, WINDOW_END, PROPENSITY = (
    "holdout",
    "explored",
    "window_start",
    "window_end",
    "propensity",
)


PLAN_COLUMNS = (
    S.SUBSCRIBER_ID,
    S.PLAN_CHANNEL,
    S.SEND_AT,
    S.EXPECTED_ENGAGEMENT,
    S.REASON,
    WINDOW_START,
    WINDOW_END,
    HOLDOUT,
    EXPLORED,
    PROPENSITY,
)


def check_format(path: Path, what: str) -> None:
    if path.suffix.lower() not in FORMATS:
        raise ValueError(
            f"{what} {path}: unknown extension {path.suffix or '(none)'!r}; use .csv or .parquet"
        )


def read_audience(path: str | Path) -> pd.DataFrame:
    """The audience table; CSV is read as text (phone numbers keep their '+' and leading zeros, every
    cell comes back exactly as written, and an empty line is an empty row), Parquet with its own types."""
    path = Path(path)
    check_format(path, "audience file")
    if not path.exists():
        raise FileNotFoundError(f"audience file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"audience file {path} is not a file")
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # parsers raise many types: name the file, keep the cause
        raise ValueError(f"audience file {path}: cannot read it as {path.suffix.lower()[1:]}: {exc}") from exc
    if S.AUDIENCE_EMAIL not in frame.columns and S.AUDIENCE_PHONE not in frame.columns:
        raise ValueError(
            f"audience file {path}: needs a column {S.AUDIENCE_EMAIL!r} or {S.AUDIENCE_PHONE!r} (or both); "
            f"found {list(map(str, frame.columns))}"
        )
    clash = [c for c in frame.columns if c in PLAN_COLUMNS]
    if clash:
        raise ValueError(
            f"audience file {path}: column(s) {clash} would be overwritten by the plan's; rename them"
        )
    log.info("audience read from %s: %s rows", path, f"{len(frame):,}")
    return frame.reset_index(drop=True)


def contacts(frame: pd.DataFrame, column: str) -> pd.Series:
    """A contact column as objects with None where missing; a missing column means no contact at all."""
    if column not in frame.columns:
        return pd.Series([None] * len(frame), dtype=object)
    values = frame[column].astype(object)
    return values.where(values.notna(), None).reset_index(drop=True)


def declared_timezones(frame: pd.DataFrame) -> pd.Series | None:
    """The audience's optional `timezone` column (None when it has none), blanks as None."""
    if S.AUDIENCE_TIMEZONE not in frame.columns:
        return None
    return contacts(frame, S.AUDIENCE_TIMEZONE)


def plan_table(
    frame: pd.DataFrame, subscriber_id: np.ndarray, plan: CampaignPlan, hours: pd.DatetimeIndex
) -> pd.DataFrame:
    """The audience's columns, unchanged and in order, then the plan's (ISO-8601 UTC text for times)."""
    starts = np.array([*hours.strftime(ISO), None], dtype=object)  # index -1 picks None
    ends = np.array([*(hours + pd.Timedelta(hours=1)).strftime(ISO), None], dtype=object)
    sent = plan.channel >= 0
    names = np.array([*S.CHANNELS, None], dtype=object)
    columns = {
        S.SUBSCRIBER_ID: np.asarray(subscriber_id, dtype=object),
        S.PLAN_CHANNEL: names[plan.channel.astype(np.int64)],
        S.SEND_AT: starts[np.where(sent, plan.hour, -1)],
        S.EXPECTED_ENGAGEMENT: plan.expected.astype(np.float64),
        S.REASON: plan.reason.astype(object),
        WINDOW_START: starts[np.where(sent, plan.window_start, -1)],
        WINDOW_END: ends[np.where(sent, plan.window_end - 1, -1)],
        HOLDOUT: plan.holdout.astype(bool),
        EXPLORED: plan.explored.astype(bool),
        PROPENSITY: plan.propensity.astype(np.float64),
    }
    extra = pd.DataFrame(columns, index=frame.index)
    return pd.concat([frame, extra], axis=1)


def write_plan(table: pd.DataFrame, out: str | Path) -> Path:
    """Write the plan by the extension of `out`, atomically: a temporary file beside it, then os.replace."""
    out = Path(out)
    check_format(out, "--out")
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    log.info("plan written: %s (%s rows)", out, f"{len(table):,}")
    return out


class atomic_path:  # noqa: N801 (used as a context manager, reads like a function)
    """`with atomic_path(target) as tmp:` write to tmp; on success it replaces target, on error it vanishes.

    Where the file system can (Linux, O_TMPFILE), the file being written has no name at all until it is
    complete: `tmp` is its /proc/self/fd path, and it is given a name and moved over the target only at
    the end. A process killed mid-write (even by SIGKILL, when no clean-up can run) then leaves nothing
    behind; elsewhere the file is a hidden sibling, removed on any exception (SIGTERM included: the CLI
    turns it into one) and swept by the next write once its process is gone. The file gets the usual
    permissions (umask), not a private temp file's 0600; the rename is atomic (same folder).
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.fd: int | None = None

    def _hidden_name(self) -> Path:
        return self.target.with_name(f".{self.target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_orphans(self.target)
        flag = getattr(os, "O_TMPFILE", 0)
        if flag and Path("/proc/self/fd").is_dir():
            try:
                self.fd = os.open(self.target.parent, flag | os.O_WRONLY, 0o666)
                return Path(f"/proc/self/fd/{self.fd}")
            except OSError:  # a file system without unnamed files: the named way below
                self.fd = None
        self.tmp = self._hidden_name()
        return self.tmp

    def __exit__(self, kind, value, traceback) -> None:
        if self.fd is None:
            if kind is None:
                os.replace(self.tmp, self.target)
            else:
                self.tmp.unlink(missing_ok=True)
            return
        try:
            if kind is None:
                named = self._hidden_name()  # a name for the few microseconds before the rename
                folder = os.open(named.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:  # a dir fd makes Python call linkat(AT_SYMLINK_FOLLOW), which names an unnamed file
                    os.link(f"/proc/self/fd/{self.fd}", named.name, dst_dir_fd=folder, follow_symlinks=True)
                finally:
                    os.close(folder)
                try:
                    os.replace(named, self.target)
                except BaseException:
                    named.unlink(missing_ok=True)
                    raise
        finally:
            os.close(self.fd)
            self.fd = None


def _sweep_orphans(target: Path) -> None:
    """Remove hidden temporaries of `target` left by writers that are gone (killed mid-write)."""
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        parts = path.name[len(target.name) + 2 : -len(".tmp")].split(".")
        if len(parts) == 2 and parts[0].isdigit() and not _alive(int(parts[0])):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
