"""Validate a data folder (../shared/CONTRACT.md): events, subscribers, identity links (read by features/tables.py).

Real exports are messy, so validation is per row: a row that cannot be used is counted by reason and
kept in a rejects table (never silently dropped); the job fails only when a missing column makes the
whole file unusable or the rejected share passes `data.bad_share_limit`. Work is done per distinct
value (channel, event type, timestamp text) so a 10M-row export stays fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import DataSettings
from sendtime.features.tables import (
    UNDECODABLE_REASON,
    DataError,
    as_text,
    blank,
    clean_ids,
    find_table,
    normalise_vocabulary,
    parse_booleans,
    parse_bounce_types,
    parse_timestamps,
    read_table,
    require_columns,
    undecodable_rows,
)

log = logging.getLogger(__name__)

REJECT_COLUMNS = ["table", "file", "row", "field", "reason"]


@dataclass
class DataFolder:
    """A loaded, validated data folder: clean tables plus everything that was rejected and why."""

    path: Path
    events: pd.DataFrame
    subscribers: pd.DataFrame | None = None
    links: pd.DataFrame | None = None
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECT_COLUMNS))
    raw_rows: dict[str, int] = field(default_factory=dict)

    def reject_counts(self) -> dict[str, int]:
        if self.rejects.empty:
            return {}
        keys = self.rejects["table"] + ": " + self.rejects["reason"]
        return {str(k): int(v) for k, v in keys.value_counts().items()}

    def write_rejects(self, out: Path) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.rejects.to_csv(out, index=False)
        return out

    def summary(self) -> str:
        lines = [f"data folder {self.path}:"]
        for table, n in self.raw_rows.items():
            lines.append(f"  {table}: {n:,} rows read")
        lines.append(f"  events kept: {len(self.events):,}")
        for reason, n in self.reject_counts().items():
            lines.append(f"  rejected {reason}: {n:,}")
        return "\n".join(lines)


class Rejects:
    """Collects (table, file, row, field, reason) rows; row numbers are 1-based data rows."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, table: str, path: Path, mask: np.ndarray, field_name: str, reason: str) -> None:
        rows = np.flatnonzero(mask)
        if rows.size:
            self.parts.append(
                pd.DataFrame(
                    {
                        "table": table,
                        "file": path.name,
                        "row": rows + 1,
                        "field": field_name,
                        "reason": reason,
                    }
                )
            )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=REJECT_COLUMNS)
        return pd.concat(self.parts, ignore_index=True)


def validate_events(raw: pd.DataFrame, path: Path, rejects: Rejects) -> pd.DataFrame:
    require_columns(raw, S.EVENTS_REQUIRED, path)
    if raw.empty:
        raise DataError(f"{path}: the events file has no rows: nothing to learn from")
    ts = parse_timestamps(raw[S.TIMESTAMP])
    channel = normalise_vocabulary(raw[S.CHANNEL])
    event_type = normalise_vocabulary(raw[S.EVENT_TYPE])

    bad = np.zeros(len(raw), dtype=bool)
    checks = [
        (undecodable_rows(raw), "(row)", UNDECODABLE_REASON),
        (ts.isna().to_numpy(), S.TIMESTAMP, "unparseable timestamp"),
        (~channel.isin(S.CHANNELS).to_numpy(), S.CHANNEL, "unknown channel"),
        (~event_type.isin(S.EVENT_TYPES).to_numpy(), S.EVENT_TYPE, "unknown event type"),
        (blank(raw[S.ADDRESS]), S.ADDRESS, "empty address"),
        (
            ((channel == S.SMS) & (event_type == S.OPEN)).to_numpy(),
            S.EVENT_TYPE,
            "open on sms (SMS has no opens)",
        ),
    ]
    for mask, field_name, reason in checks:
        rejects.add(S.EVENTS_TABLE, path, mask & ~bad, field_name, reason)  # one reason per row: the first
        bad |= mask

    keep = ~bad
    out = pd.DataFrame(
        {
            S.TIMESTAMP: ts[keep].dt.as_unit("ns").reset_index(drop=True),
            S.CHANNEL: pd.Categorical(channel[keep], categories=list(S.CHANNELS)),
            S.EVENT_TYPE: pd.Categorical(event_type[keep], categories=list(S.EVENT_TYPES)),
            S.ADDRESS: as_text(raw.loc[keep, S.ADDRESS]).reset_index(drop=True),
        }
    )
    if S.MESSAGE_ID in raw.columns:
        out[S.MESSAGE_ID] = clean_ids(raw.loc[keep, S.MESSAGE_ID].reset_index(drop=True))
    else:
        out[S.MESSAGE_ID] = pd.Series(pd.NA, index=out.index, dtype="string")
    if S.MACHINE_OPEN in raw.columns:
        out[S.MACHINE_OPEN] = parse_booleans(raw.loc[keep, S.MACHINE_OPEN]).reset_index(drop=True)
    else:
        out[S.MACHINE_OPEN] = pd.Series(pd.NA, index=out.index, dtype="boolean")
    column = raw.loc[keep, S.BOUNCE_TYPE] if S.BOUNCE_TYPE in raw.columns else None
    out[S.BOUNCE_TYPE] = parse_bounce_types(column, len(out))
    return out


def validate_subscribers(raw: pd.DataFrame, path: Path, rejects: Rejects) -> pd.DataFrame:
    require_columns(raw, S.SUBSCRIBERS_REQUIRED, path)
    channel = normalise_vocabulary(raw[S.CHANNEL])
    undecodable = undecodable_rows(raw)
    rejects.add(S.SUBSCRIBERS_TABLE, path, undecodable, "(row)", UNDECODABLE_REASON)
    bad_channel = ~channel.isin(S.CHANNELS).to_numpy() & ~undecodable
    empty = blank(raw[S.ADDRESS]) & ~bad_channel & ~undecodable
    rejects.add(S.SUBSCRIBERS_TABLE, path, bad_channel, S.CHANNEL, "unknown channel")
    rejects.add(S.SUBSCRIBERS_TABLE, path, empty, S.ADDRESS, "empty address")
    keep = ~(bad_channel | empty | undecodable)
    out = pd.DataFrame(
        {S.ADDRESS: raw.loc[keep, S.ADDRESS].astype(str).values, S.CHANNEL: channel[keep].values}
    )
    tz = raw[S.TIMEZONE].astype("string").str.strip() if S.TIMEZONE in raw.columns else None
    out[S.TIMEZONE] = tz[keep].mask(tz[keep] == "").values if tz is not None else pd.NA
    if S.SUBSCRIBED_AT in raw.columns:
        out[S.SUBSCRIBED_AT] = parse_timestamps(raw.loc[keep, S.SUBSCRIBED_AT]).array
    return out


def validate_links(raw: pd.DataFrame, path: Path, rejects: Rejects) -> pd.DataFrame:
    require_columns(raw, S.LINKS_REQUIRED, path)
    undecodable = undecodable_rows(raw)
    rejects.add(S.LINKS_TABLE, path, undecodable, "(row)", UNDECODABLE_REASON)
    empty = (blank(raw[S.ADDRESS_A]) | blank(raw[S.ADDRESS_B])) & ~undecodable
    rejects.add(S.LINKS_TABLE, path, empty, "address_a/address_b", "empty address")
    keep = ~(empty | undecodable)
    out = pd.DataFrame(
        {
            S.ADDRESS_A: raw.loc[keep, S.ADDRESS_A].astype(str).values,
            S.ADDRESS_B: raw.loc[keep, S.ADDRESS_B].astype(str).values,
        }
    )
    if S.OBSERVED_AT in raw.columns:
        out[S.OBSERVED_AT] = parse_timestamps(raw.loc[keep, S.OBSERVED_AT]).array
    else:
        out[S.OBSERVED_AT] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    return out


_DAY_NS = 86_400 * 10**9


AFTER_END_REASON = "timestamp after the export's end"


def after_export_end(timestamps: pd.Series, gap_days: float, max_share: float) -> np.ndarray:
    """Rows dated past the export's end: after the first gap of more than `gap_days` days without any
    event that only a small tail (at most `max_share` of the rows) follows.

    Why not "after now": a clock is not the export's, and simulated or replayed worlds are often dated
    ahead of it. Why it matters: training splits are laid out back from the last event, so a single send
    typed with the wrong year used to leave every split empty ("no usable labelled examples"). Judged on
    whole days, once over a day histogram: cheap for 10M rows.
    """
    ns = timestamps.array.asi8 if len(timestamps) else np.zeros(0, dtype=np.int64)
    if len(ns) < 2:
        return np.zeros(len(ns), dtype=bool)
    day = (ns - ns.min()) // _DAY_NS
    counts = np.bincount(day)
    active = np.flatnonzero(counts)
    after = len(ns) - np.cumsum(counts[active])  # rows after each active day
    stray = (np.diff(active) > gap_days) & (after[:-1] <= max_share * len(ns))
    if not stray.any():
        return np.zeros(len(ns), dtype=bool)
    return day > active[np.flatnonzero(stray)[0]]


def _drop_after_end(
    events: pd.DataFrame, path: Path, rejects: Rejects, settings: DataSettings, n_raw: int
) -> pd.DataFrame:
    """Reject (by file row, with their own reason) and drop the validated events past the export's end."""
    late = after_export_end(events[S.TIMESTAMP], settings.export_end_gap_days, settings.export_end_max_share)
    if not late.any():
        return events
    dropped = np.zeros(n_raw, dtype=bool)
    for part in rejects.parts:
        rows = part.loc[part["table"] == S.EVENTS_TABLE, "row"].to_numpy(dtype=np.int64)
        dropped[rows - 1] = True
    mask = np.zeros(n_raw, dtype=bool)
    mask[np.flatnonzero(~dropped)[late]] = True
    rejects.add(S.EVENTS_TABLE, path, mask, S.TIMESTAMP, AFTER_END_REASON)
    return events[~late].reset_index(drop=True)


def load_folder(folder: str | Path, settings: DataSettings | None = None) -> DataFolder:
    """Load and validate a data folder; raises DataError naming the file and the problem."""
    settings = settings or DataSettings()
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"{folder}: not a folder (expected a data folder holding events.parquet or events.csv)"
        )
    events_path = find_table(folder, S.EVENTS_TABLE)
    if events_path is None:
        raise DataError(f"{folder}: no events table (expected events.parquet or events.csv)")

    rejects = Rejects()
    raw_rows: dict[str, int] = {}
    raw_events = read_table(events_path)
    raw_rows[S.EVENTS_TABLE] = len(raw_events)
    events = validate_events(raw_events, events_path, rejects)
    events = _drop_after_end(events, events_path, rejects, settings, len(raw_events))
    del raw_events

    subscribers = links = None
    if (sub_path := find_table(folder, S.SUBSCRIBERS_TABLE)) is not None:
        raw = read_table(sub_path)
        raw_rows[S.SUBSCRIBERS_TABLE] = len(raw)
        subscribers = validate_subscribers(raw, sub_path, rejects)
    if (links_path := find_table(folder, S.LINKS_TABLE)) is not None:
        raw = read_table(links_path)
        raw_rows[S.LINKS_TABLE] = len(raw)
        links = validate_links(raw, links_path, rejects)

    data = DataFolder(folder, events, subscribers, links, rejects.frame(), raw_rows)
    n_bad = int((data.rejects["table"] == S.EVENTS_TABLE).sum()) if not data.rejects.empty else 0
    share = n_bad / max(raw_rows[S.EVENTS_TABLE], 1)
    if share > settings.bad_share_limit:
        counts = "; ".join(f"{k}: {v:,}" for k, v in data.reject_counts().items())
        raise DataError(
            f"{events_path}: {n_bad:,} of {raw_rows[S.EVENTS_TABLE]:,} rows ({share:.1%}) cannot be used, "
            f"more than data.bad_share_limit={settings.bad_share_limit:.0%} ({counts})"
        )
    if events.empty:
        raise DataError(f"{events_path}: no usable event rows remain after validation")
    log.info(
        "data loaded from %s: %s event rows read, %s kept, %s rejected; tables %s",
        folder,
        f"{raw_rows[S.EVENTS_TABLE]:,}",
        f"{len(events):,}",
        f"{len(data.rejects):,}",
        ", ".join(raw_rows),
    )
    return data
