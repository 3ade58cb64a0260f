"""Every `reason` text, defined once: the API's decisions and follow-ups, a plan's rows, its report.

A reason reads "<where the scores came from>; <what the policy or a limit did>" (`join_reasons`); the
summary (`plan_report`) counts rows without a send by these texts, and the API and `sendtime schedule`
must say the same thing for the same row, so they must not drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime import schema as S

# why nothing is sent (standalone: the base reason says nothing useful here)
REASON_NO_CONTACT = "no contact"
REASON_NO_REQUESTED_CONTACT = "no contact on the requested channels"  # the API's `channels` left none
REASON_NO_FEASIBLE = "no feasible hour (quiet hours / fatigue)"
REASON_NOTHING = "no eligible channel or feasible hour"  # the caller did not say who has a contact
REASON_INVALID_EMAIL = "invalid email"
REASON_INVALID_PHONE = "invalid phone"
REASON_HOLDOUT = "holdout: campaign time"
REASON_DUPLICATE = "duplicate: same subscriber as an earlier row (one send per person)"
REASON_BUDGET = "sms budget exhausted"
REASON_CAP = "send-rate cap full"
REASON_BAD_ZONE = "invalid timezone (not an IANA name): no sms"
# what the per-row policy chose (`policy.decide`, after the base reason)
REASON_EMAIL_BEST = f"{S.EMAIL}: best value"
REASON_EMAIL_SMS_COST = f"{S.EMAIL}: {S.SMS} gain below its cost"
REASON_EMAIL_ONLY = f"{S.EMAIL}: only feasible channel"
REASON_SMS_BEST = f"{S.SMS}: best value after {S.SMS} cost"
REASON_SMS_ONLY = f"{S.SMS}: only feasible channel"
REASON_EXPLORE_EMAIL = f"exploration (random {S.EMAIL} hour)"  # after "<base> + "
REASON_EXPLORE_SMS = f"exploration (random {S.SMS} hour)"
# what a shared limit changed in a row's per-row decision (after the base reason)
REASON_SMS_DEMOTED = f"{S.EMAIL}: {S.SMS} budget went to larger gains"
REASON_HOUR_MOVED = "hour moved by the send-rate cap"  # after "<channel>: "

# e-mail -> SMS follow-ups (`followup.plan_followups`, the API's /followup)
REASON_FOLLOWUP_SEND = f"{S.SMS} follow-up: best hour after the e-mail"
REASON_FOLLOWUP_NO_EMAIL = "no e-mail send"
REASON_FOLLOWUP_NO_SMS = f"no {S.SMS} contact"
REASON_FOLLOWUP_ENGAGED = "already engaged"
REASON_FOLLOWUP_NO_HOUR = f"no feasible {S.SMS} hour in the follow-up window (quiet hours)"
REASON_FOLLOWUP_LOW_GAIN = "expected gain below threshold"


def join_reasons(base: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """'<base>; <policy>' per row ('<policy>' where base is empty), built once per distinct pair."""
    if not len(policy):
        return np.array([], dtype=object)
    b_codes, b_names = pd.factorize(pd.Series(base, dtype=object).fillna("").astype(str))
    p_codes, p_names = pd.factorize(pd.Series(policy, dtype=object).fillna("").astype(str))
    keys, inverse = np.unique(b_codes.astype(np.int64) * len(p_names) + p_codes, return_inverse=True)
    texts = []
    for key in keys:
        b, p = str(b_names[key // len(p_names)]), str(p_names[key % len(p_names)])
        texts.append(f"{b}; {p}" if b and p else (b or p))
    return np.array(texts, dtype=object)[inverse.reshape(-1)]


def fallback_reason(channel: np.ndarray, other: np.ndarray) -> np.ndarray:
    """ "<channel>: <other> send-rate cap full" per row: sent on its other channel because its own was full."""
    return channel + ": " + other + " " + REASON_CAP
