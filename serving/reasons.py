"""The texts of a plan's `reason` column, defined once for the planner, its report and its tests.

A reason reads "<where the scores came from>; <what the policy or a limit did>" (`join_reasons`); the
summary (`plan_report`) counts rows without a send by these texts, so they must not drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime import schema as S

REASON_NO_CONTACT = "no contact"
REASON_INVALID_EMAIL = "invalid email"
REASON_INVALID_PHONE = "invalid phone"
REASON_HOLDOUT = "holdout: campaign time"
REASON_DUPLICATE = "duplicate: same subscriber as an earlier row (one send per person)"
REASON_NO_FEASIBLE = "no feasible hour (quiet hours)"
REASON_BUDGET = "sms budget exhausted"
REASON_CAP = "send-rate cap full"
REASON_BAD_ZONE = "invalid timezone (not an IANA name): no sms"
# what a shared limit changed in a row's per-row decision (after the base reason)
REASON_SMS_DEMOTED = f"{S.EMAIL}: {S.SMS} budget went to larger gains"
REASON_HOUR_MOVED = "hour moved by the send-rate cap"  # after "<channel>: "


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
