import numpy as np
import pandas as pd
import pytest

from sendtime.features.local_time import (
    candidate_hours,
    infer_timezone_from_activity,
    local_clock,
    local_hour_of_week,
    local_hour_of_week_grid,
    resolve_timezones,
    timezones_from_phones,
)
from sendtime.schema import HOURS_PER_WEEK, SUBSCRIBER_ID, TIMEZONE, TZ_SOURCE

NY = "America/New_York"
SAT, MON = 5, 0


def _utc(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps), utc=True))


def test_new_york_hour_of_week_across_the_dst_change():
    # DST ends on Sunday 2026-11-01: 12:00 UTC is 08:00 EDT before and 07:00 EST after
    how = local_hour_of_week(_utc("2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z"), NY)
    assert how.dtype == np.int16
    assert how.tolist() == [SAT * 24 + 8, MON * 24 + 7]


def test_hour_of_week_per_row_timezone():
    ts = _utc("2026-07-01T12:00:00Z", "2026-07-01T12:00:00Z", "2026-01-05T00:30:00Z", "2026-07-01T12:00:00Z")
    tz = pd.Series(["Europe/Berlin", "Australia/Sydney", "Australia/Sydney", None])
    # Wednesday 14:00 CEST; Wednesday 22:00 AEST (no DST in July); Monday 11:30 AEDT (summer)
    assert local_hour_of_week(ts, tz).tolist() == [2 * 24 + 14, 2 * 24 + 22, 0 * 24 + 11, -1]


def test_naive_timestamps_mean_utc():
    naive = pd.Series(pd.to_datetime(["2026-10-31 12:00:00"]))
    assert local_hour_of_week(naive, NY).tolist() == [SAT * 24 + 8]


def test_local_clock_is_dst_correct():
    hour, weekday = local_clock(pd.DatetimeIndex(_utc("2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z")), NY)
    assert hour.tolist() == [8, 7]
    assert weekday.tolist() == [SAT, MON]


def test_candidate_hours_start_on_the_next_full_hour_and_exclude_the_end():
    hours = candidate_hours(pd.Timestamp("2026-11-03T05:20:00Z"), pd.Timestamp("2026-11-03T08:00:00Z"))
    assert [h.hour for h in hours] == [6, 7]
    assert str(hours.tz) == "UTC"
    assert len(candidate_hours(pd.Timestamp("2026-11-03T05:00Z"), pd.Timestamp("2026-11-10T05:00Z"))) == 168
    assert len(candidate_hours(pd.Timestamp("2026-11-03T05:00Z"), pd.Timestamp("2026-11-03T05:00Z"))) == 0
    assert len(candidate_hours(pd.Timestamp("2026-11-03T05:10Z"), pd.Timestamp("2026-11-03T05:50Z"))) == 0


def test_grid_matches_per_row_conversion():
    hours = candidate_hours(pd.Timestamp("2026-10-31T00:00Z"), pd.Timestamp("2026-11-03T00:00Z"))
    zones = np.array([NY, "Europe/Berlin", NY, "Australia/Sydney"], dtype=object)
    grid = local_hour_of_week_grid(hours, zones)
    assert grid.shape == (4, len(hours)) and grid.dtype == np.int16
    for row, zone in zip(grid, zones, strict=True):
        assert row.tolist() == local_hour_of_week(pd.Series(hours), zone).tolist()


def test_timezones_from_phones():
    phones = pd.Series(["+12125550123", "+13125550123", "+447911123456", None, "+12125550123"])
    assert timezones_from_phones(phones).tolist()[:3] == [NY, "America/Chicago", "Europe/London"]
    assert pd.isna(timezones_from_phones(phones).iloc[3])


def test_phone_whose_zones_disagree_tells_nothing():
    # a toll-free number lists every North American zone
    assert timezones_from_phones(pd.Series(["+18005550199"])).isna().all()


def _population_dist() -> np.ndarray:
    dist = np.full(HOURS_PER_WEEK, 0.2)
    for day in range(7):
        dist[day * 24 + 9] = 5.0  # everyone reads at 09:00 local
        dist[day * 24 + 20] = 2.0
    return dist / dist.sum()


def test_activity_recovers_a_known_offset():
    local = _population_dist()
    utc_counts = np.roll(np.round(local * 400), 5)  # local 09:00 at UTC-5 is 14:00 UTC
    sparse = np.zeros(HOURS_PER_WEEK)
    sparse[14] = 3
    candidates = ["Europe/London", NY, "America/Los_Angeles"]
    zones, margin = infer_timezone_from_activity(
        np.stack([utc_counts, sparse]), local, candidates, pd.Timestamp("2026-01-15T00:00Z"), min_events=20
    )
    assert zones.tolist() == [NY, None]
    assert margin[0] > 0 and np.isnan(margin[1])


def test_activity_uses_the_offset_at_the_reference_instant():
    local = _population_dist()
    utc_counts = np.roll(np.round(local * 400), 4)  # UTC-4: New York in summer
    zones, _ = infer_timezone_from_activity(
        utc_counts[None, :], local, ["America/Chicago", NY], pd.Timestamp("2026-07-15T00:00Z"), min_events=20
    )
    assert zones.tolist() == [NY]


def test_timezone_precedence():
    ids = pd.Series(["s1", "s2", "s3", "s4", "s5"])
    out = resolve_timezones(
        ids,
        table_tz=pd.Series(["Europe/Paris", None, "", None, None]),
        phone_tz=pd.Series([NY, "America/Chicago", None, None, None]),
        linked_tz=pd.Series([NY, NY, "Asia/Tokyo", None, None]),
        activity_tz=pd.Series([NY, NY, NY, "Europe/Berlin", None]),
        default="UTC",
    )
    assert list(out.columns) == [SUBSCRIBER_ID, TIMEZONE, TZ_SOURCE]
    assert out[SUBSCRIBER_ID].tolist() == ids.tolist()
    assert out[TIMEZONE].tolist() == ["Europe/Paris", "America/Chicago", "Asia/Tokyo", "Europe/Berlin", "UTC"]
    assert out[TZ_SOURCE].tolist() == ["subscribers_table", "phone", "linked_profile", "activity", "default"]
    assert out.attrs["invalid_timezones"] == 0


def test_invalid_table_timezone_falls_through_and_is_counted():
    out = resolve_timezones(
        pd.Series(["s1", "s2"]),
        table_tz=pd.Series(["Mars/Olympus_Mons", "EST+5"]),
        phone_tz=pd.Series([NY, None]),
        linked_tz=None,
        activity_tz=None,
        default="Europe/London",
    )
    assert out[TIMEZONE].tolist() == [NY, "Europe/London"]
    assert out[TZ_SOURCE].tolist() == ["phone", "default"]
    assert out.attrs["invalid_timezones"] == 2


def test_invalid_default_is_an_error():
    with pytest.raises(ValueError, match="Nowhere/Land"):
        resolve_timezones(pd.Series(["s1"]), None, None, None, None, default="Nowhere/Land")
