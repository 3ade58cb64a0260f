"""The SMS budget and the holdout of a batch campaign plan (`sendtime schedule`).

Per-row decisions (`policy.decide`) are optimal one subscriber at a time, but a campaign has shared
limits. Giving the scarce texts to whoever comes first in the file throws value away; these functions
hand them to the rows that gain most (the send-rate caps are `capacity.assign_hours`'s):

- `sms_gain`, `allocate_sms_budget`: exact top-k of the SMS gain over e-mail;
- `holdout_mask`: a reproducible control group keyed by subscriber.

Conventions: channel 0 = e-mail, 1 = SMS (`schema.CHANNELS`); a value of `-inf` marks an infeasible
cell (no contact, SMS quiet hours, outside the window); -1 means "no channel".
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

NO_CHANNEL = -1


def sms_gain(
    best_email: np.ndarray, best_sms: np.ndarray, sms_cost: float = 0.0, click_value: float = 1.0
) -> np.ndarray:
    """What sending SMS instead of the alternative is worth, per row (-inf where SMS is infeasible).

    The alternative is the best e-mail cell; for a row without e-mail (SMS-only) it is not sending,
    worth 0, so SMS-only rows compete for the budget on the same footing as everyone else.
    """
    email, sms = _as_vector("best_email", best_email), _as_vector("best_sms", best_sms)
    if email.shape != sms.shape:
        raise ValueError(f"best_email and best_sms: shapes differ, {email.shape} vs {sms.shape}")
    if not click_value > 0:
        raise ValueError(f"click_value must be positive, got {click_value}")
    alternative = np.where(np.isfinite(email), email, 0.0)
    with np.errstate(invalid="ignore"):
        gain = click_value * (sms - alternative) - sms_cost
    return np.where(np.isfinite(sms), gain, -np.inf)


def allocate_sms_budget(
    best_email: np.ndarray,
    best_sms: np.ndarray,
    max_sms: int | None,
    sms_cost: float = 0.0,
    click_value: float = 1.0,
) -> np.ndarray:
    """Channel per row (int8: 0 e-mail, 1 SMS, -1 none) that spends the SMS budget where it gains most.

    Rule: a row's SMS gain is `click_value * (best_sms - best_email) - sms_cost`; for a row with no
    e-mail contact it is `click_value * best_sms - sms_cost`, because its alternative is not sending.
    SMS goes to the rows with the largest positive gains, never more than `max_sms` of them
    (`None`: no budget, every row with a positive gain gets SMS). Ties at the budget's edge go to the
    earlier rows, so the plan is deterministic. Every other row gets e-mail if it has e-mail, else
    nothing (-1: an SMS-only row whose gain is not positive, or that the budget could not fund).

    Selecting the top k gains is exactly optimal for the budget alone: the rows' gains add up and
    one SMS is one unit of budget whatever the row.
    """
    gain = sms_gain(best_email, best_sms, sms_cost, click_value)
    has_email = np.isfinite(_as_vector("best_email", best_email))
    wanted = np.flatnonzero(gain > 0)
    if max_sms is not None:
        if max_sms < 0:
            raise ValueError(f"max_sms must be >= 0 or None, got {max_sms}")
        wanted = _top_k(wanted, gain[wanted], int(max_sms))
    channel = np.where(has_email, 0, NO_CHANNEL).astype(np.int8)
    channel[wanted] = 1
    return channel


def _top_k(rows: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """The k rows of highest score (rows ascending); ties at the k-th score go to the earlier rows."""
    if k >= len(rows):
        return rows
    if k == 0:
        return rows[:0]
    kth = score[np.argpartition(-score, k - 1)[k - 1]]
    above = rows[score > kth]
    tied = rows[score == kth][: k - len(above)]
    return np.sort(np.concatenate([above, tied]))


def holdout_mask(keys: pd.Series, share: float, seed: int) -> np.ndarray:
    """bool per row: True for the control group that gets no send.

    A row is held out when a hash of (seed, key) falls below `share`: the same subscriber is in the
    same group whatever the audience's order and size, and another seed draws another group. The
    key is compared as text, so 123 and "123" are the same subscriber.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"holdout share must be in [0, 1], got {share}")
    text = pd.Series(keys, copy=False).astype(str)
    hash_key = hashlib.blake2b(str(int(seed)).encode(), digest_size=8).hexdigest()  # 16 characters
    hashed = pd.util.hash_pandas_object(text, index=False, hash_key=hash_key).to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53) < share


def _as_vector(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{name}: contains NaN; use -inf for an infeasible channel")
    return a
