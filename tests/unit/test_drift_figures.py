"""The drift figures on tiny hand-made exports and profiles (training/drift.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.configs.settings import DriftSettings
from sendtime.training import drift

START = pd.Timestamp("2026-09-07T09:00:00Z")  # a Monday


def events(weeks: list[dict[str, tuple[int, int]]]) -> pd.DataFrame:
    """One week per entry: channel -> (sends, clicks), all on the week's Monday morning."""
    rows = []
    for w, week in enumerate(weeks):
        at = START + pd.Timedelta(days=7 * w)
        for channel, (sends, clicks) in week.items():
            rows += [(at, channel, S.SEND)] * sends + [
                (at + pd.Timedelta(hours=1), channel, S.CLICK)
            ] * clicks
    return pd.DataFrame(rows, columns=[S.TIMESTAMP, S.CHANNEL, S.EVENT_TYPE]).assign(**{S.ADDRESS: "a@x.org"})


def test_weekly_rates_are_clicks_per_send_by_monday_week():
    table = drift.weekly_engagement(events([{"email": (100, 20), "sms": (60, 15)}, {"email": (50, 0)}]))
    email = table[table["channel"] == "email"].set_index("week")["rate"]
    assert list(email) == pytest.approx([0.2, 0.0])
    assert list(email.index) == [pd.Timestamp("2026-09-07T00:00:00Z"), pd.Timestamp("2026-09-14T00:00:00Z")]
    sms = table[table["channel"] == "sms"]
    assert sms["rate"].tolist() == pytest.approx([0.25])
    few = drift.weekly_engagement(events([{"email": (49, 20)}]))  # a ragged end of an export: no rate
    assert few["sends"].tolist() == [49] and few["rate"].isna().all()


def test_a_large_real_change_warns_and_a_steady_rate_does_not():
    settings = DriftSettings(recent_weeks=2, min_sends=100)
    steady = events([{"email": (300, 30)}] * 5)
    m = drift.measure(steady, settings)
    assert m.metrics["engagement_change_email"] == pytest.approx(0.0)
    assert m.warnings == []
    dropped = events([{"email": (300, 30)}] * 3 + [{"email": (300, 9)}] * 2)
    m = drift.measure(dropped, settings)
    assert m.metrics["recent_rate_email"] == pytest.approx(0.03)
    assert m.metrics["earlier_rate_email"] == pytest.approx(0.10)
    assert m.metrics["engagement_change_email"] == pytest.approx(-0.7)
    assert m.metrics["engagement_z_email"] < -3
    assert len(m.warnings) == 1 and m.warnings[0].startswith("drift warning: email clicks per send 0.0300")
    assert "-70%" in m.warnings[0]


def test_a_large_change_on_few_sends_is_noise_not_a_warning():
    few = events([{"email": (100, 4)}] * 3 + [{"email": (100, 2)}] * 2)  # -50%, but z about -1
    m = drift.measure(few, DriftSettings(min_sends=100))
    assert m.metrics["engagement_change_email"] == pytest.approx(-0.5)
    assert abs(m.metrics["engagement_z_email"]) < 3
    assert m.warnings == []
    assert "engagement_change_email" not in drift.measure(few, DriftSettings(min_sends=500)).metrics


def test_profile_distance_total_variation_and_jensen_shannon():
    flat = np.ones((2, S.HOURS_PER_WEEK))
    assert drift.profile_distance(flat, 3 * flat)["profile_distance"] == pytest.approx(0.0)
    first, second = np.zeros((2, 168)), np.zeros((2, 168))
    first[:, :84], second[:, 84:] = 1.0, 1.0
    d = drift.profile_distance(first, second)
    assert d["profile_tv_email"] == pytest.approx(1.0) and d["profile_js_sms"] == pytest.approx(1.0)
    half = np.ones((2, 168))
    half[:, :84] = 3.0  # 3/4 of the mass in the first half against 1/2: TV 1/4
    assert drift.profile_distance(half, flat)["profile_tv_email"] == pytest.approx(0.25)


def test_profile_distance_beyond_the_limit_warns():
    first, second = np.ones((2, 168)), np.ones((2, 168))
    second[0, :84] = 3.0
    m = drift.measure(events([{"email": (1, 0)}]), DriftSettings(max_profile_distance=0.2), population=first,
                      reference=second)  # fmt: skip
    assert m.metrics["profile_tv_email"] == pytest.approx(0.25)
    assert m.metrics["profile_tv_sms"] == pytest.approx(0.0)
    assert len(m.warnings) == 1 and "email population hour-of-week profile is 0.250" in m.warnings[0]
    assert drift.measure(events([{"email": (1, 0)}]), DriftSettings(), population=first).warnings == []


def test_source_shares_count_the_people_reachable_on_each_channel():
    table = pd.DataFrame(
        {
            "has_email": [True, True, True, False],
            "has_sms": [False, True, True, True],
            "email_pattern_source": ["personal history", "cohort prior", "cohort prior", "personal history"],
            "sms_pattern_source": [
                "population prior",
                "linked profile",
                "population prior",
                "population prior",
            ],
        }
    )
    shares = drift.source_shares(table)
    assert shares["source_email_personal"] == pytest.approx(1 / 3)
    assert shares["source_email_cohort"] == pytest.approx(2 / 3)
    assert shares["source_sms_linked"] == pytest.approx(1 / 3)
    assert shares["source_sms_population"] == pytest.approx(2 / 3)
    assert shares["source_email_linked"] == 0.0


def test_plan_reasons_give_the_shares_of_planned_rows():
    plan = pd.DataFrame(
        {
            "channel": ["email", "email", "sms", "email", "email"],
            "reason": [
                "personal history; best hour",
                "new subscriber: cohort prior",
                "linked profile",
                "holdout: campaign time",
                "personal history",
            ],
            "planned": [True, True, True, True, False],
        }
    )
    shares = drift.reason_shares(plan)
    assert shares["source_email_personal"] == pytest.approx(0.5)
    assert shares["source_email_cohort"] == pytest.approx(0.5)
    assert shares["source_sms_linked"] == pytest.approx(1.0)
    assert drift.reason_shares(plan.drop(columns="reason")) == {}


def test_the_plot_is_drawn_even_before_anything_was_logged(tmp_path):
    from sendtime.training.drift_plot import plot

    path = plot(
        pd.DataFrame(), pd.DataFrame(columns=["week", "channel", "rate"]), DriftSettings(), tmp_path / "d.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
