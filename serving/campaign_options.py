"""The campaign window and options, one set of rules for `sendtime schedule` and the prediction API.

An instant is ISO-8601 with its offset (or Z) inside the years every plan and model time can hold
(`read_instant`); a window ends after it starts, spans at most `serving.max_window_days` and holds at
least one clock-hour start (`window_hours`). The CLI's errors name its options (`parse_instant`,
`parse_window`: `--end ...`); the API's request models (`api_models`) call the same rules and pydantic
names the field (`window.end: ...`). `Window` is the one domain window both plan over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from sendtime import schema as S
from sendtime.features.local_time import candidate_hours, utc_stamp

# every plan and model time is in nanoseconds (years 1677 to 2262); whole years, with room for the
# window and follow-up arithmetic on either side
_EARLIEST, _LATEST = pd.Timestamp("1678-01-01", tz="UTC"), pd.Timestamp("2262-01-01", tz="UTC")
_EXAMPLE = "e.g. 2026-11-03T05:00:00Z or 2026-11-03T00:00:00-05:00"


@dataclass(frozen=True)
class Window:
    """The campaign window: candidate UTC hour starts in [start, end) and the campaign's plain send hour."""

    start: pd.Timestamp
    end: pd.Timestamp
    hours: pd.DatetimeIndex
    campaign_time: pd.Timestamp
    campaign_hour: int  # index into hours: the first hour start at or after campaign_time


def read_instant(value: object) -> pd.Timestamp:
    """ISO-8601 text with an offset or Z (or an aware datetime) to a UTC Timestamp inside the supported
    years; ValueError otherwise, saying only what is wrong (the caller names the field or option and
    quotes the value: `parse_instant`, `api_models`)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:  # the standard library reads ISO-8601 only; pandas would also take "now" or "3 Nov"
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO-8601 time ({_EXAMPLE})") from None
    else:
        raise ValueError(f"expected an ISO-8601 timestamp string, got {type(value).__name__}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"needs a UTC offset or Z ({_EXAMPLE}): a time with no UTC offset is ambiguous")
    try:
        ts = pd.Timestamp(parsed).tz_convert("UTC")
        inside = _EARLIEST <= ts < _LATEST
    except (OverflowError, ValueError):  # beyond what pandas holds at all
        inside = False
    if not inside:
        raise ValueError("out of the supported range (years 1678 to 2261)")
    return ts.as_unit("ns")


def window_hours(
    start: pd.Timestamp, end: pd.Timestamp, max_days: float, names: tuple[str, str] = ("start", "end")
) -> pd.DatetimeIndex:
    """The candidate UTC hour starts of [start, end) for two `read_instant` instants; ValueError when
    the window is empty, too long or holds no clock hour (`names`: what the caller calls start and end)."""
    if end <= start:
        raise ValueError(f"{names[1]} ({utc_stamp(end)}) must be after {names[0]} ({utc_stamp(start)})")
    if end - start > pd.Timedelta(days=max_days):
        span = (end - start) / pd.Timedelta(days=1)
        raise ValueError(
            f"the window spans {span:.1f} days; at most {max_days:g} days (serving.max_window_days)"
        )
    hours = candidate_hours(start, end)
    if not len(hours):
        raise ValueError(
            f"the window {utc_stamp(start)} to {utc_stamp(end)} holds no clock-hour start:"
            " sends are planned on the hour"
        )
    return hours


def parse_instant(text: str, option: str) -> pd.Timestamp:
    """`read_instant` for a command-line option: the error names the option."""
    try:
        return read_instant(str(text))
    except ValueError as exc:
        raise ValueError(f"{option} {text!r}: {exc}") from None


def parse_window(start: str, end: str, campaign_time: str | None = None, max_days: float = 14) -> Window:
    """Validate --start/--end/--campaign-time: offsets required, end after start, at most `max_days` long."""
    t0, t1 = parse_instant(start, "--start"), parse_instant(end, "--end")
    hours = window_hours(t0, t1, max_days, names=("--start", "--end"))
    campaign = t0 if campaign_time is None else parse_instant(campaign_time, "--campaign-time")
    if not t0 <= campaign < t1:
        raise ValueError(f"--campaign-time {campaign_time!r} must be inside the window [{start}, {end})")
    index = int(hours.searchsorted(campaign, side="left"))
    if index >= len(hours):
        raise ValueError(
            f"--campaign-time {campaign_time!r}: no clock-hour start at or after it inside the window"
        )
    return Window(t0, t1, hours, campaign, index)


def channel_caps(max_per_hour: Mapping[str, int] | None) -> dict[int, int]:
    caps: dict[int, int] = {}
    for name, value in (max_per_hour or {}).items():
        key = str(name).strip().lower()
        if key not in S.CHANNELS:
            raise ValueError(f"--max-per-hour: unknown channel {name!r}; expected one of {list(S.CHANNELS)}")
        if value is None or int(value) < 0:
            raise ValueError(f"--max-per-hour {key}={value}: expected a whole number >= 0")
        caps[S.CHANNELS.index(key)] = int(value)
    return caps
