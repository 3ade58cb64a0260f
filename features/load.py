"""Read and validate a data folder (../shared/CONTRACT.md): events, subscribers, identity links.

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

log = logging.getLogger(__name__)

REJECT_COLUMNS = ["table", "file", "row", "field", "reason"]
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n", ""}
_OFFSET = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"  # a time, then Z or +hh[:mm]


# every column a data folder's tables may use ("bounce_type": optional on events)
_CONTRACT_COLUMNS = frozenset(
    (*S.EVENTS_REQUIRED, *S.EVENTS_OPTIONAL, *S.SUBSCRIBERS_REQUIRED, *S.SUBSCRIBERS_OPTIONAL)
    + (*S.LINKS_REQUIRED, *S.LINKS_OPTIONAL, "bounce_type")
)
UNDECODABLE = "__sendtime_undecodable__"  # a column read_table adds: rows with bytes that are not UTF-8
UNDECODABLE_REASON = "not UTF-8 text"
_SURROGATES = "[\udc80-\udcff]"  # how Python's surrogateescape keeps the bytes it could not decode


class DataError(ValueError):
    """The input cannot be used as a whole; the message names the file and the problem."""


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


def find_table(folder: Path, name: str) -> Path | None:
    """`name.parquet` or `name.csv`; Parquet wins when both exist (it keeps types)."""
    for ext in (".parquet", ".csv"):
        candidate = folder / f"{name}{ext}"
        if candidate.exists():
            return candidate
    return None


def read_table(path: Path) -> pd.DataFrame:
    """Read one table as strings-or-native types; CSV is read as text so parsing is ours to report."""
    try:
        if path.suffix == ".parquet":
            return _read_parquet(path)
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except UnicodeDecodeError:
            return _read_csv_with_undecodable_rows(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty (no header row)") from exc
    except DataError:
        raise
    except Exception as exc:  # pyarrow and the CSV parser raise many types; name the file either way
        raise DataError(f"{path}: cannot be read: {exc}") from exc


def _read_csv_with_undecodable_rows(path: Path) -> pd.DataFrame:
    """A CSV with some bytes that are not UTF-8 (a stray Latin-1 name, a cut multi-byte character):
    every cell that holds one is blanked and its row marked in the `UNDECODABLE` column, so that the
    row is rejected with its own reason and row number while the rest of the file loads. Read again
    only when the plain read failed, so clean files pay nothing."""
    frame = pd.read_csv(
        path, dtype=str, keep_default_na=False, na_values=[""], encoding_errors="surrogateescape"
    )
    if frame.columns.astype(str).str.contains(_SURROGATES, regex=True).any():
        raise DataError(f"{path}: the header row is not UTF-8 text; save the file as UTF-8")
    marked = np.zeros(len(frame), dtype=bool)
    for column in frame.columns:
        bad = frame[column].str.contains(_SURROGATES, regex=True, na=False).to_numpy(dtype=bool)
        if bad.any():
            frame.loc[bad, column] = np.nan
            marked |= bad
    frame[UNDECODABLE] = marked
    return frame


def _undecodable(raw: pd.DataFrame) -> np.ndarray:
    """Rows `read_table` marked as holding bytes that are not UTF-8."""
    if UNDECODABLE in raw.columns:
        return raw[UNDECODABLE].to_numpy(dtype=bool)
    return np.zeros(len(raw), dtype=bool)


def _read_parquet(path: Path) -> pd.DataFrame:
    """Parquet with its text columns as categoricals: an export repeats each address, channel, event type
    and message id many times, and one Python string per row is what makes 10M-row exports slow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    nested = [f for f in schema if pa.types.is_nested(f.type)]
    used = [f for f in nested if f.name.strip().lower() in _CONTRACT_COLUMNS]
    if used:
        raise DataError(
            f"{path}: column {used[0].name!r} holds nested values ({used[0].type}); the contract's columns "
            "take one plain value per row (text, number, boolean or timestamp): flatten it before export"
        )
    columns = [f.name for f in schema if not pa.types.is_nested(f.type)]  # other nested columns: ignored
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return pq.read_table(path, columns=columns, read_dictionary=text).to_pandas()


def require_columns(df: pd.DataFrame, required: tuple[str, ...], path: Path) -> None:
    columns = {str(c).strip().lower(): c for c in df.columns}
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in required if c not in columns]
    if missing:
        headerless = len(missing) == len(required) and len(df.columns) > 0  # a data row read as the header
        hint = "; the file may have no header row" if headerless else ""
        raise DataError(
            f"{path}: missing required column {', '.join(repr(m) for m in missing)} "
            f"(found: {', '.join(map(str, df.columns)) or 'none'}{hint})"
        )


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 with offset or Z, or naive meaning UTC, to UTC; unparseable -> NaT.

    Also takes the common export spelling '2022-03-18 15:28:01.000000 UTC'. Strings with and without
    an offset are parsed apart: pandas' ISO-8601 parser (2.x) carries the offset of one string over to
    the naive strings after it in the same call, shifting them.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = _in_nanosecond_range(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    text = values.astype("string").str.strip()
    text = text.str.replace(r"\s*UTC$", "+00:00", regex=True)
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    present = text.notna().to_numpy()
    aware = text.astype("string[pyarrow]").str.contains(_OFFSET, regex=True)  # pyarrow: a fast regex
    aware = aware.fillna(False).to_numpy(dtype=bool)
    for group in (present & aware, present & ~aware):
        if group.any():
            parsed[group] = pd.to_datetime(text[group], utc=True, errors="coerce", format="ISO8601")
    retry = (parsed.isna() & text.notna()).to_numpy()
    if retry.any():  # other spellings, per distinct value (few in practice)
        uniques = text[retry].unique()
        fixed = pd.to_datetime(pd.Series(uniques, dtype=object), utc=True, errors="coerce", format="mixed")
        lookup = pd.Series(fixed.array, index=pd.Index(uniques, dtype=object))
        parsed[retry] = lookup.reindex(text[retry].astype(object)).array
    return parsed


def _in_nanosecond_range(values: pd.Series) -> pd.Series:
    """Typed datetimes in nanoseconds, those beyond its range (years before 1678 or after 2261, which a
    Parquet file in micro- or milliseconds can hold) as missing: rejected rows, not a failed load."""
    unit = np.datetime_data(values.dtype.base if hasattr(values.dtype, "base") else values.dtype)[0]
    if unit == "ns":
        return values
    lo, hi = pd.Timestamp.min.value, pd.Timestamp.max.value  # nanoseconds since the epoch
    per = np.timedelta64(1, unit).astype("timedelta64[ns]").astype(np.int64)
    raw = values.array.asi8 if hasattr(values.array, "asi8") else values.to_numpy().astype(np.int64)
    outside = (raw < lo // per) | (raw > hi // per)
    return values.mask(outside).dt.as_unit("ns")


def normalise_vocabulary(values: pd.Series) -> pd.Series:
    """Lower-case and strip, per distinct value (channels and event types have a handful)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = np.append(np.asarray(pd.Index(uniques).astype(str).str.strip().str.lower(), dtype=object), None)
    out = cleaned[np.where(codes >= 0, codes, len(uniques))]  # a column of nothing but blanks included
    return pd.Series(out, index=values.index, dtype=object)


def parse_booleans(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    if pd.api.types.is_numeric_dtype(values.dtype):  # 0/1, as floats when a Parquet int column has nulls
        return (values != 0).astype("boolean").mask(values.isna())
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE) & text.notna()] = False
    return out


class _Rejects:
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


def _blank(values: pd.Series) -> np.ndarray:
    """Missing or only white space; judged once per distinct value (addresses repeat a lot)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    blank = np.append(np.asarray(pd.Index(uniques).astype(str).str.strip() == "", dtype=bool), True)
    return blank[np.where(codes < 0, len(uniques), codes)]


def _as_text(values: pd.Series) -> pd.Series:
    """Text values; a categorical stays categorical (string categories), so nothing is copied per row."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.rename_categories(values.cat.categories.astype(str))
    return values.astype(str)


def _clean_ids(values: pd.Series) -> pd.Categorical:
    """Message ids as a categorical: stripped, blank -> missing, and cheap to join on downstream."""
    if isinstance(values.dtype, pd.CategoricalDtype) and values.cat.categories.dtype == object:
        categories = values.cat.categories
        stripped = categories.astype(str).str.strip()
        if stripped.equals(categories) and not (stripped == "").any():
            # already clean (the usual Parquet export): re-encoding millions of ids would only hash them
            # twice more, once to factorize and once to check the new categories are unique
            return values.array
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = pd.Index(uniques).astype(str).str.strip()
    cleaned = cleaned.where(cleaned != "", None)
    cat_codes, categories = pd.factorize(pd.Series(np.asarray(cleaned, dtype=object)), use_na_sentinel=True)
    mapped = np.append(cat_codes, -1)[np.where(codes < 0, len(cat_codes), codes)]
    return pd.Categorical.from_codes(mapped, categories=pd.Index(categories, dtype=object))


def validate_events(raw: pd.DataFrame, path: Path, rejects: _Rejects) -> pd.DataFrame:
    require_columns(raw, S.EVENTS_REQUIRED, path)
    if raw.empty:
        raise DataError(f"{path}: the events file has no rows: nothing to learn from")
    ts = parse_timestamps(raw[S.TIMESTAMP])
    channel = normalise_vocabulary(raw[S.CHANNEL])
    event_type = normalise_vocabulary(raw[S.EVENT_TYPE])

    bad = np.zeros(len(raw), dtype=bool)
    checks = [
        (_undecodable(raw), "(row)", UNDECODABLE_REASON),
        (ts.isna().to_numpy(), S.TIMESTAMP, "unparseable timestamp"),
        (~channel.isin(S.CHANNELS).to_numpy(), S.CHANNEL, "unknown channel"),
        (~event_type.isin(S.EVENT_TYPES).to_numpy(), S.EVENT_TYPE, "unknown event type"),
        (_blank(raw[S.ADDRESS]), S.ADDRESS, "empty address"),
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
            S.ADDRESS: _as_text(raw.loc[keep, S.ADDRESS]).reset_index(drop=True),
        }
    )
    if S.MESSAGE_ID in raw.columns:
        out[S.MESSAGE_ID] = _clean_ids(raw.loc[keep, S.MESSAGE_ID].reset_index(drop=True))
    else:
        out[S.MESSAGE_ID] = pd.Series(pd.NA, index=out.index, dtype="string")
    if S.MACHINE_OPEN in raw.columns:
        out[S.MACHINE_OPEN] = parse_booleans(raw.loc[keep, S.MACHINE_OPEN]).reset_index(drop=True)
    else:
        out[S.MACHINE_OPEN] = pd.Series(pd.NA, index=out.index, dtype="boolean")
    column = raw.loc[keep, S.BOUNCE_TYPE] if S.BOUNCE_TYPE in raw.columns else None
    out[S.BOUNCE_TYPE] = parse_bounce_types(column, len(out))
    return out


def parse_bounce_types(values: pd.Series | None, n: int) -> pd.Categorical:
    """`hard` or `soft` in any case and spacing; anything else (empty, a platform's own word) is unknown
    (missing), never a rejected row: an unknown bounce is judged by the soft rule, which only suppresses
    an address after a run of failures (see `features/suppression.py`)."""
    if values is None:
        return pd.Categorical.from_codes(np.full(n, -1, np.int8), categories=list(S.BOUNCE_TYPES))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # judged per distinct value, not per row
    cleaned = pd.Index(uniques).astype(str).str.strip().str.lower()
    lookup = np.append(pd.Index(S.BOUNCE_TYPES).get_indexer(cleaned), -1).astype(np.int8)
    return pd.Categorical.from_codes(lookup[np.where(codes >= 0, codes, len(uniques))], list(S.BOUNCE_TYPES))


def validate_subscribers(raw: pd.DataFrame, path: Path, rejects: _Rejects) -> pd.DataFrame:
    require_columns(raw, S.SUBSCRIBERS_REQUIRED, path)
    channel = normalise_vocabulary(raw[S.CHANNEL])
    undecodable = _undecodable(raw)
    rejects.add(S.SUBSCRIBERS_TABLE, path, undecodable, "(row)", UNDECODABLE_REASON)
    bad_channel = ~channel.isin(S.CHANNELS).to_numpy() & ~undecodable
    empty = _blank(raw[S.ADDRESS]) & ~bad_channel & ~undecodable
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


def validate_links(raw: pd.DataFrame, path: Path, rejects: _Rejects) -> pd.DataFrame:
    require_columns(raw, S.LINKS_REQUIRED, path)
    undecodable = _undecodable(raw)
    rejects.add(S.LINKS_TABLE, path, undecodable, "(row)", UNDECODABLE_REASON)
    empty = (_blank(raw[S.ADDRESS_A]) | _blank(raw[S.ADDRESS_B])) & ~undecodable
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
    events: pd.DataFrame, path: Path, rejects: _Rejects, settings: DataSettings, n_raw: int
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

    rejects = _Rejects()
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
    return data
