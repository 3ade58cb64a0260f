"""SMS quiet hours: when a text may go out, in the recipient's local time.

Two layers, both checked at the *local* time of each candidate hour start (DST-correct, because the
instant is converted with the recipient's IANA timezone rather than a fixed offset):

1. the federal window, `PolicySettings.quiet_hours` (08:00-21:00 by default);
2. stricter US state rules, by the phone number's area code (features/us_area_codes.py), from a small
   rules table (`configs/us_state_quiet_hours.csv`, replaceable through `PolicySettings.state_rules_file`)
   so that compliance staff can read and change them without touching code.

Both are checked in *every* zone the recipient may be in (`zone_sets`): the zone the phone number
reveals (all of them when its area or range spans several clocks), a zone the sending system declares
for the row, and the zone the person's profile uses; where they disagree, each must allow the hour. An
activity-inferred profile zone therefore adds a constraint but can never lift the number's own.

`sms_allowed` is vectorised by grouping subscribers per distinct (zone set, state): an audience of a
million people usually has a few hundred such groups, and each group's row is computed once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from sendtime.configs.settings import PolicySettings
from sendtime.features.local_time import ZONE_SEPARATOR

BUILTIN_RULES = "us_state_quiet_hours.csv"
RULE_COLUMNS = ("state", "days", "start", "end")
MINUTES_PER_DAY = 24 * 60
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # pandas weekday numbers 0..6


@dataclass(frozen=True)
class QuietHourRules:
    """Parsed quiet-hour rules; times are minutes after local midnight, windows are [start, end)."""

    federal_start: int
    federal_end: int
    # state -> int array [7, 2]: (start, end) per local weekday, Monday = 0; [0, 1440] means no limit
    state_windows: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = BUILTIN_RULES


# --- rules table -------------------------------------------------------------------------------


def load_rules(settings: PolicySettings) -> QuietHourRules:
    """The federal window from settings plus the state table (built-in CSV or its replacement).

    The CSV is parsed once per path and modification time (cached), so calling this per request costs
    nothing, while an edited rules file is picked up.
    """
    start, end = settings.quiet_hours.start * 60, settings.quiet_hours.end * 60
    if start >= end:
        raise ValueError(f"policy.quiet_hours: start ({start // 60}) must be before end ({end // 60})")
    path = settings.state_rules_file
    if path and not Path(path).exists():
        raise FileNotFoundError(
            f"state quiet-hour rules file {path} (policy.state_rules_file) does not exist"
        )
    windows = (
        _read_rules(str(Path(path).resolve()), Path(path).stat().st_mtime_ns)
        if path
        else _read_rules(None, 0)
    )
    return QuietHourRules(start, end, windows, source=path or BUILTIN_RULES)


@lru_cache(maxsize=8)
def _read_rules(path: str | None, mtime_ns: int) -> Mapping[str, np.ndarray]:
    """Read and validate a rules CSV (None: the packaged one); errors name the file, row and column.

    `mtime_ns` is unused in the body: it is part of the cache key, so an edited file is read again.
    """
    if path is None:
        with resources.files("sendtime.configs").joinpath(BUILTIN_RULES).open("r") as fh:
            table = pd.read_csv(fh, comment="#", dtype=str, skipinitialspace=True)
        where = f"built-in {BUILTIN_RULES}"
    else:
        table = pd.read_csv(path, comment="#", dtype=str, skipinitialspace=True)
        where = path
    table.columns = [str(c).strip().lower() for c in table.columns]
    for column in RULE_COLUMNS:
        if column not in table.columns:
            raise ValueError(f"{where}: missing column {column!r} (need {', '.join(RULE_COLUMNS)})")
    windows: dict[str, np.ndarray] = {}
    for i, row in enumerate(table.itertuples(index=False), start=1):
        context = f"{where}, rule {i}"
        state = str(row.state).strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", state):
            raise ValueError(f"{context}: column 'state' must be a 2-letter code, got {row.state!r}")
        days = parse_days(str(row.days), context)
        start, end = parse_time(str(row.start), context), parse_time(str(row.end), context)
        if start > end:
            raise ValueError(f"{context}: start {row.start} is after end {row.end}")
        state_window = windows.setdefault(state, np.tile(np.array([0, MINUTES_PER_DAY]), (7, 1)))
        # several rules on one day: keep the strictest (their intersection)
        state_window[days, 0] = np.maximum(state_window[days, 0], start)
        state_window[days, 1] = np.minimum(state_window[days, 1], end)
    for state_window in windows.values():
        state_window.setflags(write=False)  # cached and shared between callers
    return MappingProxyType(windows)


def parse_days(text: str, context: str = "days") -> list[int]:
    """`all`, `Sun`, `Mon-Sat` (ranges may wrap, `Sat-Mon`) or comma lists of these, to weekday numbers."""
    days: set[int] = set()
    for part in text.strip().lower().split(","):
        part = part.strip()
        if part in ("all", "*", "daily"):
            days.update(range(7))
            continue
        ends = [p.strip()[:3] for p in part.split("-")]
        if len(ends) not in (1, 2) or any(e not in WEEKDAYS for e in ends):
            raise ValueError(f"{context}: column 'days' cannot read {text!r} (use e.g. all, Sun, Mon-Sat)")
        first, last = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        days.update((first + k) % 7 for k in range((last - first) % 7 + 1))
    return sorted(days)


def parse_time(text: str, context: str = "time") -> int:
    """`HH:MM` or `HH` to minutes after midnight; 24:00 is allowed as an end."""
    match = re.fullmatch(r"\s*(\d{1,2})(?::(\d{2}))?\s*", text)
    if not match:
        raise ValueError(f"{context}: cannot read time {text!r} (use HH:MM)")
    minutes = int(match.group(1)) * 60 + int(match.group(2) or 0)
    if minutes > MINUTES_PER_DAY or int(match.group(2) or 0) >= 60:
        raise ValueError(f"{context}: time {text!r} is outside 00:00-24:00")
    return minutes


# --- the mask ----------------------------------------------------------------------------------


def utc_hours(hour_starts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Candidate hour starts as a UTC DatetimeIndex (naive values mean UTC, as in the data contract)."""
    hours = _index(hour_starts)
    return hours.tz_localize("UTC") if hours.tz is None else hours.tz_convert("UTC")


def _index(hour_starts) -> pd.DatetimeIndex:
    """`hour_starts` as a DatetimeIndex, without the copy `pd.DatetimeIndex` makes of one (~40 us)."""
    return hour_starts if isinstance(hour_starts, pd.DatetimeIndex) else pd.DatetimeIndex(hour_starts)


def utc_instants(values: np.ndarray) -> np.ndarray:
    """Any datetime-like array (datetime64 of any unit, aware or naive Timestamps, ISO strings) as naive
    UTC datetime64[ns] of the same shape, so that instants compare directly with `utc_hours` values."""
    array = np.asarray(values)
    if array.dtype.kind == "M" and np.datetime_data(array.dtype)[0] == "generic":
        array = array.astype("datetime64[ns]")  # a bare NaT has no unit
    flat = pd.to_datetime(array.reshape(-1), utc=True)
    return flat.tz_localize(None).values.astype("datetime64[ns]").reshape(array.shape)


MEMO_SMALL = 5_000  # calls of up to this many rows are memoised
MEMO_LIMIT = 20_000  # memoised rows per rules table before the memo starts over
_allowed_memo: dict[int, tuple[object, dict]] = {}


def sms_allowed(
    hour_starts: pd.DatetimeIndex, timezones: np.ndarray, states: np.ndarray, rules: QuietHourRules
) -> np.ndarray:
    """bool [n, H]: may an SMS go out to subscriber i at hour start j? (`_sms_allowed`)

    Small calls (the API's) are memoised per (window, zones, state): each row depends on nothing else,
    and a request mostly repeats the last one's window and a few zones, whose rows cost a tz_convert
    each. Exact, bounded and thread-safe; large calls (batch plans) compute directly.
    """
    zones, places = np.asarray(timezones, dtype=object), np.asarray(states, dtype=object)
    if len(zones) > MEMO_SMALL or zones.ndim != 1 or places.shape != zones.shape:
        return _sms_allowed(hour_starts, timezones, states, rules)
    hours = _index(hour_starts)
    # one memo per rules table; holding the table keeps its id from being reused by another one
    ruleset = _allowed_memo.get(id(rules.state_windows))
    if ruleset is None:
        if len(_allowed_memo) > 8:
            _allowed_memo.clear()
        ruleset = _allowed_memo[id(rules.state_windows)] = (rules.state_windows, {})
    memo = ruleset[1]
    window = (str(hours.dtype), hours.asi8.tobytes(), rules.federal_start, rules.federal_end)
    pairs = list(zip(zones.tolist(), places.tolist(), strict=True))
    try:
        found = {pair: memo.get((window, pair)) for pair in pairs}
    except TypeError:  # an unhashable value: compute without the memo
        return _sms_allowed(hour_starts, timezones, states, rules)
    todo = [pair for pair, row in found.items() if row is None]
    if todo:
        todo_zones, todo_places = (np.array(column, dtype=object) for column in zip(*todo, strict=True))
        rows = _sms_allowed(hours, todo_zones, todo_places, rules)
        if len(memo) + len(todo) > MEMO_LIMIT:
            memo.clear()
        for pair, row in zip(todo, rows, strict=True):
            found[pair] = memo[(window, pair)] = row
    position = {pair: k for k, pair in enumerate(found)}
    table = np.stack(list(found.values())) if found else np.zeros((0, len(hours)), dtype=bool)
    return table[[position[pair] for pair in pairs]]


def _sms_allowed(
    hour_starts: pd.DatetimeIndex, timezones: np.ndarray, states: np.ndarray, rules: QuietHourRules
) -> np.ndarray:
    """bool [n, H]: may an SMS go out to subscriber i at hour start j?

    `timezones[i]` is one IANA name or several joined by `ZONE_SEPARATOR` (`zone_sets`): the hour is
    allowed only when, in every one of those zones, the local time of that instant is inside the federal
    [start, end) and inside the state's window for that local weekday. A subscriber without a timezone
    gets no SMS hour at all: without a local time we cannot show the send is lawful, so we err on the
    quiet side.
    """
    hours = utc_hours(hour_starts)
    tz_codes, tz_names = _factorize(timezones, upper=False)
    st_codes, st_names = _factorize(states, upper=True)
    if len(tz_codes) != len(st_codes):
        raise ValueError(f"timezones ({len(tz_codes)}) and states ({len(st_codes)}) differ in length")
    width = len(st_names) + 1  # codes shifted by one so that -1 (unknown) packs into the key too
    groups, inverse = np.unique((tz_codes + 1) * width + (st_codes + 1), return_inverse=True)
    table = np.zeros((len(groups), len(hours)), dtype=bool)
    local_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for g, key in enumerate(groups):
        tz_code, st_code = (code - 1 for code in divmod(int(key), width))
        if tz_code < 0:
            continue  # unknown timezone: no SMS
        state = st_names[st_code] if st_code >= 0 else None
        allowed = np.ones(len(hours), dtype=bool)
        for zone in filter(None, (z.strip() for z in tz_names[tz_code].split(ZONE_SEPARATOR))):
            if zone not in local_cache:
                local_cache[zone] = _local_clock(hours, zone)
            allowed &= _allowed_row(*local_cache[zone], state, rules)
        table[g] = allowed
    return table[inverse.reshape(-1)]


def zone_sets(*columns: np.ndarray) -> np.ndarray:
    """Per row, the union of the zones its columns name, as one sorted `ZONE_SEPARATOR`-joined key (object
    [n]; None where no column names one). Each cell is None/NaN/blank, a zone, or itself a joined set.

    The key is what `sms_allowed` reads: every zone in it must allow the hour. Computed once per
    distinct combination of cells, so a million rows cost a few factorisations.
    """
    n = len(columns[0]) if columns else 0
    if n <= ZONE_SETS_BY_ROW:
        return _zone_sets_by_row(columns, n)
    codes = np.zeros(n, dtype=np.int64)
    parts = []
    for column in columns:
        part, names = _factorize(column, upper=False)
        if len(part) != n:
            raise ValueError(f"zone_sets: a column has {len(part)} rows, expected {n}")
        parts.append((part, names))
        codes = pd.factorize(codes * (len(names) + 1) + (part + 1))[0].astype(np.int64)
    _, first = np.unique(codes, return_index=True)  # codes are 0..k-1 in order of first appearance
    keys = np.empty(len(first), dtype=object)
    for k, row in enumerate(first.tolist()):
        zones: set[str] = set()
        for part, names in parts:
            if part[row] >= 0:
                zones.update(z.strip() for z in names[part[row]].split(ZONE_SEPARATOR) if z.strip())
        keys[k] = ZONE_SEPARATOR.join(sorted(zones)) or None
    return keys[codes]


ZONE_SETS_BY_ROW = 64  # up to this many rows (the API's calls), `zone_sets` reads each row directly


def _zone_sets_by_row(columns: tuple[np.ndarray, ...], n: int) -> np.ndarray:
    """`zone_sets` of a few rows, cell by cell: the same cleaning as `_factorize` (missing or blank cells
    name nothing; text is stripped), without a factorisation per column (~25 us each)."""
    cells = [np.asarray(column, dtype=object).reshape(-1) for column in columns]
    for column in cells:
        if len(column) != n:
            raise ValueError(f"zone_sets: a column has {len(column)} rows, expected {n}")
    keys = np.empty(n, dtype=object)
    for i in range(n):
        zones: set[str] = set()
        for column in cells:
            cell = column[i]
            if not pd.isna(cell):
                zones.update(z.strip() for z in str(cell).strip().split(ZONE_SEPARATOR) if z.strip())
        keys[i] = ZONE_SEPARATOR.join(sorted(zones)) or None
    return keys


def _factorize(values: np.ndarray, upper: bool) -> tuple[np.ndarray, list[str]]:
    """Codes per row (-1 for None, NaN or blank) and the distinct cleaned strings.

    Raw values are factorised first and only the distinct ones cleaned (a million rows hold a few
    hundred zones), then values that clean to the same text share one code."""
    raw_codes, uniques = pd.factorize(np.asarray(values, dtype=object).reshape(-1), use_na_sentinel=True)
    cleaned = [str(u).strip() for u in uniques]
    cleaned = [c.upper() if upper else c for c in cleaned]
    names: list[str] = []
    position: dict[str, int] = {}
    remap = np.empty(len(cleaned) + 1, dtype=np.int64)
    remap[-1] = -1  # raw code -1 (missing) stays missing
    for k, text in enumerate(cleaned):
        if not text:
            remap[k] = -1
            continue
        if text not in position:
            position[text] = len(names)
            names.append(text)
        remap[k] = position[text]
    return remap[raw_codes], names


def _local_clock(hours: pd.DatetimeIndex, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """(minute of local day, local weekday) for each hour start in `timezone`."""
    try:
        local = hours.tz_convert(timezone)
    except Exception as exc:  # zoneinfo raises several types for a bad key
        raise ValueError(f"unknown timezone {timezone!r} (expected an IANA name)") from exc
    minutes = np.asarray(local.hour, dtype=np.int64) * 60 + np.asarray(local.minute, dtype=np.int64)
    return minutes, np.asarray(local.weekday, dtype=np.int64)


def _allowed_row(
    minutes: np.ndarray, weekday: np.ndarray, state: str | None, rules: QuietHourRules
) -> np.ndarray:
    allowed = (minutes >= rules.federal_start) & (minutes < rules.federal_end)
    window = rules.state_windows.get(state) if state else None
    if window is not None:
        allowed &= (minutes >= window[weekday, 0]) & (minutes < window[weekday, 1])
    return allowed
