"""The new-user export check judges texts by every zone the number may be in, from `phonenumbers`."""

from __future__ import annotations

import pandas as pd

from sendtime.experiments.bench_export import number_zones, outside_quiet_hours


def test_number_zones_come_from_the_number():
    mobile = number_zones("+61412345678")  # an Australian mobile may be in any of the country's zones
    assert "Australia/Sydney" in mobile and "Australia/Perth" in mobile
    assert number_zones("+442079460000") == ["Europe/London"]
    assert number_zones("not a number") == []


def test_a_text_is_outside_when_any_zone_of_the_number_forbids_its_hour():
    at = pd.to_datetime(
        ["2026-11-03T14:00:00Z", "2026-11-03T02:00:00Z", "2026-11-03T20:30:00Z", "2026-11-03T14:00:00Z"],
        utc=True,
    )
    phones = pd.Series(["+442079460000", "+442079460000", "+442079460000", "+12125550123"])
    true_zones = pd.Series(["", None, "", "Australia/Sydney"])  # the person's own zone counts too
    # London 14:00 fine; London 02:00 not; London 20:30 ends after 21:00; New York 09:00 but Sydney 01:00
    assert outside_quiet_hours(pd.Series(at), phones, true_zones).tolist() == [False, True, True, True]
