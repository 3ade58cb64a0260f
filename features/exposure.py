"""Exposure: when messages were pending for each person, and their engagement corrected by it.

Engagement at 10:00 may only mean we sent at 09:55. Each engagement is therefore divided by the person's
exposure at that hour (how much was pending then, from the sends and the delay-survival kernel learnt
from observed answer delays), so history sent at fixed brand times does not look like a personal habit.
The same kernel, read forward, says how a send at hour h reaches the hours after it (`response_kernel`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.features.prepare import FeatureBase

H = S.HOURS_PER_WEEK
KERNEL_HOURS = 24
EXPOSURE_FLOOR = 0.05  # share of the mean exposure added everywhere, so a rare hour is not divided by ~0


def delay_kernel(engagements: pd.DataFrame) -> np.ndarray:
    """P(an answer comes at least k hours after the send), per channel, from observed delays.

    The weight a pending message still has k hours after it was sent (it spreads a send's exposure
    over the following hours): the data's own answer to 'an e-mail waits hours, an SMS minutes'.
    """
    kernel = np.zeros((len(S.CHANNELS), KERNEL_HOURS))
    for c in range(len(S.CHANNELS)):
        delays = engagements.loc[(engagements["channel"] == c), "delay_h"].dropna().to_numpy()
        delays = delays[(delays >= 0) & (delays < KERNEL_HOURS)]
        if delays.size < 20:
            kernel[c] = np.exp(-np.arange(KERNEL_HOURS) / (6.0 if c == 0 else 1.0))  # too few: a mild default
            continue
        hist = np.bincount(np.floor(delays).astype(int), minlength=KERNEL_HOURS).astype(float)
        kernel[c] = hist[::-1].cumsum()[::-1] / hist.sum()
    return kernel


def response_kernel(survival: np.ndarray) -> np.ndarray:
    """How often answers come k hours after the send (the delay density), relative to the first hour.

    A send at h reaches the person's activity at h + k with this weight: sending just before they look
    beats sending at their peak when answers mostly come in the first hours.
    """
    density = np.maximum(
        survival - np.concatenate([survival[..., 1:], np.zeros_like(survival[..., :1])], -1), 0
    )
    return density / np.maximum(density[..., :1], 1e-12)


def circular_convolve(x: np.ndarray, kernel: np.ndarray, forward: bool) -> np.ndarray:
    """out[h] = sum_k x[h-k] k[k] (forward=False: exposure) or sum_k x[h+k] k[k] (forward=True: response).

    Computed with real FFTs along the week (circular by construction): an order of magnitude faster than
    shifting and adding 24 copies of [n, 2, 168], equal to it up to ~1e-15 (clipped at 0 so rounding
    never makes an exposure or a response negative).
    """
    week = x.shape[-1]
    padded = np.zeros(week)
    padded[: len(kernel)] = kernel
    spectrum = np.fft.rfft(padded)
    if forward:
        spectrum = np.conj(spectrum)  # correlation: looks ahead instead of back
    return np.maximum(np.fft.irfft(np.fft.rfft(x, axis=-1) * spectrum, n=week, axis=-1), 0.0)


def hour_counts(
    sub: np.ndarray, channel: np.ndarray, how: np.ndarray, weight: np.ndarray, n: int
) -> np.ndarray:
    """[n, 2, H] sums of `weight` per (subscriber row, channel, local hour-of-week) of the events given."""
    flat = (sub.astype(np.int64) * 2 + channel) * H + how
    counts = np.bincount(flat, weights=np.asarray(weight, dtype=float), minlength=n * 2 * H)
    return np.asarray(counts, dtype=float).reshape(n, 2, H)  # float even for an empty history; no copy


def age_weight(at: pd.Series, as_of: pd.Timestamp, half_life_days: float) -> np.ndarray:
    """Recency weight: 1/2 per half life of age at `as_of`, so old habits fade without a cut-off; a half
    life of 0 (or None) means no decay. Absolute: `relative_weights` makes it a reweighting."""
    if not half_life_days:
        return np.ones(len(at))
    age_days = (as_of - at).dt.total_seconds().to_numpy() / 86400.0
    return np.power(0.5, age_days / half_life_days)


def relative_weights(groups: np.ndarray, weight: np.ndarray, n_groups: int) -> np.ndarray:
    """`weight` rescaled within each group (a person's events on one channel) to sum to its event count.

    Recency may say which of a person's events tell most about them now, not how much evidence they
    are: with absolute weights, a person with 58 active hours spread over years counted as about 2
    events at a 90-day half life, and the priors swamped them.
    """
    weight = np.asarray(weight, dtype=float)
    if weight.size == 0:
        return weight
    total = np.bincount(groups, weights=weight, minlength=n_groups)
    count = np.bincount(groups, minlength=n_groups).astype(float)
    scale = np.divide(count, total, out=np.ones(n_groups), where=total > 0)
    return weight * scale[groups]


def channel_half_lives(half_life) -> np.ndarray:
    """A half life (days; 0 or None: no decay) for both channels, or one per channel, as [2] floats."""
    if half_life is None:
        return np.zeros(2)
    return np.broadcast_to(np.asarray(half_life, dtype=float), (2,)).copy()


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows (last axis) summing to 1; an empty row becomes uniform (no evidence prefers no hour)."""
    total = x.sum(axis=-1, keepdims=True)
    if total.all():  # the common case, without a filled copy
        return x / total
    out = x / np.where(total > 0, total, 1.0)
    out[(total == 0)[..., 0]] = 1.0 / x.shape[-1]
    return out


def day_types(x: np.ndarray) -> np.ndarray:
    """[..., 168] -> [..., 2, 24]: the hours of the five weekdays and of the two weekend days, summed."""
    days = x.reshape(*x.shape[:-1], 7, 24)
    return np.stack([days[..., :5, :].sum(axis=-2), days[..., 5:, :].sum(axis=-2)], axis=-2)


@dataclass
class Evidence:
    """Exposure-corrected counts of one period: per subscriber, channel and local hour-of-week."""

    corrected: np.ndarray  # [n, 2, H], sums to the weighted engagement count per (n, c)
    exposure: np.ndarray  # [n, 2, H]
    hourly: np.ndarray  # [n, 2, H] weighted engagement counts, uncorrected
    triggers: np.ndarray  # [n, 2, H] weighted triggered sends per channel: when the person was active
    _types: dict = field(default_factory=dict, repr=False)  # `day_types`' answers

    @property
    def counts(self) -> np.ndarray:
        return self.hourly.sum(axis=-1)

    def day_types(self, name: str) -> np.ndarray:
        """[n, 2, 2, 24] weekday and weekend hours of one field, kept: the search folds them onto the
        weekday clock once per weekend shift it tries."""
        if name not in self._types:
            self._types[name] = day_types(getattr(self, name))
        return self._types[name]

    def take(self, rows: np.ndarray) -> Evidence:
        return Evidence(self.corrected[rows], self.exposure[rows], self.hourly[rows], self.triggers[rows])


def evidence(
    base: FeatureBase,
    kernel: np.ndarray,
    end: pd.Timestamp,
    *,
    start: pd.Timestamp | None = None,
    weigh_from: pd.Timestamp | None = None,
    half_life: float | None = None,
    skip: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    subs: np.ndarray | None = None,
) -> Evidence:
    """Evidence of the events in [start, end); with `skip` = (lo, hi), of those outside [lo, hi), each
    weighted by its distance in time to that gap (a held-out block in the middle of the history).
    With `subs`, of those people only, in that order (a held-out sample, without [n, 2, H] arrays).

    `half_life` (days; one, or one per channel; 0 or None: no decay) weighs each event by its age at
    `weigh_from` (default `end`), relative within each person and channel (`relative_weights`): the
    weights of a person's events on a channel sum to their count however old they are.
    """
    weigh_from = end if weigh_from is None else weigh_from
    n = len(base.subscribers) if subs is None else len(subs)
    eng, sends = base.engagements, base.sends
    half_lives = channel_half_lives(half_life)
    position = None
    if subs is not None:
        position = np.full(len(base.subscribers), -1, dtype=np.int64)
        position[subs] = np.arange(len(subs))

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        at = frame["at"]
        mask = (at < end) & ((at >= start) if start is not None else True)
        if skip is not None:
            mask &= ~((at >= skip[0]) & (at < skip[1]))
        if position is None:
            return frame[mask]
        kept = frame[mask.to_numpy() & (position[frame["sub"].to_numpy()] >= 0)]
        return kept.assign(sub=position[kept["sub"].to_numpy()])

    def weight(frame: pd.DataFrame) -> np.ndarray:
        if not half_lives.any():
            return np.ones(len(frame))
        at, channel = frame["at"], frame["channel"].to_numpy()
        if skip is None:
            age = (weigh_from - at).dt.total_seconds().to_numpy() / 86400.0
        else:
            age = (np.where(at < skip[0], skip[0] - at, at - skip[1]) / pd.Timedelta(days=1)).astype(float)
        hl = half_lives[channel]
        w = np.power(0.5, np.divide(age, hl, out=np.zeros_like(age), where=hl > 0))
        groups = frame["sub"].to_numpy().astype(np.int64) * 2 + channel
        return relative_weights(groups, w, n * 2)

    eng = keep(eng)
    w = weight(eng)
    counts = hour_counts(eng["sub"].to_numpy(), eng["channel"].to_numpy(), eng["how"].to_numpy(), w, n)
    if base.has_sends:
        s = keep(sends)
        sw = weight(s)
        sent = hour_counts(s["sub"].to_numpy(), s["channel"].to_numpy(), s["how"].to_numpy(), sw, n)
        trig = s["triggered"].to_numpy(bool)
        triggers = hour_counts(
            s["sub"].to_numpy()[trig], s["channel"].to_numpy()[trig], s["how"].to_numpy()[trig], sw[trig], n
        )
        exposure = np.empty_like(sent)  # filled in place: at 10M events each [n, 2, H] copy is ~250 MB
        for c in range(2):
            exposure[:, c] = circular_convolve(sent[:, c], kernel[c], forward=False)
        exposure += EXPOSURE_FLOOR * exposure.mean(axis=-1, keepdims=True) + 1e-9
        corrected = counts / exposure
        ratio_total = corrected.sum(axis=-1, keepdims=True)
        np.divide(corrected, ratio_total, out=corrected, where=ratio_total > 0)  # rows without events stay 0
        corrected *= counts.sum(axis=-1, keepdims=True)
    else:
        triggers = np.zeros_like(counts)
        exposure = np.ones_like(counts)
        corrected = counts
    return Evidence(corrected=corrected, exposure=exposure, hourly=counts, triggers=triggers)
