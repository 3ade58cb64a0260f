"""E-mail -> SMS follow-ups: best hour 4-8 h later, reasons for not sending, quiet hours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import PolicySettings
from sendtime.serving.followup import plan_followups
from sendtime.serving.quiet_hours import load_rules, sms_allowed

HOURS = pd.date_range("2026-11-03T14:00Z", periods=16, freq="h")  # 09:00 .. 00:00 New York (EST)
SENT = np.datetime64("2026-11-03T14:00", "ns")  # 09:00 local: candidates 18Z..22Z = 13:00..17:00 local


def _scores(peak_hour: int, peak: float = 0.08, base: float = 0.02) -> np.ndarray:
    row = np.full(len(HOURS), base)
    row[peak_hour] = peak
    return row


def _plan(
    n=1, scores=None, engaged=False, has_sms=True, email_expected=0.0, allowed=None, settings=None, sent=SENT
):
    scores = np.tile(_scores(6), (n, 1)) if scores is None else np.atleast_2d(scores)
    allowed = np.ones((n, len(HOURS)), dtype=bool) if allowed is None else allowed
    return plan_followups(
        email_sent_at=np.full(n, sent),
        engaged=np.full(n, engaged),
        has_sms=np.full(n, has_sms),
        sms_scores=scores,
        hour_starts=HOURS,
        sms_allowed=allowed,
        email_expected=np.full(n, email_expected),
        settings=settings or PolicySettings(),
    )


def test_best_hour_within_4_to_8_hours():
    plan = _plan(scores=_scores(6))  # 20:00Z, 6 h after the e-mail
    row = plan.iloc[0]
    assert list(plan.columns) == ["send", "send_at", "expected_engagement", "gain", "reason"]
    assert row["send"]
    assert row["send_at"] == pd.Timestamp("2026-11-03T20:00Z")
    assert row["expected_engagement"] == pytest.approx(0.08)
    assert row["gain"] == pytest.approx(0.08 - 0.01 - 0.0)


def test_peak_outside_window_is_ignored():
    plan = _plan(scores=_scores(2, peak=0.5))  # 2 h after the e-mail: too early for a follow-up
    assert plan.iloc[0]["send_at"] == pd.Timestamp("2026-11-03T18:00Z")  # first candidate (ties)
    assert plan.iloc[0]["expected_engagement"] == pytest.approx(0.02)


def test_no_sms_contact_engaged_and_low_gain_do_not_send():
    assert _plan(has_sms=False).iloc[0][["send", "reason"]].tolist() == [False, "no sms contact"]
    assert _plan(engaged=True).iloc[0][["send", "reason"]].tolist() == [False, "already engaged"]
    low = _plan(email_expected=0.07).iloc[0]  # 0.08 - 0.01 - 0.07 < 0.002
    assert not low["send"] and low["reason"] == "expected gain below threshold"
    assert low["gain"] == pytest.approx(-0.0)
    assert pd.isna(low["send_at"])
    assert _plan(sent=np.datetime64("NaT")).iloc[0]["reason"] == "no e-mail send"


def test_followup_respects_quiet_hours():
    # e-mail at 18:00 local (23:00Z); a 1-8 h window runs 19:00-02:00 local, SMS allowed before 21:00
    sent = np.datetime64("2026-11-03T23:00", "ns")
    rules = load_rules(PolicySettings())
    allowed = sms_allowed(
        HOURS, np.array(["America/New_York"], dtype=object), np.array(["NY"], dtype=object), rules
    )
    scores = _scores(12, peak=0.3)  # 02:00Z = 21:00 local: best score, but too late
    scores[11] = 0.05  # 01:00Z = 20:00 local
    wide = PolicySettings(followup_min_hours=1, followup_max_hours=8)
    row = _plan(scores=scores, allowed=allowed, settings=wide, sent=sent).iloc[0]
    assert row["send"] and row["send_at"] == pd.Timestamp("2026-11-04T01:00Z")
    # with the default 4-8 h every candidate (22:00-02:00 local) is inside quiet hours
    row = _plan(scores=scores, allowed=allowed, sent=sent).iloc[0]
    assert not row["send"] and row["reason"].startswith("no feasible sms hour")
    assert np.isnan(row["gain"])


def test_vectorised_rows_are_independent():
    scores = np.stack([_scores(5), _scores(7, peak=0.2)])
    plan = _plan(n=2, scores=scores)
    assert plan["send_at"].tolist() == [pd.Timestamp("2026-11-03T19:00Z"), pd.Timestamp("2026-11-03T21:00Z")]
    assert plan["expected_engagement"].tolist() == pytest.approx([0.08, 0.2])
