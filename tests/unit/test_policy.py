"""Decision policy: argmax by value, SMS cost, quiet hours, fatigue, windows, exploration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import PolicySettings
from sendtime.serving.policy import decide, decisions_to_frame, eligibility, feasible_mask

EMAIL, SMS = 0, 1
HOURS = pd.date_range("2026-11-03T13:00Z", periods=4, freq="h")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _all_feasible(scores: np.ndarray) -> np.ndarray:
    return np.ones(scores.shape, dtype=bool)


def test_argmax_choice():
    scores = np.array([[[0.01, 0.05, 0.02, 0.01], [0.00, 0.00, 0.00, 0.00]]])
    feasible = np.array([[[True] * 4, [False] * 4]])
    d = decide(scores, feasible, PolicySettings(), _rng(), base_reasons=np.array(["personal history"]))
    assert (d.channel[0], d.hour[0]) == (EMAIL, 1)
    assert d.expected[0] == pytest.approx(0.05)
    assert (d.window_start[0], d.window_end[0]) == (1, 2)
    assert not d.explored[0] and d.propensity[0] == pytest.approx(1.0)
    assert d.reason[0] == "personal history; email: only feasible channel"


def test_sms_cost_flips_channel_when_sms_only_slightly_better():
    scores = np.array([[[0.040, 0.0, 0.0, 0.0], [0.045, 0.0, 0.0, 0.0]]])
    feasible = _all_feasible(scores)
    cheap = decide(scores, feasible, PolicySettings(sms_cost=0.0), _rng())
    assert cheap.channel[0] == SMS and cheap.reason[0] == "sms: best value after sms cost"
    costly = decide(scores, feasible, PolicySettings(sms_cost=0.01), _rng())  # 0.045 - 0.01 < 0.040
    assert costly.channel[0] == EMAIL and costly.expected[0] == pytest.approx(0.040)
    assert costly.reason[0] == "email: sms gain below its cost"
    # a click worth more makes the SMS pay again: 10 * 0.045 - 0.01 > 10 * 0.040
    valuable = decide(scores, feasible, PolicySettings(sms_cost=0.01, click_value=10), _rng())
    assert valuable.channel[0] == SMS


def test_quiet_hours_force_a_later_hour():
    scores = np.array([[[0.0] * 4, [0.09, 0.08, 0.05, 0.01]]])
    eligible = eligibility(np.array([False]), np.array([True]), None)
    allowed = np.array([[False, False, True, True]])  # the best hours are before 08:00 local
    feasible = feasible_mask(eligible, allowed, HOURS, None, PolicySettings())
    d = decide(scores, feasible, PolicySettings(), _rng(), eligible=eligible)
    assert (d.channel[0], d.hour[0]) == (SMS, 2)
    assert d.expected[0] == pytest.approx(0.05)


def test_fatigue_guard():
    eligible = np.array([[True, True]])
    allowed = np.ones((1, 4), dtype=bool)
    # e-mail sent 11 h before the first candidate hour (spacing 12 h), SMS 23 h before (spacing 24 h)
    last = np.array([["2026-11-03T02:00", "2026-11-02T14:00"]], dtype="datetime64[ns]")
    feasible = feasible_mask(eligible, allowed, HOURS, last, PolicySettings())
    assert feasible[0, EMAIL].tolist() == [False, True, True, True]
    assert feasible[0, SMS].tolist() == [False, True, True, True]
    never = np.array([["NaT", "NaT"]], dtype="datetime64[ns]")
    assert feasible_mask(eligible, allowed, HOURS, never, PolicySettings()).all()
    scores = np.array([[[0.09, 0.01, 0.01, 0.01], [0.0] * 4]])
    d = decide(scores, feasible, PolicySettings(), _rng())
    assert (d.channel[0], d.hour[0]) == (EMAIL, 1)


def test_eligibility_from_contacts_and_requested_channels():
    has_email = np.array([True, True, False, False])
    has_sms = np.array([True, False, True, False])
    assert eligibility(has_email, has_sms, None).tolist() == [
        [True, True],
        [True, False],
        [False, True],
        [False, False],
    ]
    assert eligibility(has_email, has_sms, ["SMS"]).tolist() == [
        [False, True],
        [False, False],
        [False, True],
        [False, False],
    ]
    with pytest.raises(ValueError, match="push"):
        eligibility(has_email, has_sms, ["push"])


def test_no_contact_and_no_feasible_hour():
    scores = np.full((2, 2, 4), 0.05)
    eligible = np.array([[False, False], [False, True]])
    allowed = np.zeros((2, 4), dtype=bool)  # SMS all inside quiet hours
    feasible = feasible_mask(eligible, allowed, HOURS, None, PolicySettings())
    d = decide(
        scores,
        feasible,
        PolicySettings(),
        _rng(),
        base_reasons=np.array(["cohort prior"] * 2),
        eligible=eligible,
    )
    assert d.channel.tolist() == [-1, -1] and d.hour.tolist() == [-1, -1]
    assert d.reason.tolist() == ["no contact", "no feasible hour (quiet hours / fatigue)"]
    assert np.isnan(d.expected).all() and np.isnan(d.propensity).all()
    frame = decisions_to_frame(d, HOURS)
    assert frame["channel"].isna().all() and frame["send_at"].isna().all()


def test_window_of_three_picks_best_span_containing_the_hour():
    # e-mail scores; chosen hour 3 (0.10); spans containing it: [1,4) 0.17, [2,5) 0.20, [3,6) 0.18
    email = [0.00, 0.05, 0.02, 0.10, 0.08, 0.00, 0.09]
    scores = np.array([[email, [0.0] * 7]])
    feasible = np.array([[[True] * 7, [False] * 7]])
    d = decide(scores, feasible, PolicySettings(window_hours=3), _rng())
    assert d.hour[0] == 3
    assert (d.window_start[0], d.window_end[0]) == (2, 5)


def test_window_is_clipped_at_grid_edges_and_quiet_hours():
    scores = np.array([[[0.0] * 5, [0.09, 0.08, 0.07, 0.01, 0.02]]])
    feasible = np.array([[[False] * 5, [True, True, True, True, False]]])
    d = decide(scores, feasible, PolicySettings(window_hours=3), _rng())
    assert (d.hour[0], d.window_start[0], d.window_end[0]) == (0, 0, 3)  # grid edge
    feasible = np.array([[[False] * 5, [False, True, True, False, True]]])
    d = decide(scores, feasible, PolicySettings(window_hours=3), _rng())
    assert (d.hour[0], d.window_start[0], d.window_end[0]) == (1, 1, 3)  # stays in the feasible run


def test_exploration_share_zero_never_explores():
    scores = _rng(1).random((200, 2, 6))
    d = decide(scores, _all_feasible(scores), PolicySettings(), _rng(), explore_share=0.0)
    assert not d.explored.any()
    assert d.propensity == pytest.approx(np.ones(200))
    best = (scores - np.array([0.0, 0.01])[None, :, None]).reshape(200, -1).argmax(axis=1)
    assert np.array_equal(d.channel * 6 + d.hour, best)


def test_exploration_share_one_always_explores_with_right_propensity():
    scores = _rng(2).random((50, 2, 6))
    feasible = _all_feasible(scores)
    feasible[:, SMS, :3] = False  # 9 feasible cells per subscriber
    d = decide(
        scores,
        feasible,
        PolicySettings(),
        _rng(7),
        explore_share=1.0,
        base_reasons=np.array(["population prior"] * 50),
    )
    assert d.explored.all()
    assert feasible[np.arange(50), d.channel, d.hour].all()
    assert d.propensity == pytest.approx(np.full(50, 1 / 9))
    assert d.reason[0].startswith("population prior + exploration (random ")
    again = decide(scores, feasible, PolicySettings(), _rng(7), explore_share=1.0)
    assert np.array_equal(d.channel, again.channel) and np.array_equal(d.hour, again.hour)


def test_explored_share_close_to_setting_and_propensity_consistent():
    n = 10_000
    scores = _rng(3).random((n, 2, 4))
    settings = PolicySettings(explore_share=0.1)
    d = decide(scores, _all_feasible(scores), settings, _rng(11))
    assert d.explored.mean() == pytest.approx(0.1, abs=0.01)
    greedy = decide(scores, _all_feasible(scores), settings, _rng(11), explore_share=0.0)
    on_argmax = (d.channel == greedy.channel) & (d.hour == greedy.hour)
    assert d.propensity[on_argmax] == pytest.approx(np.full(on_argmax.sum(), 0.9 + 0.1 / 8))
    assert d.propensity[~on_argmax] == pytest.approx(np.full((~on_argmax).sum(), 0.1 / 8))


def test_decisions_to_frame():
    scores = np.array([[[0.01, 0.05, 0.02, 0.01], [0.0] * 4]])
    d = decide(scores, _all_feasible(scores), PolicySettings(window_hours=2), _rng())
    frame = decisions_to_frame(d, HOURS)
    row = frame.iloc[0]
    assert list(frame.columns) == [
        "channel",
        "send_at",
        "window_start",
        "window_end",
        "expected_engagement",
        "reason",
        "explored",
        "propensity",
    ]
    assert row["channel"] == "email"
    assert row["send_at"] == pd.Timestamp("2026-11-03T14:00Z")
    assert (row["window_start"], row["window_end"]) == (
        pd.Timestamp("2026-11-03T14:00Z"),
        pd.Timestamp("2026-11-03T16:00Z"),
    )
    assert row["expected_engagement"] == pytest.approx(0.05)
