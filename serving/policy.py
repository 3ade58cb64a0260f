"""The decision policy: from a score grid to one (channel, hour) per subscriber.

Pure NumPy over `scores[n, 2, H]` (channel 0 = e-mail, 1 = SMS as in `schema.CHANNELS`; H candidate
UTC hour starts), shared by the HTTP API and the batch scheduler so both decide identically.

- `eligibility`: which channels a subscriber may get at all (a contact, and asked for);
- `feasible_mask`: which (channel, hour) cells are allowed (eligibility, SMS quiet hours, fatigue);
- `decide`: the best feasible cell by expected value (a click is worth `click_value`, an SMS costs
  `sms_cost`), the best window around it, and optional exploration with logged propensities so that
  later models can learn from sends at varied times without send-time bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sendtime.configs.settings import PolicySettings
from sendtime.schema import CHANNELS, EMAIL, SMS
from sendtime.serving import reasons as R
from sendtime.serving.quiet_hours import utc_hours, utc_instants

NO_CHANNEL = -1
_REASONS_BY_ROW = 64  # up to this many rows, reasons are composed row by row
_EXPLORE_CHUNK = 65_536  # rows per block when drawing random cells, to bound memory

# policy part of a reason (texts in `reasons`); the caller's base reason (where the scores came from) goes in front
_NO_CONTACT, _NO_FEASIBLE, _NOTHING = 0, 1, 2
_EMAIL_BEST, _EMAIL_SMS_COST, _EMAIL_ONLY = 3, 4, 5
_SMS_BEST, _SMS_ONLY = 6, 7
_EXPLORE_EMAIL, _EXPLORE_SMS = 8, 9
_REASON_TEXT = {
    _NO_CONTACT: R.REASON_NO_CONTACT,
    _NO_FEASIBLE: R.REASON_NO_FEASIBLE,
    _NOTHING: R.REASON_NOTHING,
    _EMAIL_BEST: R.REASON_EMAIL_BEST,
    _EMAIL_SMS_COST: R.REASON_EMAIL_SMS_COST,
    _EMAIL_ONLY: R.REASON_EMAIL_ONLY,
    _SMS_BEST: R.REASON_SMS_BEST,
    _SMS_ONLY: R.REASON_SMS_ONLY,
    _EXPLORE_EMAIL: R.REASON_EXPLORE_EMAIL,
    _EXPLORE_SMS: R.REASON_EXPLORE_SMS,
}
_STANDALONE = (_NO_CONTACT, _NO_FEASIBLE, _NOTHING)  # the base reason says nothing useful here
_EXPLORED = (_EXPLORE_EMAIL, _EXPLORE_SMS)


@dataclass
class Decisions:
    """One decision per subscriber; every field is an array of length n."""

    channel: np.ndarray  # int8: 0 email, 1 sms, -1 nothing eligible or feasible
    hour: np.ndarray  # index into hour_starts, -1 when channel == -1
    window_start: np.ndarray  # index of the best window's first hour, -1 when channel == -1
    window_end: np.ndarray  # index one past its last hour, -1 when channel == -1
    expected: np.ndarray  # score at the chosen (channel, hour); NaN when channel == -1
    reason: np.ndarray  # object strings
    explored: np.ndarray  # bool
    propensity: np.ndarray  # probability the policy had of choosing this cell; NaN when channel == -1

    def __len__(self) -> int:
        return len(self.channel)


def eligibility(
    has_email: np.ndarray, has_sms: np.ndarray, channels_requested: list[str] | None
) -> np.ndarray:
    """bool [n, 2]: a channel is eligible when the subscriber has its contact and it was asked for.

    `channels_requested=None` means every channel with a contact (the API's default).
    """
    eligible = np.stack([np.asarray(has_email, dtype=bool), np.asarray(has_sms, dtype=bool)], axis=1)
    if channels_requested is None:
        return eligible
    wanted = {str(c).strip().lower() for c in channels_requested}
    unknown = wanted.difference(CHANNELS)
    if unknown:
        raise ValueError(f"channels: unknown channel(s) {sorted(unknown)}; expected {list(CHANNELS)}")
    return eligible & np.array([c in wanted for c in CHANNELS])


def feasible_mask(
    eligible: np.ndarray,
    sms_allowed: np.ndarray,
    hour_starts: pd.DatetimeIndex,
    last_sent: np.ndarray | None,
    settings: PolicySettings,
) -> np.ndarray:
    """bool [n, 2, H]: may we send on channel c at hour j?

    Eligible channel; SMS only where quiet hours allow (`sms_allowed[n, H]`); and the fatigue guard:
    no hour earlier than the channel's last send plus `min_spacing_hours[channel]` (NaT: never sent).
    """
    eligible = np.asarray(eligible, dtype=bool)
    sms_allowed = np.asarray(sms_allowed, dtype=bool)
    hours = utc_hours(hour_starts)
    n, n_hours = len(eligible), len(hours)
    _expect_shape("eligible", eligible, (n, len(CHANNELS)))
    _expect_shape("sms_allowed", sms_allowed, (n, n_hours))
    feasible = np.broadcast_to(eligible[:, :, None], (n, len(CHANNELS), n_hours)).copy()
    feasible[:, CHANNELS.index(SMS)] &= sms_allowed
    if last_sent is not None:
        last = utc_instants(last_sent)
        _expect_shape("last_sent", last, (n, len(CHANNELS)))
        spacing = np.array([_hours(settings.min_spacing_hours.get(c, 0.0)) for c in CHANNELS])
        earliest = (last + spacing)[:, :, None]
        hour_ns = hours.tz_localize(None).values.astype("datetime64[ns]")[None, None, :]
        feasible &= (hour_ns >= earliest) | np.isnat(earliest)  # NaT: never sent, no limit
    return feasible


def decide(
    scores: np.ndarray,
    feasible: np.ndarray,
    settings: PolicySettings,
    rng: np.random.Generator,
    explore_share: float | None = None,
    base_reasons: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
) -> Decisions:
    """Choose one (channel, hour) per subscriber.

    Value of a cell = click_value * score - cost (sms_cost for SMS, 0 for e-mail); the feasible cell of
    highest value wins (ties: e-mail, then the earliest hour, so the answer is deterministic). With
    probability `explore_share` (default `settings.explore_share`) a subscriber instead gets a uniformly
    random feasible cell; `propensity` is the true probability of the chosen cell under this policy,
    share/k + (1 - share) * [cell is the argmax], k = number of feasible cells, for unbiased off-policy
    learning. `eligible [n, 2]` (optional) tells "no contact" apart from "no feasible hour" in reasons.
    """
    scores = np.asarray(scores)
    scores = scores if np.issubdtype(scores.dtype, np.floating) else scores.astype(float)
    feasible = np.asarray(feasible, dtype=bool)
    if scores.ndim != 3 or scores.shape[1] != len(CHANNELS):
        raise ValueError(f"scores: expected shape [n, {len(CHANNELS)}, H], got {scores.shape}")
    _expect_shape("feasible", feasible, scores.shape)
    if np.isnan(scores).any():
        raise ValueError("scores: contains NaN; the predictor must give a probability for every cell")
    share = settings.explore_share if explore_share is None else float(explore_share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"explore_share must be in [0, 1], got {share}")
    n, n_channels, n_hours = scores.shape

    costs = _channel_costs(settings)
    value = settings.click_value * scores - costs.astype(scores.dtype)[None, :, None]
    value[~feasible] = -np.inf  # one array for both the argmax and the reasons: n * 2 * H can be large
    flat_feasible = feasible.reshape(n, n_channels * n_hours)
    n_feasible = flat_feasible.sum(axis=1)
    decided = n_feasible > 0
    best_cell = value.reshape(n, -1).argmax(axis=1) if n and n_hours else np.zeros(n, dtype=np.int64)

    explored, cell = _explore(flat_feasible, n_feasible, best_cell, share, rng)
    channel_of, hour_of = np.divmod(cell, max(n_hours, 1))
    channel = np.where(decided, channel_of, NO_CHANNEL).astype(np.int8)
    hour = np.where(decided, hour_of, -1).astype(np.int64)
    expected = np.full(n, np.nan)
    rows = np.flatnonzero(decided)
    expected[rows] = scores[rows, channel[rows], hour[rows]]
    with np.errstate(divide="ignore", invalid="ignore"):
        propensity = share / n_feasible + (1.0 - share) * (cell == best_cell)
    propensity = np.where(decided, propensity, np.nan)

    window_start, window_end = _windows(scores, feasible, channel, hour, settings.window_hours)
    codes = _reason_codes(value, feasible, channel, explored, decided, eligible, costs)
    return Decisions(
        channel=channel,
        hour=hour,
        window_start=window_start,
        window_end=window_end,
        expected=expected,
        reason=_compose_reasons(codes, base_reasons, n),
        explored=explored,
        propensity=propensity,
    )


def decisions_to_frame(decisions: Decisions, hour_starts: pd.DatetimeIndex) -> pd.DataFrame:
    """The decisions as a table with UTC timestamps (NaT and None where nothing is sent)."""
    hours = utc_hours(hour_starts)
    decided = decisions.channel >= 0
    names = np.array([*CHANNELS, None], dtype=object)  # index -1 picks None
    return pd.DataFrame(
        {
            "channel": names[decisions.channel.astype(np.int64)],
            "send_at": _stamps(hours, decisions.hour, decided),
            "window_start": _stamps(hours, decisions.window_start, decided),
            # one past the last hour: the last hour's start plus an hour (the grid may end there)
            "window_end": _stamps(hours, decisions.window_end - 1, decided, plus_hours=1),
            "expected_engagement": decisions.expected,
            "reason": decisions.reason,
            "explored": decisions.explored,
            "propensity": decisions.propensity,
        }
    )


# --- helpers -----------------------------------------------------------------------------------


def _expect_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {array.shape}")


def _stamps(
    hours: pd.DatetimeIndex, index: np.ndarray, decided: np.ndarray, plus_hours: int = 0
) -> pd.DatetimeIndex:
    if len(hours) == 0:
        return pd.DatetimeIndex([pd.NaT] * len(index), tz="UTC")
    return (hours[np.where(decided, index, 0)] + pd.Timedelta(hours=plus_hours)).where(decided)


def _hours(hours: float) -> np.timedelta64:
    return np.timedelta64(round(hours * 3600e9), "ns")


def _channel_costs(settings: PolicySettings) -> np.ndarray:
    return np.array([settings.sms_cost if c == SMS else 0.0 for c in CHANNELS])


def _explore(
    flat_feasible: np.ndarray,
    n_feasible: np.ndarray,
    best_cell: np.ndarray,
    share: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows explore, and the cell each row ends up with.

    Two uniforms are drawn per row whatever happens, so the same seed gives the same decisions and a
    change in one row's feasibility does not reshuffle everyone else's draws.
    """
    n = len(flat_feasible)
    coin, pick = rng.random(n), rng.random(n)
    explored = (n_feasible > 0) & (coin < share)
    cell = best_cell.copy()
    rows = np.flatnonzero(explored)
    for begin in range(0, len(rows), _EXPLORE_CHUNK):
        block = rows[begin : begin + _EXPLORE_CHUNK]
        k = n_feasible[block]
        rank = np.minimum((pick[block] * k).astype(np.int64), k - 1)  # uniform among the k cells
        running = np.cumsum(flat_feasible[block], axis=1, dtype=np.int32)
        cell[block] = np.argmax(running > rank[:, None], axis=1)  # the (rank+1)-th feasible cell
    return explored, cell


def _windows(
    scores: np.ndarray, feasible: np.ndarray, channel: np.ndarray, hour: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best span of `width` hours on the chosen channel containing the chosen hour.

    The span stays inside the run of feasible hours around the chosen hour (a window reaching into
    quiet hours would invite an unlawful send) and inside the grid; where that run is shorter than
    `width`, the window is the whole run. Among the candidate spans, the highest total score wins
    (ties: the earliest). Only the band of 2 * width - 1 hours centred on the chosen hour can matter,
    so the work is O(n * width), with cumulative sums for the span totals.
    """
    n = len(channel)
    n_hours = scores.shape[2]
    start = np.full(n, -1, dtype=np.int64)
    end = np.full(n, -1, dtype=np.int64)
    rows = np.flatnonzero(channel >= 0)
    if width <= 1 or len(rows) == 0:
        start[rows], end[rows] = hour[rows], hour[rows] + 1
        return start, end
    ch, h = channel[rows].astype(np.int64)[:, None], hour[rows]
    band = h[:, None] + np.arange(1 - width, width)  # [m, 2w - 1]; the chosen hour sits at width - 1
    inside = (band >= 0) & (band < n_hours)
    band = np.clip(band, 0, n_hours - 1)
    ok = feasible[rows[:, None], ch, band] & inside
    score = np.where(ok, scores[rows[:, None], ch, band], 0.0)

    positions = np.arange(band.shape[1])
    centre = width - 1
    run_start = np.where(ok | (positions >= centre), -1, positions).max(axis=1) + 1
    run_end = np.where(ok | (positions <= centre), band.shape[1], positions).min(axis=1)
    w = np.minimum(width, run_end - run_start)
    lo, hi = np.maximum(centre - w + 1, run_start), np.minimum(centre, run_end - w)
    totals = np.zeros((len(rows), band.shape[1] + 1))
    np.cumsum(score, axis=1, out=totals[:, 1:])
    r = np.arange(len(rows))
    best, best_total = lo.copy(), totals[r, lo + w] - totals[r, lo]
    for offset in range(1, width):
        s = lo + offset
        valid = s <= hi
        s = np.where(valid, s, lo)
        total = totals[r, s + w] - totals[r, s]
        better = valid & (total > best_total + 1e-12)  # tolerance: rounding must not break ties late
        best, best_total = np.where(better, s, best), np.where(better, total, best_total)
    start[rows] = h - centre + best
    end[rows] = start[rows] + w
    return start, end


def _reason_codes(
    value: np.ndarray,
    feasible: np.ndarray,
    channel: np.ndarray,
    explored: np.ndarray,
    decided: np.ndarray,
    eligible: np.ndarray | None,
    costs: np.ndarray,
) -> np.ndarray:
    """Small integer per row naming what the policy did (see `_REASON_TEXT`); `value` is -inf where infeasible."""
    email, sms = CHANNELS.index(EMAIL), CHANNELS.index(SMS)
    both = feasible.any(axis=2).all(axis=1)
    best_value = value.max(axis=2, initial=-np.inf)  # [n, 2]
    # e-mail won, but only because of the SMS cost: without it the best SMS hour would have won
    sms_lost_on_cost = best_value[:, sms] + costs[sms] > best_value[:, email] + costs[email]
    if eligible is None:
        codes = np.full(len(channel), _NOTHING, dtype=np.int64)
    else:
        has_contact = np.asarray(eligible, dtype=bool).any(axis=1)
        codes = np.where(has_contact, _NO_FEASIBLE, _NO_CONTACT).astype(np.int64)
    on_email, on_sms = decided & (channel == email), decided & (channel == sms)
    codes[on_email] = np.select([~both, sms_lost_on_cost], [_EMAIL_ONLY, _EMAIL_SMS_COST], _EMAIL_BEST)[
        on_email
    ]
    codes[on_sms] = np.where(both, _SMS_BEST, _SMS_ONLY)[on_sms]
    codes[explored] = np.where(channel == email, _EXPLORE_EMAIL, _EXPLORE_SMS)[explored]
    return codes


def _compose_reasons(codes: np.ndarray, base_reasons: np.ndarray | None, n: int) -> np.ndarray:
    """'<base>; <policy>' strings, built once per distinct (base, code) pair rather than per row (row by
    row for the API's few rows, where a factorisation costs more than the strings)."""
    if 0 < n <= _REASONS_BY_ROW and (base_reasons is None or np.size(base_reasons) == n):
        base = [""] * n if base_reasons is None else np.asarray(base_reasons, dtype=object).reshape(-1)
        texts = [
            _reason_text("" if pd.isna(b) else str(b).strip(), int(k))
            for b, k in zip(base, codes, strict=True)
        ]
        return np.array(texts, dtype=object)
    if base_reasons is None:
        base = pd.Series([""] * n, dtype=object)
    else:
        base = pd.Series(np.asarray(base_reasons, dtype=object).reshape(-1)).fillna("").astype(str)
        if len(base) != n:
            raise ValueError(f"base_reasons: expected {n} entries, got {len(base)}")
    base_codes, base_names = pd.factorize(base)
    n_codes = len(_REASON_TEXT)
    keys, inverse = np.unique(base_codes.astype(np.int64) * n_codes + codes, return_inverse=True)
    texts = [_reason_text(str(base_names[k // n_codes]).strip(), int(k % n_codes)) for k in keys]
    return np.array(texts, dtype=object)[inverse.reshape(-1)] if n else np.array([], dtype=object)


def _reason_text(base: str, code: int) -> str:
    policy = _REASON_TEXT[code]
    if code in _STANDALONE or not base:
        return policy
    if code in _EXPLORED:
        return f"{base} + {policy}"
    return f"{base}; {policy}"
