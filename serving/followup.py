"""E-mail -> SMS recovery: a text to people who have not answered an e-mail, when it pays.

An e-mail waits in the inbox; after a few hours without a click, an SMS (seen at once) can recover
some of those people. It costs money and attention, so it goes out only when its expected gain clears
a threshold, only inside quiet hours, and only once the e-mail has had time to work.

Gain of a follow-up at the best SMS hour (a deliberately conservative variant):

    gain = click_value * p_sms - sms_cost - click_value * email_expected

`p_sms` is the SMS score at that hour; `email_expected` is the probability that the e-mail still yields
a click without help. Subtracting it all assumes the SMS click would have come anyway from those who
were going to click the e-mail (full cannibalisation), so we never text people the e-mail would have
reached, at the price of skipping some sends that would have paid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime.configs.settings import PolicySettings
from sendtime.schema import EXPECTED_ENGAGEMENT, REASON, SEND_AT
from sendtime.serving.quiet_hours import utc_hours, utc_instants
from sendtime.serving.reasons import (
    REASON_FOLLOWUP_ENGAGED,
    REASON_FOLLOWUP_LOW_GAIN,
    REASON_FOLLOWUP_NO_EMAIL,
    REASON_FOLLOWUP_NO_HOUR,
    REASON_FOLLOWUP_NO_SMS,
    REASON_FOLLOWUP_SEND,
)

FOLLOWUP_SEND = "send"
FOLLOWUP_GAIN = "gain"


def plan_followups(
    email_sent_at: np.ndarray,
    engaged: np.ndarray,
    has_sms: np.ndarray,
    sms_scores: np.ndarray,
    hour_starts: pd.DatetimeIndex,
    sms_allowed: np.ndarray,
    email_expected: np.ndarray,
    settings: PolicySettings,
) -> pd.DataFrame:
    """One row per e-mail recipient: columns send, send_at (UTC or NaT), expected_engagement, gain, reason.

    Candidate hours are the hour starts in [sent + followup_min_hours, sent + followup_max_hours]
    where `sms_allowed` (quiet hours, and any fatigue limit the caller folds in) permits a text; the
    one with the highest SMS score is chosen. expected_engagement and gain are reported whenever a
    candidate hour exists (also when the gain is too low, so the decision can be read), else NaN;
    send_at is set only when `send` is True. `email_expected` NaN counts as 0.
    """
    hours = utc_hours(hour_starts)
    n, n_hours = len(np.asarray(engaged)), len(hours)
    sms_scores = np.asarray(sms_scores, dtype=float)
    sms_allowed = np.asarray(sms_allowed, dtype=bool)
    for name, array in (("sms_scores", sms_scores), ("sms_allowed", sms_allowed)):
        if array.shape != (n, n_hours):
            raise ValueError(f"{name}: expected shape {(n, n_hours)}, got {array.shape}")
    engaged = np.asarray(engaged, dtype=bool).reshape(-1)
    has_sms = np.asarray(has_sms, dtype=bool).reshape(-1)
    email_expected = np.nan_to_num(np.asarray(email_expected, dtype=float), nan=0.0).reshape(-1)
    sent = utc_instants(email_sent_at).reshape(-1)
    for name, array in (("email_sent_at", sent), ("has_sms", has_sms), ("email_expected", email_expected)):
        if len(array) != n:
            raise ValueError(f"{name}: expected {n} entries (one per subscriber), got {len(array)}")

    earliest = sent + _hours(settings.followup_min_hours)  # NaT stays NaT
    latest = sent + _hours(settings.followup_max_hours)
    hour_ns = hours.tz_localize(None).values
    # comparisons with NaT are False, so an e-mail without a send time has no candidate hour
    candidate = (hour_ns[None, :] >= earliest[:, None]) & (hour_ns[None, :] <= latest[:, None]) & sms_allowed

    has_hour = candidate.any(axis=1)
    best = np.where(candidate, sms_scores, -np.inf).argmax(axis=1) if n_hours else np.zeros(n, dtype=np.int64)
    evaluate = has_sms & ~engaged & has_hour
    p_sms = np.where(evaluate, sms_scores[np.arange(n), best] if n_hours else np.nan, np.nan)
    gain = settings.click_value * p_sms - settings.sms_cost - settings.click_value * email_expected
    send = evaluate & (gain >= settings.followup_min_gain)

    reason = np.select(
        [~has_sms, engaged, np.isnat(sent), ~has_hour, ~send],
        [
            REASON_FOLLOWUP_NO_SMS,
            REASON_FOLLOWUP_ENGAGED,
            REASON_FOLLOWUP_NO_EMAIL,
            REASON_FOLLOWUP_NO_HOUR,
            REASON_FOLLOWUP_LOW_GAIN,
        ],
        REASON_FOLLOWUP_SEND,
    ).astype(object)
    send_at = hours[best] if n_hours else pd.DatetimeIndex([pd.NaT] * n, tz="UTC")
    return pd.DataFrame(
        {
            FOLLOWUP_SEND: send,
            SEND_AT: pd.DatetimeIndex(send_at).where(send),
            EXPECTED_ENGAGEMENT: p_sms,
            FOLLOWUP_GAIN: gain,
            REASON: reason,
        }
    )


def _hours(hours: float) -> np.timedelta64:
    return np.timedelta64(round(hours * 3600e9), "ns")
