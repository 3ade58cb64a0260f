"""May this row be sent on this channel at this hour? One answer for the scheduler, the API and capture.

A cell (row, channel, hour) is feasible when the channel is eligible for the row (a usable contact that
no suppression rule ended, and asked for), the hour is one of the campaign window's candidate hours
(`hour_starts`), an SMS hour is allowed by quiet hours in every zone the row may be in (the phone
number's, the declared one, the profile's: `quiet_hours.sms_allowed`), and, where the caller knows the
last sends, the channel's fatigue spacing has passed (`policy.feasible_mask`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime.configs.settings import PolicySettings
from sendtime.serving.policy import feasible_mask
from sendtime.serving.quiet_hours import load_rules, sms_allowed


def feasible_cells(
    audience,
    hour_starts: pd.DatetimeIndex,
    policy: PolicySettings,
    *,
    eligible: np.ndarray | None = None,
    last_sent: np.ndarray | None = None,
    rules=None,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """bool [n, 2, H] for a resolved `Audience` (its `has`, `sms_zones` and `state`).

    `eligible[n, 2]`: the channels that may be used (default: every usable contact, `audience.has`);
    `last_sent[n, 2]`: the channels' last sends, for the fatigue guard (None: no guard); `rules`: the
    state quiet-hour rules (default: `load_rules(policy)`); `allowed[n, H]`: the SMS quiet-hours mask
    when the caller has it already (the API memoises it per zone).
    """
    if allowed is None:
        rules = load_rules(policy) if rules is None else rules
        allowed = sms_allowed(hour_starts, audience.sms_zones, audience.state, rules)
    eligible = audience.has if eligible is None else eligible
    return feasible_mask(eligible, allowed, hour_starts, last_sent, policy)
