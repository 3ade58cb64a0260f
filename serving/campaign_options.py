"""The campaign's options as `sendtime schedule` takes them: the window (--start, --end,
--campaign-time) and the send-rate caps (--max-per-hour), validated with errors that name the option."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from sendtime import schema as S
from sendtime.features.local_time import candidate_hours


@dataclass(frozen=True)
class Window:
    """The campaign window: candidate UTC hour starts in [start, end) and the campaign's plain send hour."""

    start: pd.Timestamp
    end: pd.Timestamp
    hours: pd.DatetimeIndex
    campaign_time: pd.Timestamp
    campaign_hour: int  # index into hours: the first hour start at or after campaign_time


def parse_instant(text: str, option: str) -> pd.Timestamp:
    """An ISO-8601 instant that carries its offset (or Z), as a UTC Timestamp; errors name the option."""
    try:
        ts = pd.Timestamp(str(text).strip())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{option} {text!r}: not an ISO-8601 time (e.g. 2026-11-03T05:00:00Z)") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"{option} {text!r}: not an ISO-8601 time (e.g. 2026-11-03T05:00:00Z)")
    try:  # pandas reads years up to 9999, but every plan and model time is in nanoseconds
        ts = ts.as_unit("ns")
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{option} {text!r}: out of the supported range (years 1678 to 2261)") from exc
    if ts.tz is None:
        raise ValueError(
            f"{option} {text!r}: needs a UTC offset or Z (e.g. 2026-11-03T05:00:00Z or 2026-11-03T00:00:00-05:00);"
            " a time without one is ambiguous"
        )
    return ts.tz_convert("UTC")


def parse_window(start: str, end: str, campaign_time: str | None = None, max_days: float = 14) -> Window:
    """Validate --start/--end/--campaign-time: offsets required, end after start, at most `max_days` long."""
    t0, t1 = parse_instant(start, "--start"), parse_instant(end, "--end")
    if t1 <= t0:
        raise ValueError(f"--end {end!r} must be after --start {start!r}")
    if t1 - t0 > pd.Timedelta(days=max_days):
        raise ValueError(
            f"window {start} to {end} is {(t1 - t0) / pd.Timedelta(days=1):.1f} days; at most {max_days:g} days"
        )
    hours = candidate_hours(t0, t1)
    if not len(hours):
        raise ValueError(f"window {start} to {end} holds no clock-hour start: sends are planned on the hour")
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
