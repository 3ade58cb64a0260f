"""Quiet hours: federal window, state rules by area code, DST, and the overridable rules table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import PolicySettings
from sendtime.features.local_time import phone_zone_sets, timezones_from_phones
from sendtime.features.us_area_codes import state_for_phones
from sendtime.serving.quiet_hours import (
    load_rules,
    parse_days,
    parse_time,
    sms_allowed,
    zone_sets,
)


def _hours(start: str, periods: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq="h", tz="UTC")


def _allowed_utc_hours(hours: pd.DatetimeIndex, row: np.ndarray) -> list[str]:
    return [h.strftime("%m-%d %H") for h in hours[row]]


def _one(hours, tz, state, settings=None):
    rules = load_rules(settings or PolicySettings())
    return sms_allowed(hours, np.array([tz], dtype=object), np.array([state], dtype=object), rules)[0]


def test_new_york_federal_window_is_8_to_21_local():
    hours = _hours("2026-11-03T00:00Z", 24)  # Tuesday; New York is UTC-5 (EST)
    allowed = _one(hours, "America/New_York", "NY")
    # 00Z, 01Z = 19:00, 20:00 the evening before; 13Z..23Z = 08:00..18:00 local; 02Z = 21:00 is out
    assert np.flatnonzero(allowed).tolist() == [0, 1, *range(13, 24)]


def test_texas_sunday_only_from_noon_local():
    hours = _hours("2026-11-08T00:00Z", 48)  # Sunday 8 Nov; Dallas is UTC-6 (CST)
    state = state_for_phones(pd.Series(["+12145550123"]))[0]
    assert state == "TX"
    allowed = _one(hours, "America/Chicago", state)
    sunday = allowed[6:30]  # 06Z Sunday .. 05Z Monday = 00:00..23:00 local Sunday
    assert np.flatnonzero(sunday).tolist() == list(range(12, 21))  # 12:00-21:00 local
    monday = allowed[30:48]  # 00:00..17:00 local Monday
    assert np.flatnonzero(monday).tolist() == list(range(9, 18))  # from 09:00 on Mon-Sat
    # the same hours for a Chicago number in Illinois follow the federal window only
    illinois = _one(hours, "America/Chicago", "IL")[6:30]
    assert np.flatnonzero(illinois).tolist() == list(range(8, 21))


def test_connecticut_9_to_20():
    hours = _hours("2026-11-03T05:00Z", 24)  # 00:00..23:00 local in New York
    allowed = _one(hours, "America/New_York", "CT")
    assert np.flatnonzero(allowed).tolist() == list(range(9, 20))


def test_dst_change_in_new_york():
    # 1 Nov 2026 06:00Z: EDT (UTC-4) ends, EST (UTC-5) begins
    hours = _hours("2026-10-31T00:00Z", 48)
    allowed = _one(hours, "America/New_York", None)
    hits = _allowed_utc_hours(hours, allowed)
    assert "10-31 11" not in hits and "10-31 12" in hits  # 08:00 EDT = 12Z
    assert "11-01 00" in hits and "11-01 01" not in hits  # 20:00 EDT = 00Z, 21:00 EDT = 01Z
    assert "11-01 12" not in hits and "11-01 13" in hits  # 08:00 EST = 13Z after the change
    # 00Z = 20:00 on 30 Oct; 12Z..00Z = 08:00-20:00 EDT on 31 Oct; 13Z..23Z = 08:00-18:00 EST on 1 Nov
    assert np.flatnonzero(allowed).tolist() == [0, *range(12, 25), *range(37, 48)]


def test_rules_file_override_replaces_builtin(tmp_path):
    path = tmp_path / "rules.csv"
    path.write_text("# stricter company policy\nstate,days,start,end\nNY,all,10:00,18:00\n")
    settings = PolicySettings(state_rules_file=str(path))
    hours = _hours("2026-11-03T05:00Z", 24)  # local midnight onwards in New York
    assert np.flatnonzero(_one(hours, "America/New_York", "NY", settings)).tolist() == list(range(10, 18))
    # the replacement has no CT row: Connecticut falls back to the federal window
    assert np.flatnonzero(_one(hours, "America/New_York", "CT", settings)).tolist() == list(range(8, 21))


def test_rules_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("state,days,start\nNY,all,10:00\n")
    with pytest.raises(ValueError, match="missing column 'end'"):
        load_rules(PolicySettings(state_rules_file=str(path)))
    with pytest.raises(FileNotFoundError):
        load_rules(PolicySettings(state_rules_file=str(tmp_path / "nope.csv")))


def test_federal_window_from_settings():
    settings = PolicySettings(quiet_hours={"start": 9, "end": 20})
    hours = _hours("2026-11-03T05:00Z", 24)
    assert np.flatnonzero(_one(hours, "America/New_York", None, settings)).tolist() == list(range(9, 20))


def test_grouping_matches_per_subscriber_answers():
    hours = _hours("2026-11-08T00:00Z", 24)
    tzs = np.array(["America/Chicago", "America/New_York", None, "America/Chicago", ""], dtype=object)
    states = np.array(["TX", "ct", "TX", None, None], dtype=object)
    mask = sms_allowed(hours, tzs, states, load_rules(PolicySettings()))
    assert mask.shape == (5, 24)
    assert np.array_equal(mask[0], _one(hours, "America/Chicago", "TX"))
    assert np.array_equal(mask[1], _one(hours, "America/New_York", "CT"))
    assert not mask[2].any() and not mask[4].any()  # no timezone: no SMS
    assert np.array_equal(mask[3], _one(hours, "America/Chicago", None))


def test_unknown_timezone_is_an_error():
    with pytest.raises(ValueError, match="Mars/Olympus"):
        _one(_hours("2026-11-03T00:00Z", 2), "Mars/Olympus", None)


def test_state_for_phones():
    phones = pd.Series(
        [
            "+12125550123",
            "+13055550123",
            "+12145550123",
            "+12035550123",
            "+442071234567",
            "+14165550123",
            None,
        ]
    )
    states = state_for_phones(phones)
    assert states[:4].tolist() == ["NY", "FL", "TX", "CT"]
    assert states[4:].isna().all()  # London, Toronto, missing


def test_parse_days_and_times():
    assert parse_days("Mon-Sat") == [0, 1, 2, 3, 4, 5]
    assert parse_days("Sun") == [6]
    assert parse_days("all") == list(range(7))
    assert parse_days("Sat-Mon") == [0, 5, 6]
    assert parse_time("08:30") == 510 and parse_time("24:00") == 1440
    with pytest.raises(ValueError):
        parse_days("Funday")


# --- every zone the recipient may be in ---------------------------------------------------------


def test_a_zone_set_allows_only_hours_every_zone_allows():
    hours = _hours("2026-11-03T00:00Z", 48)  # Sydney is UTC+11 (AEDT), New York UTC-5
    both = _one(hours, "America/New_York|Australia/Sydney", None)
    assert np.array_equal(both, _one(hours, "America/New_York", None) & _one(hours, "Australia/Sydney", None))
    assert both.any()  # 21Z-01Z: 16:00-20:00 in New York, 08:00-12:00 in Sydney
    for at in hours[both]:
        for zone in ("America/New_York", "Australia/Sydney"):
            assert 8 <= at.tz_convert(zone).hour < 21
    # a state rule still applies on top of every zone
    tx = _one(hours, "America/Chicago|Europe/London", "TX")
    assert np.array_equal(tx, _one(hours, "America/Chicago", "TX") & _one(hours, "Europe/London", "TX"))


def test_zone_sets_union_the_columns_and_skip_blanks():
    a = np.array(["Europe/London", None, "", "America/Chicago|America/New_York", None], dtype=object)
    b = np.array(["America/New_York", None, "Asia/Tokyo", "America/Chicago", np.nan], dtype=object)
    c = np.array([None, None, None, "Europe/London", None], dtype=object)
    assert zone_sets(a, b, c).tolist() == [
        "America/New_York|Europe/London",
        None,
        "Asia/Tokyo",
        "America/Chicago|America/New_York|Europe/London",
        None,
    ]


def test_phone_zone_sets_keep_every_plausible_zone():
    numbers = pd.Series(
        ["+16175550123", "+12085550123", "+61412345678", "+18005550199", None, "+447911123456"]
    )
    single = timezones_from_phones(numbers)
    sets = phone_zone_sets(numbers, single).tolist()
    assert sets[0] == "America/New_York"  # Boston: one clock, nothing parsed again
    assert sets[1] == "America/Boise|America/Los_Angeles"  # Idaho's area code spans two clocks
    assert {"Australia/Perth", "Australia/Sydney", "Australia/Lord_Howe"} <= set(sets[2].split("|"))
    assert {"America/New_York", "Pacific/Honolulu", "America/St_Johns"} <= set(sets[3].split("|"))
    assert sets[4] is None
    assert sets[5] == "Europe/London"  # Guernsey, Jersey, Isle of Man: aliases of London
    # an Australian mobile may still be texted, in the hours all of Australia's clocks allow
    hours = _hours("2026-11-03T00:00Z", 24)
    allowed = _one(hours, sets[2], None)
    assert allowed.any() and not _one(hours, sets[3], None).all()
