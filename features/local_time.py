"""Local time: which timezone each subscriber lives in, and what their clock showed at an instant.

People respond by their own clock, so every hour-of-week feature is local and DST-correct: conversions
go through the timezone rules (tz_convert), one call per distinct timezone, never a fixed offset.
The timezone comes, in order of trust, from the subscribers table, the phone number, a linked
profile of the same person, the activity pattern, and lastly the configured default.
"""

from __future__ import annotations

import functools
import math
import time
import zoneinfo
from importlib import resources

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import timezone as phone_timezone

from sendtime.schema import HOURS_PER_WEEK, SUBSCRIBER_ID, TIMEZONE, TZ_SOURCE

TZ_SOURCES = ("subscribers_table", "phone", "linked_profile", "activity", "default")
_UNKNOWN_ZONE = "Etc/Unknown"


@functools.cache
def _valid_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _zone_links() -> dict[str, str]:
    """Alias -> canonical zone (Europe/Guernsey -> Europe/London), from the tz database's own link lines."""
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "tzdata.zi").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return {}
    return {p[2]: p[1] for p in (line.split() for line in text.splitlines()) if len(p) == 3 and p[0] == "L"}


@functools.cache
def _offsets_this_year(zone: str) -> tuple[float, ...]:
    year = pd.Timestamp.now(tz="UTC").year
    weeks = pd.date_range(f"{year}-01-01", periods=53, freq="7D", tz="UTC")
    return tuple((weeks.tz_convert(zone).tz_localize(None) - weeks.tz_localize(None)).total_seconds())


@functools.cache
def _zone_of(zones: tuple[str, ...]) -> str | None:
    """One zone for a number's zone list, or None when the list does not pin down the local clock.

    Aliases collapse to their canonical zone (a UK mobile lists Guernsey, Isle of Man, Jersey and
    London: all Europe/London). A list whose zones keep different clocks (a toll-free +1 800 number
    lists all of North America) reveals nothing, so it falls through to the next source.
    """
    links = _zone_links()
    canonical = list(dict.fromkeys(links.get(z, z) for z in zones if z != _UNKNOWN_ZONE))
    canonical = [z for z in canonical if z in _valid_zones()]
    if not canonical or len({_offsets_this_year(z) for z in canonical}) > 1:
        return None
    return canonical[0]


def _zone_for_number(e164: str) -> str | None:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return _zone_of(tuple(phone_timezone.time_zones_for_number(number)))


def timezones_from_phones(e164: pd.Series) -> pd.Series:
    """Timezone of each E.164 number's area; <NA> when the number does not tell.

    The library looks zones up by at most the first `TIMEZONE_LONGEST_PREFIX` digits, so numbers that
    share those digits share a zone: one (slow) parse per prefix instead of per number.
    """
    text = e164.astype("string")
    prefix = text.str.slice(0, 1 + phone_timezone.TIMEZONE_LONGEST_PREFIX)
    codes, uniques = pd.factorize(prefix, use_na_sentinel=True)
    first = pd.Series(np.arange(len(text))).groupby(codes).first()  # a representative number per prefix
    representative = text.to_numpy(dtype=object)[first.reindex(range(len(uniques))).to_numpy()]
    zones = pd.array([_zone_for_number(str(u)) for u in representative], dtype="string")
    return pd.Series(zones.take(codes, allow_fill=True), index=e164.index, dtype="string")


ZONE_SEPARATOR = "|"  # joins the zones of a set into one text key ("America/Chicago|America/New_York")


def is_zone_name(name: object) -> bool:
    """Whether `name` is an IANA timezone name this machine's tz database knows (aliases included)."""
    return isinstance(name, str) and name in _valid_zones()


@functools.cache
def plausible_zones(zones: tuple[str, ...]) -> tuple[str, ...]:
    """Every distinct zone of a number's zone list (aliases collapsed to their canonical zone, sorted).

    `_zone_of` asks whether a number pins down one clock (for local-time features); SMS quiet hours ask
    the opposite question, in which zones the number's owner may be: an area code or a mobile range that
    spans several clocks (+1 208: Boise and Los Angeles; an Australian mobile: Perth to Lord Howe) keeps
    all of them, so that a text is planned only when every one of them allows it.
    """
    links = _zone_links()
    canonical = {links.get(z, z) for z in zones if z != _UNKNOWN_ZONE}
    return tuple(sorted(z for z in canonical if z in _valid_zones()))


def _zone_set_for_number(e164: str) -> str | None:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    zones = plausible_zones(tuple(phone_timezone.time_zones_for_number(number)))
    return ZONE_SEPARATOR.join(zones) or None


def phone_zone_sets(e164: pd.Series, single: pd.Series) -> pd.Series:
    """Every zone each E.164 number's owner may be in, as a `ZONE_SEPARATOR`-joined key; <NA> when the
    number tells nothing.

    `single` is the number's one zone where it has one (`timezones_from_phones`): its plausible zones
    keep that one clock, so it stands for them and nothing is parsed. Only numbers without one (toll-free,
    an area code across a zone line, mobiles of a many-zone country) are looked up, one parse per
    `TIMEZONE_LONGEST_PREFIX` prefix as in `timezones_from_phones`, so a million rows parse a few of them.
    """
    out = np.asarray(single, dtype=object).copy()
    numbers = np.asarray(e164, dtype=object)
    missing = pd.isna(out)
    out[missing] = None
    todo = np.flatnonzero(missing & ~pd.isna(numbers))
    if len(todo):
        rest = pd.Series(numbers[todo], dtype="string")
        prefix = rest.str.slice(0, 1 + phone_timezone.TIMEZONE_LONGEST_PREFIX)
        codes, uniques = pd.factorize(prefix, use_na_sentinel=True)
        first = pd.Series(np.arange(len(rest))).groupby(codes).first().to_numpy()
        found = np.array(
            [_zone_set_for_number(str(t)) for t in rest.to_numpy(dtype=object)[first]], dtype=object
        )
        out[todo] = found[codes]
    return pd.Series(out, index=pd.Series(e164).index, dtype=object)


def _utc_index(ts_utc: pd.Series | pd.DatetimeIndex) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(ts_utc, utc=True))


def _utc_timestamp(ts: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _local(utc: pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    try:
        return utc.tz_convert(tz)
    except Exception as exc:  # pytz and zoneinfo raise different errors for an unknown name
        raise ValueError(f"unknown timezone {tz!r}") from exc


def _how(utc: pd.DatetimeIndex, tz: str) -> np.ndarray:
    local = _local(utc, tz)
    return (local.dayofweek * 24 + local.hour).to_numpy(dtype=np.int16)


def local_hour_of_week(ts_utc: pd.Series, tz: pd.Series | str) -> np.ndarray:
    """Local hour-of-week (0 = Monday 00:00-00:59) of each instant in its own timezone.

    Naive timestamps mean UTC. -1 where the instant or the timezone is missing.
    """
    utc = _utc_index(ts_utc)
    out = np.full(len(utc), -1, dtype=np.int16)
    present = ~np.asarray(utc.isna())
    if isinstance(tz, str):
        out[present] = _how(utc[present], tz)
        return out
    if len(tz) != len(utc):
        raise ValueError(f"local_hour_of_week: {len(tz)} timezones for {len(utc)} timestamps")
    codes, zones = pd.factorize(pd.Series(tz).to_numpy(dtype=object), use_na_sentinel=True)
    codes = np.where(present, codes, -1)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(zones) + 1))
    for k, zone in enumerate(zones):
        rows = order[bounds[k] : bounds[k + 1]]
        out[rows] = _how(utc[rows], zone)
    return out


def candidate_hours(start_utc: pd.Timestamp, end_utc: pd.Timestamp) -> pd.DatetimeIndex:
    """The UTC clock-hour starts inside [start, end): a send is planned on the hour."""
    first, end = _utc_timestamp(start_utc).ceil("h"), _utc_timestamp(end_utc)
    if first >= end:  # date_range would still return `first` when it equals `end`
        return pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", freq="h")
    return pd.date_range(first, end, freq="h", inclusive="left")


# --- the API's windows: memoised, since requests mostly share a window and a date_range or strftime
# costs as much as a small answer's policy
UTC_STAMP = "%Y-%m-%dT%H:%M:%SZ"  # how answers write an instant
_stamp_memo: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def window_hours(start=None, end=None, now: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """`candidate_hours` of [start, end); no window: the next 24 hours from the next clock hour after
    `now` (default: the clock, without building a Timestamp per request)."""
    if start is not None and end is not None:
        return _window_hours(start, end)
    if now is None:
        return _next_day(math.ceil(time.time() / 3600))
    first = now.ceil("h")
    return _window_hours(first, first + pd.Timedelta(hours=24))


@functools.lru_cache(maxsize=4)
def _next_day(hour: int) -> pd.DatetimeIndex:
    first = pd.Timestamp(hour * 3600, unit="s", tz="UTC")
    return _window_hours(first, first + pd.Timedelta(hours=24))


@functools.lru_cache(maxsize=256)
def _window_hours(start, end) -> pd.DatetimeIndex:
    return candidate_hours(pd.Timestamp(start), pd.Timestamp(end))


def utc_stamp(ts) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime(UTC_STAMP)


def hour_stamps(hours: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """ISO texts of each hour's start and end (object arrays), memoised per window."""
    key = (str(hours.dtype), hours.asi8.tobytes())
    found = _stamp_memo.get(key)
    if found is None:
        if len(_stamp_memo) > 64:
            _stamp_memo.clear()
        found = _stamp_memo[key] = (
            np.asarray(hours.strftime(UTC_STAMP), dtype=object),
            np.asarray((hours + pd.Timedelta(hours=1)).strftime(UTC_STAMP), dtype=object),
        )
    return found


def local_hour_of_week_grid(hour_starts: pd.DatetimeIndex, timezones: np.ndarray) -> np.ndarray:
    """int16 [n_timezones, n_hours]: computed once per distinct timezone, then repeated for duplicates."""
    utc = _utc_index(hour_starts)
    codes, zones = pd.factorize(np.asarray(timezones, dtype=object))
    if (codes < 0).any():
        raise ValueError("local_hour_of_week_grid: a timezone is missing")
    grid = np.empty((len(zones), len(utc)), dtype=np.int16)
    for k, zone in enumerate(zones):
        grid[k] = _how(utc, zone)
    return grid[codes]


def local_clock(ts_utc: pd.DatetimeIndex | pd.Series, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(local hour 0-23, local weekday 0 = Monday) as int16 arrays; -1 where the instant is missing."""
    local = _local(_utc_index(ts_utc), tz)
    missing = np.asarray(local.isna())
    hour = np.where(missing, -1, np.nan_to_num(np.asarray(local.hour, dtype=float))).astype(np.int16)
    weekday = np.where(missing, -1, np.nan_to_num(np.asarray(local.dayofweek, dtype=float))).astype(np.int16)
    return hour, weekday


def _shifted_to_utc(local_dist: np.ndarray, offset_hours: float) -> np.ndarray:
    """P(UTC hour-of-week h) for someone at `offset_hours`: local = UTC + offset, interpolated for :30 zones."""
    whole = int(np.floor(offset_hours))
    frac = offset_hours - whole
    base = np.roll(local_dist, -whole)
    return (1 - frac) * base + frac * np.roll(base, -1)


def infer_timezone_from_activity(
    utc_how_counts: np.ndarray,
    population_local_dist: np.ndarray,
    candidates: list[str],
    reference: pd.Timestamp,
    min_events: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Most likely candidate timezone for each subscriber, from when (in UTC) they engage.

    People engaging by the population's local rhythm reveal their offset: the candidate whose offset
    (at `reference`) best explains their UTC counts wins. Returns (zone or None when fewer than
    `min_events` engagements, log-likelihood margin over the runner-up: NaN for those without a zone,
    inf with a single candidate, 0 when two candidates share an offset and tie).
    """
    if not candidates:
        raise ValueError("infer_timezone_from_activity: no candidate timezones")
    counts = np.asarray(utc_how_counts, dtype=float).reshape(-1, HOURS_PER_WEEK)
    dist = np.asarray(population_local_dist, dtype=float)
    dist = dist / dist.sum()
    dist = 0.999 * dist + 0.001 / HOURS_PER_WEEK  # an hour nobody used must not be impossible
    when = _utc_timestamp(reference)
    offsets = [when.tz_convert(z).utcoffset().total_seconds() / 3600 for z in candidates]
    log_p = np.log(np.stack([_shifted_to_utc(dist, o) for o in offsets]))  # [n_candidates, 168]
    loglik = counts @ log_p.T  # [n, n_candidates]; the multinomial constant cancels in comparisons

    best = loglik.argmax(axis=1)
    if len(candidates) > 1:
        top_two = np.sort(loglik, axis=1)[:, -2:]
        margin = top_two[:, 1] - top_two[:, 0]
    else:
        margin = np.full(len(counts), np.inf)
    enough = counts.sum(axis=1) >= min_events
    zones = np.array(candidates, dtype=object)[best]
    zones[~enough] = None
    return zones, np.where(enough, margin, np.nan)


def _clean_names(values: pd.Series | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(name or None, invalid flag): blank means absent; a non-IANA name is invalid and treated as absent."""
    if values is None:
        return np.full(n, None, dtype=object), np.zeros(n, dtype=bool)
    if len(values) != n:
        raise ValueError(f"resolve_timezones: a timezone source has {len(values)} rows, expected {n}")
    codes, uniques = pd.factorize(pd.Series(values).to_numpy(dtype=object), use_na_sentinel=True)
    # one slot per distinct value, plus a last one (None) that code -1 (missing) picks
    names = np.array([str(u).strip() or None for u in uniques] + [None], dtype=object)
    valid = np.array([name in _valid_zones() for name in names[:-1]] + [False])
    invalid = np.array([name is not None for name in names]) & ~valid
    names[~valid] = None
    return names[codes], invalid[codes]


DECLARED_BY_ROW = 64  # up to this many rows (the API's calls), `declared_zones` reads each value directly


def declared_zones(values, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(IANA name or None, invalid flag) per row of a `timezone` column a sending system declares (an
    audience file, an API request); blank means absent. Read as the subscribers table's are: a name the
    tz database does not know is flagged, never guessed."""
    if values is not None and n <= DECLARED_BY_ROW:
        values = list(values)
        if len(values) != n:
            raise ValueError(f"resolve_timezones: a timezone source has {len(values)} rows, expected {n}")
        names = [None if pd.isna(v) else str(v).strip() or None for v in values]
        invalid = np.array([name is not None and name not in _valid_zones() for name in names], dtype=bool)
        valid = np.array([name if name in _valid_zones() else None for name in names], dtype=object)
        return valid, invalid
    return _clean_names(None if values is None else pd.Series(list(values), dtype=object), n)


def resolve_timezones(
    subscriber_ids: pd.Series,
    table_tz: pd.Series | None,
    phone_tz: pd.Series | None,
    linked_tz: pd.Series | None,
    activity_tz: pd.Series | None,
    default: str,
) -> pd.DataFrame:
    """One timezone per subscriber, from the most trusted source that has a valid IANA name.

    Sources are aligned by position with `subscriber_ids` (None: the source is absent). The count of
    subscribers-table rows whose name was not a valid IANA zone is in `df.attrs["invalid_timezones"]`.
    """
    if default not in _valid_zones():
        raise ValueError(f"default timezone {default!r} is not an IANA timezone name")
    n = len(subscriber_ids)
    zone = np.full(n, None, dtype=object)
    source = np.full(n, None, dtype=object)
    invalid_in_table = 0
    for name, values in zip(TZ_SOURCES[:-1], (table_tz, phone_tz, linked_tz, activity_tz), strict=True):
        names, invalid = _clean_names(values, n)
        if name == TZ_SOURCES[0]:
            invalid_in_table = int(invalid.sum())
        take = pd.isna(zone) & ~pd.isna(names)
        zone[take], source[take] = names[take], name
    rest = pd.isna(zone)
    zone[rest], source[rest] = default, TZ_SOURCES[-1]
    out = pd.DataFrame({SUBSCRIBER_ID: subscriber_ids.to_numpy(), TIMEZONE: zone, TZ_SOURCE: source})
    out.attrs["invalid_timezones"] = invalid_in_table
    return out
