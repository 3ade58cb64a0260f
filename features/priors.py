"""Priors: what a person's sparse evidence is smoothed toward, and the smoothing itself.

A person's hour-of-week shape is smoothed in two levels (hour of day first, where data is dense, then
the hour of the week) toward a prior mixing their cohort (timezone x channel, itself smoothed toward
the population), their likely typical rhythm (features/rhythms.py) and their other channel. Habits
run on the weekday clock; at the weekend they may run `weekend_shift` hours later (`fold_types`,
`to_daily`, `to_weekly`). How strongly each level leans on its prior is a `ChannelStrengths`, chosen on
held-out blocks (features/shrinkage.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.features.exposure import Evidence, day_types, normalise
from sendtime.features.prepare import FeatureBase
from sendtime.features.rhythms import Answers, Rhythms
from sendtime.features.strengths import ChannelStrengths

H = S.HOURS_PER_WEEK
UNKNOWN_TZ_SUFFIX = " (timezone unknown)"


def cohort_keys(timezones: np.ndarray, tz_sources: np.ndarray) -> np.ndarray:
    """Cohort = timezone; people whose timezone is only the default form a cohort of their own (a mix)."""
    tz = np.asarray(timezones, dtype=object).astype(str)
    unknown = np.asarray(tz_sources, dtype=object) == "default"
    return np.where(unknown, np.char.add(tz.astype(str), UNKNOWN_TZ_SUFFIX), tz).astype(object)


def cohort_codes(base: FeatureBase) -> tuple[list[str], np.ndarray]:
    keys = cohort_keys(base.subscribers["timezone"].to_numpy(), base.subscribers[S.TZ_SOURCE].to_numpy())
    codes, names = pd.factorize(pd.Series(keys, dtype=object))
    return list(names), codes


def _shift_index(shift, shape: tuple[int, ...], sign: int) -> np.ndarray:
    s = np.broadcast_to(np.asarray(shift, dtype=np.int64), shape)
    return (np.arange(24) + sign * s[..., None]) % 24


def fold_types(types: np.ndarray, shift=0) -> np.ndarray:
    """[..., 2, 24] -> [..., 24] on the weekday clock: a weekend hour h + shift counts as hour h.
    `shift` (hours, an int or one per leading row, e.g. per channel) is how much later people keep the
    same habit at the weekend."""
    weekday, weekend = types[..., 0, :], types[..., 1, :]
    if not np.any(shift):
        return weekday + weekend
    return weekday + np.take_along_axis(weekend, _shift_index(shift, weekend.shape[:-1], +1), axis=-1)


def to_daily(x: np.ndarray, shift=0) -> np.ndarray:
    """[..., 168] -> [..., 24]: hours of the day pooled over the week's days, on the weekday clock."""
    return fold_types(day_types(x), shift)


def to_weekly(daily: np.ndarray, shift=0) -> np.ndarray:
    """[..., 24] -> [..., 168]: the weekday clock laid over the week, weekend days `shift` hours later."""
    if not np.any(shift):
        return np.concatenate([daily] * 7, axis=-1)
    weekend = np.take_along_axis(daily, _shift_index(shift, daily.shape[:-1], -1), axis=-1)
    return np.concatenate([daily] * 5 + [weekend] * 2, axis=-1)


def blur(x: np.ndarray, width: float) -> np.ndarray:
    """Share `width` of each hour with each neighbour (circular): habits are not sharp to the hour."""
    if not width:
        return x
    return (1 - 2 * width) * x + width * (np.roll(x, 1, axis=-1) + np.roll(x, -1, axis=-1))


@dataclass
class Cohorts:
    weekly: np.ndarray  # [k, 2, 168] cohort shapes
    daily: np.ndarray  # [k, 2, 24] normalised, on the weekday clock
    modulation: np.ndarray  # [k, 2, 168]: weekly shape relative to its hour-of-day pattern
    population: np.ndarray  # [2, 168]
    shifts: np.ndarray  # [2] per channel, hours later at the weekend (the weekend_shift strength)


def group_sum(x: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of x [n, 2, H] per group: [n_groups, 2, H]."""
    flat = codes.astype(np.int64)
    return np.stack(
        [
            np.stack([np.bincount(flat, weights=x[:, c, h], minlength=n_groups) for h in range(H)], axis=-1)
            for c in range(2)
        ],
        axis=1,
    )


def pooled_corrected(counts: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """A group's engagement counts corrected by the group's *total* exposure (ratio of sums), rescaled to
    the group's engagement count. Summing people's own ratios instead would let every rarely-exposed
    hour of every person add a spike; pooled, the exposure is dense and the ratio stable."""
    ratio = counts / np.maximum(exposure, 1e-12)
    return normalise(ratio) * counts.sum(axis=-1, keepdims=True)


def cohort_sums(ev: Evidence, codes: np.ndarray, n_cohorts: int) -> tuple[np.ndarray, np.ndarray]:
    """Exposure-corrected engagement counts per cohort [k, 2, H] and for the population [2, H]."""
    counts = group_sum(ev.hourly, codes, n_cohorts)
    exposure = group_sum(ev.exposure, codes, n_cohorts)
    population = pooled_corrected(counts.sum(axis=0), exposure.sum(axis=0))
    return pooled_corrected(counts, exposure), population


def smoothed_cohorts(
    sums: np.ndarray, pop_counts: np.ndarray, strength: np.ndarray, shifts: np.ndarray | None = None
) -> Cohorts:
    """Cohort (timezone x channel) shapes, smoothed toward the population with `strength` events per
    channel; `shifts` per channel: hours later at the weekend (see `fold_types`)."""
    shifts = np.zeros(2, dtype=np.int64) if shifts is None else np.asarray(shifts, dtype=np.int64)
    pop = normalise(pop_counts + 1e-3)  # [2, H]
    weekly = normalise(sums + np.asarray(strength)[None, :, None] * pop[None])
    daily = to_daily(weekly, shifts)
    return Cohorts(weekly, daily, day_type_modulation(weekly, daily, shifts), pop, shifts)


def day_type_modulation(weekly: np.ndarray, daily: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """How a weekday's and a weekend day's hours differ from the average day laid over the week (weekend
    days shifted), pooled over the five weekdays and the two weekend days: one cohort hour of the week
    is too little data to say more than that."""
    days = weekly.reshape(*weekly.shape[:-1], 7, 24)
    average = to_weekly(np.maximum(daily / 7.0, 1e-12), shifts).reshape(days.shape)
    weekday = days[..., :5, :].mean(axis=-2, keepdims=True) / average[..., :1, :]
    weekend = days[..., 5:, :].mean(axis=-2, keepdims=True) / average[..., 5:6, :]
    per_day = np.concatenate([np.repeat(weekday, 5, axis=-2), np.repeat(weekend, 2, axis=-2)], axis=-2)
    return per_day.reshape(weekly.shape)


@dataclass
class DailyInputs:
    """What the hour-of-day smoothing of one channel needs, pooled over the week's days once."""

    own: np.ndarray  # [m, 24] exposure-corrected engagements on this channel
    other: np.ndarray  # [m, 24] ... on the other channel
    trig_same: np.ndarray  # [m, 24] triggered sends on this channel
    trig_other: np.ndarray  # [m, 24] ... on the other channel
    coh_same: np.ndarray  # [m, 24] the cohort's hour-of-day shape
    coh_other: np.ndarray
    other_counts: np.ndarray  # [m]
    codes: np.ndarray  # [m] cohort of each row
    rhythms: dict[tuple[int, bool], Rhythms | None]  # typical rhythms, by (number, pooled over channels)
    hourly: np.ndarray  # [m, 24] engagements on this channel, uncorrected
    exposure: np.ndarray  # [m, 24] this channel's exposure, each row summing to 1
    hourly_other: np.ndarray  # [m, 24] ... on the other channel
    exposure_other: np.ndarray
    _typical: dict = field(default_factory=dict, repr=False)  # `typical`'s answers, per choice

    @classmethod
    def build(
        cls,
        ev: Evidence,
        coh: Cohorts,
        codes: np.ndarray,
        c: int,
        rhythms: dict[tuple[int, bool], Rhythms | None],
    ) -> DailyInputs:
        sc = coh.shifts
        d, t = fold_types(ev.day_types("corrected"), sc), fold_types(ev.day_types("triggers"), sc)
        return cls(
            own=d[:, c],
            other=d[:, 1 - c],
            trig_same=t[:, c],
            trig_other=t[:, 1 - c],
            coh_same=coh.daily[codes, c],
            coh_other=coh.daily[codes, 1 - c],
            other_counts=ev.counts[:, 1 - c],
            codes=codes,
            rhythms=rhythms,
            hourly=fold_types(ev.day_types("hourly")[:, c], sc[c]),
            exposure=normalise(fold_types(ev.day_types("exposure")[:, c], sc[c])),
            hourly_other=fold_types(ev.day_types("hourly")[:, 1 - c], sc[1 - c]),
            exposure_other=normalise(fold_types(ev.day_types("exposure")[:, 1 - c], sc[1 - c])),
        )

    def typical(self, key: tuple[int, bool], temper: float, other: float, w: float, v: float) -> np.ndarray:
        """Each row's expected rhythm given its answers on this channel (exposure-aware), its triggered
        sends (activity) and, with weight `other`, its answers on the other channel (habits are often
        shared). Kept per choice: the grid search asks again for every other strength."""
        choice = (key, temper, other, w, v)
        if choice not in self._typical:
            self._typical[choice] = self.rhythms[key].posterior_mean(
                [
                    Answers(self.hourly, self.exposure),
                    Answers(w * self.trig_same + v * self.trig_other),
                    Answers(other * self.hourly_other, self.exposure_other),
                ],
                self.codes,
                temper,
            )
        return self._typical[choice]


def rhythm_evidence(ev: Evidence) -> np.ndarray:
    """[n, 2, 2, 24]: corrected engagements and triggered sends by day type and hour, what rhythms are
    fitted on once folded onto the weekday clock (`fold_types`)."""
    return day_types(ev.corrected + ev.triggers)


def daily_shape(x: DailyInputs, p: ChannelStrengths, alphas: np.ndarray | None = None) -> np.ndarray:
    """Person's hour-of-day distribution: own evidence (engagements, triggered sends) + alpha x prior,
    the prior mixing the cohort (or the person's likely rhythm, see features/rhythms.py) with the
    person's other channel (weight beta) where that has evidence.

    With `alphas`, one shape per daily strength at once: [len(alphas), m, 24], *not* normalised (the
    grid search's hot path; its held-out score does not depend on a row's total).
    """
    w, v, b = p.trigger_weight, p.other_trigger_weight, p.beta
    a = np.asarray(p.alpha_daily if alphas is None else alphas, dtype=float).reshape(-1, 1, 1)
    own = blur(x.own + w * x.trig_same + v * x.trig_other, p.blur)
    same = x.coh_same
    g = p.rhythm_weight
    if g > 0 and x.rhythms.get(p.rhythm_key) is not None:
        typical = x.typical(p.rhythm_key, p.rhythm_temper, p.rhythm_other, w, v)
        same = (1 - g) * same + g * typical
    prior = same[None]
    if b > 0:
        other = normalise(blur(x.other + w * x.trig_other, p.blur)[None] + a * x.coh_other[None])
        has_other = ((x.other_counts + w * x.trig_other.sum(axis=-1)) > 0)[None, :, None]
        prior = np.where(has_other, (1 - b) * prior + b * other, prior)
    out = own[None] + a * prior
    return normalise(out)[0] if alphas is None else out


def person_shapes(
    ev: Evidence,
    coh: Cohorts,
    codes: np.ndarray,
    c: int,
    p: ChannelStrengths,
    rhythms: dict[tuple[int, bool], Rhythms | None],
    inputs: DailyInputs | None = None,
) -> np.ndarray:
    """Two-level smoothing for channel c: hour-of-day first (dense data), then the hour of the week.
    `inputs`: `DailyInputs.build(ev, coh, codes, c, rhythms)` when already at hand."""
    inputs = DailyInputs.build(ev, coh, codes, c, rhythms) if inputs is None else inputs
    daily = daily_shape(inputs, p)
    weekly_prior = normalise(to_weekly(daily, coh.shifts[c]) * coh.modulation[codes, c])
    if not np.isfinite(p.alpha_weekly):
        return weekly_prior
    return normalise(ev.corrected[:, c] + p.alpha_weekly * weekly_prior)
