"""Which addresses may no longer be sent to (features/suppression.py), one rule at a time, on hand-made
event frames run through `extract_signals` exactly as the feature base runs them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.configs.settings import ProfileSettings, SignalSettings
from sendtime.features import suppression
from sendtime.features.signals import extract_signals
from sendtime.features.tables import parse_bounce_types

EMAIL, SMS = 0, 1
DAY0 = pd.Timestamp("2026-09-28T00:00:00Z")  # a Monday
AFTER = DAY0 + pd.Timedelta(days=60)  # an instant after every event below


def day(d: float) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(days=d, hours=14)


def events(*rows: tuple) -> pd.DataFrame:
    """(sub, channel, event_type, day[, bounce_type]) rows as the frame prepare.build_feature_base makes."""
    rows = [(*r, None) if len(r) == 4 else r for r in rows]
    df = pd.DataFrame(rows, columns=["sub", "channel", "event_type", "day", S.BOUNCE_TYPE])
    return pd.DataFrame(
        {
            "sub": df["sub"].astype(np.int32),
            "channel": df["channel"].astype(np.int8),
            "event_type": df["event_type"].astype(object),
            "at": pd.to_datetime([day(d) for d in df["day"]], utc=True),
            "message_id": pd.array([None] * len(df), dtype="string"),
            "machine_open": pd.array([None] * len(df), dtype="boolean"),
            S.BOUNCE_TYPE: parse_bounce_types(df[S.BOUNCE_TYPE], len(df)),
        }
    )


def judge(frame: pd.DataFrame, as_of: pd.Timestamp = AFTER, n: int = 1, **settings):
    optouts = extract_signals(frame, SignalSettings()).optouts
    return suppression.suppressed_as_of(optouts, as_of, n, ProfileSettings(**settings))


def sends_with_bounces(days: list[float], bounce_type: str | None = "soft", sub: int = 0) -> list[tuple]:
    rows = []
    for d in days:
        rows += [(sub, EMAIL, "send", d), (sub, EMAIL, "bounce", d + 0.001, bounce_type)]
    return rows


def test_a_hard_bounce_suppresses_the_address_and_says_when():
    suppressed, why = judge(events((0, EMAIL, "delivered", 0), *sends_with_bounces([9], "hard")))
    assert suppressed.tolist() == [[True, False]]
    assert why[0, EMAIL] == "hard bounce on 2026-10-07" and why[0, SMS] == ""


def test_an_unsubscribe_suppresses_the_channel_for_good():
    frame = events(
        (0, SMS, "click", 0), (0, SMS, "unsubscribe", 3), (0, SMS, "delivered", 10), (0, SMS, "click", 10)
    )
    suppressed, why = judge(frame)
    assert suppressed.tolist() == [[False, True]]
    assert why[0, SMS] == "unsubscribed on 2026-10-01"


def test_one_soft_bounce_does_not_suppress():
    suppressed, why = judge(events((0, EMAIL, "delivered", 0), *sends_with_bounces([5])))
    assert not suppressed.any() and why[0, EMAIL] == ""


def test_a_run_of_soft_bounces_over_enough_days_suppresses():
    suppressed, why = judge(events((0, EMAIL, "delivered", 0), *sends_with_bounces([2, 9, 16])))
    assert suppressed.tolist() == [[True, False]]
    assert why[0, EMAIL] == "3 bounces in a row since 2026-09-30"


def test_a_run_that_spans_too_few_days_does_not_suppress():
    # five bounces within 13 days: enough bounces, too short a span (a server down for a while)
    suppressed, _ = judge(events(*sends_with_bounces([0, 3, 6, 9, 13])))
    assert not suppressed.any()
    suppressed, _ = judge(events(*sends_with_bounces([0, 7, 14])))  # exactly 14 days: enough
    assert suppressed.tolist() == [[True, False]]


@pytest.mark.parametrize("success", ["delivered", "open", "click"])
def test_a_delivery_open_or_click_between_bounces_breaks_the_run(success):
    frame = events(*sends_with_bounces([0, 8]), (0, EMAIL, success, 10), *sends_with_bounces([12, 20]))
    suppressed, _ = judge(frame)
    assert not suppressed.any()  # two bounces, a success, two more: no run of three


@pytest.mark.parametrize("success", ["delivered", "open", "click"])
def test_a_later_success_makes_a_suppressed_address_reachable_again(success):
    bounces = sends_with_bounces([0, 8, 16])
    assert judge(events(*bounces))[0][0, EMAIL]
    suppressed, why = judge(events(*bounces, (0, EMAIL, success, 25)))
    assert not suppressed.any() and why[0, EMAIL] == ""


def test_a_success_on_the_other_channel_does_not_break_a_run():
    frame = events(*sends_with_bounces([0, 8, 16]), (0, SMS, "click", 10))
    assert judge(frame)[0].tolist() == [[True, False]]


def test_untyped_and_unknown_bounces_count_as_soft():
    for kind in (None, "", "block", "Transient"):
        frame = events((0, EMAIL, "delivered", 0), *sends_with_bounces([9], kind))
        assert not judge(frame)[0].any(), kind  # one bounce: not a hard one
        suppressed, why = judge(events(*sends_with_bounces([0, 8, 16], kind)))
        assert suppressed[0, EMAIL] and why[0, EMAIL].startswith("3 bounces in a row"), kind


def test_bounce_types_are_read_in_any_case_and_spacing():
    parsed = parse_bounce_types(pd.Series([" HARD", "Soft ", "hard", "", None, "permanent"]), 6)
    assert [None if pd.isna(v) else v for v in parsed] == ["hard", "soft", "hard", None, None, None]
    frame = events(*sends_with_bounces([3], " HARD "))
    assert judge(frame)[1][0, EMAIL] == "hard bounce on 2026-10-01"


def test_only_events_before_the_instant_count():
    frame = events(
        *sends_with_bounces([0, 8, 16]),  # a run complete on day 16
        (0, EMAIL, "delivered", 25),  # ended by a delivery on day 25
        (0, SMS, "delivered", 0),
        *[(0, SMS, "send", 30), (0, SMS, "bounce", 30.001, "hard")],
    )
    at = [day(d) for d in (15, 16.5, 25.5, 31)]
    states = [judge(frame, as_of=t)[0][0].tolist() for t in at]
    assert states == [[False, False], [True, False], [False, False], [False, True]]
    assert not judge(frame, as_of=day(30.001))[0][0, SMS]  # strictly before the instant


def test_an_unsubscribe_or_hard_bounce_outranks_a_run_and_the_earlier_one_is_given():
    frame = events(
        *sends_with_bounces([0, 8, 16]), (0, EMAIL, "unsubscribe", 20), *sends_with_bounces([22], "hard")
    )
    assert judge(frame)[1][0, EMAIL] == "unsubscribed on 2026-10-18"
    frame = events(*sends_with_bounces([5], "hard"), (0, EMAIL, "unsubscribe", 20))
    assert judge(frame)[1][0, EMAIL] == "hard bounce on 2026-10-03"


def test_the_run_length_and_span_are_settings():
    frame = events(*sends_with_bounces([0, 3]))
    assert not judge(frame)[0].any()
    suppressed, why = judge(frame, bounce_run=2, bounce_run_days=3)
    assert suppressed[0, EMAIL] and why[0, EMAIL] == "2 bounces in a row since 2026-09-28"
    assert not judge(frame, bounce_run=2, bounce_run_days=3.5)[0].any()


def test_people_are_judged_apart():
    frame = events(*sends_with_bounces([0, 8, 16], sub=0), *sends_with_bounces([0, 8], sub=1), (1, EMAIL, "open", 9),
                   *sends_with_bounces([16], sub=1))  # fmt: skip
    assert judge(frame, n=2)[0].tolist() == [[True, False], [False, False]]


def test_only_the_first_success_after_each_bounce_is_kept():
    frame = events(
        *[(0, EMAIL, "delivered", d) for d in range(5)],  # no bounce before them: not needed
        *sends_with_bounces([6]),
        *[(0, EMAIL, "delivered", 7 + d) for d in range(5)],  # only the first is needed
        (1, EMAIL, "delivered", 1),
    )
    optouts = extract_signals(frame, SignalSettings()).optouts
    assert optouts["kind"].tolist() == [suppression.BOUNCED, suppression.REACHED]
    assert optouts["at"].tolist() == [day(6.001), day(7)]


# --- the reason a plan and an answer give ---------------------------------------------------------------


def _audience(opted: list[list[bool]], why: list[list[str]], has: list[list[bool]] | None = None):
    from sendtime.serving.contacts import Audience

    n = len(opted)
    opted_out = np.array(opted, dtype=bool)
    given = np.ones((n, 2), dtype=bool) if has is None else np.array(has, dtype=bool)
    return Audience(
        subscriber_id=np.array([f"s{i}" for i in range(n)], dtype=object),
        rows=np.zeros((n, 2), dtype=np.int64),
        has=given & ~opted_out,
        invalid=np.zeros((n, 2), dtype=bool),
        opted_out=opted_out,
        timezone=np.full(n, "America/New_York", dtype=object),
        tz_source=np.full(n, "phone", dtype=object),
        state=np.full(n, None, dtype=object),
        cohort=np.zeros(n, dtype=np.int64),
        pattern=np.full((n, 2), "personal history", dtype=object),
        optout_reason=np.array(why, dtype=object),
    )


def test_the_profile_reason_becomes_the_channel_s_suppression_text():
    from sendtime.serving.contacts import _optout_reasons

    table = pd.DataFrame(
        {
            "email_optout_reason": ["hard bounce on 2026-10-07", "", "3 bounces in a row since 2026-09-30"],
            "sms_optout_reason": ["", "unsubscribed on 2026-10-01", ""],
        }
    )
    opted = np.array([[True, False], [False, True], [True, False]])
    assert _optout_reasons(table, opted).tolist() == [
        ["email suppressed: hard bounce on 2026-10-07", ""],
        ["", "sms suppressed: unsubscribed on 2026-10-01"],
        ["email suppressed: 3 bounces in a row since 2026-09-30", ""],
    ]
    # a snapshot made before the rules had reasons still says something true
    assert _optout_reasons(table.drop(columns="email_optout_reason"), opted)[0, 0] == "email opted out"


def test_the_api_answer_says_which_rule_left_a_subscriber_without_a_channel():
    from sendtime.serving.api import _unsent_reasons

    aud = _audience(
        [[True, True], [True, False], [False, False]],
        [["email suppressed: hard bounce on 2026-10-07", "sms suppressed: unsubscribed on 2026-10-01"],
         ["email suppressed: 3 bounces in a row since 2026-09-30", ""], ["", ""]],
        has=[[True, True], [True, False], [True, False]],
    )  # fmt: skip
    reasons = np.array(["", "", "personal history"], dtype=object)
    eligible = aud.has.copy()
    _unsent_reasons(reasons, aud, eligible, np.array([True, True]))
    assert reasons.tolist() == [
        "email suppressed: hard bounce on 2026-10-07; sms suppressed: unsubscribed on 2026-10-01",
        "email suppressed: 3 bounces in a row since 2026-09-30",
        "personal history",
    ]


def test_the_plan_says_which_rule_applied_and_the_summary_counts_rules_not_dates():
    from sendtime.serving.campaign import CampaignPlan
    from sendtime.serving.plan_report import _why_none
    from sendtime.serving.planner import _explain_unreachable

    aud = _audience(
        [[True, False], [False, True], [True, False]],
        [["email suppressed: hard bounce on 2026-10-07", ""], ["", "sms suppressed: unsubscribed on 2026-10-01"],
         ["email suppressed: 4 bounces in a row since 2026-09-30", ""]],
        has=[[True, False], [True, True], [True, False]],
    )  # fmt: skip
    n = 3
    plan = CampaignPlan(
        channel=np.array([-1, 0, -1], dtype=np.int8),
        hour=np.array([-1, 3, -1]),
        window_start=np.array([-1, 3, -1]),
        window_end=np.array([-1, 4, -1]),
        expected=np.array([np.nan, 0.1, np.nan]),
        reason=np.array(["", "personal history", ""], dtype=object),
        holdout=np.zeros(n, dtype=bool),
        explored=np.zeros(n, dtype=bool),
        propensity=np.full(n, np.nan),
    )
    _explain_unreachable(plan, aud, np.zeros(n, dtype=bool))
    assert plan.reason.tolist() == [
        "email suppressed: hard bounce on 2026-10-07",
        "personal history; sms suppressed: unsubscribed on 2026-10-01",
        "email suppressed: 4 bounces in a row since 2026-09-30",
    ]
    assert [_why_none(r) for r in plan.reason[[0, 2]]] == [
        "email suppressed: hard bounce",
        "email suppressed: bounces in a row",
    ]
