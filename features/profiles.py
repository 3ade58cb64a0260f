"""Point-in-time subscriber profiles: when each person engages, on which channel, and how much.

`build_profiles(base, as_of)` reads only events strictly before `as_of`, so a profile used to label a
send never saw what happened after it. See docs/estimator.md for the reasoning; in short:

* **Shape** (when): per subscriber and channel a distribution over the 168 local hours of the week.
  Each engagement is weighted by its age (half-life) and divided by the subscriber's *exposure* at
  that hour (how many messages were pending then, from the sends and the delay-survival kernel), so
  history sent at fixed brand times does not look like a personal habit. The corrected histogram is
  smoothed toward a prior with Dirichlet strength `alpha`; the prior is a mix (weight `beta`) of the
  person's other channel and the cohort (timezone x channel), itself smoothed toward the population,
  where the cohort may be partly replaced by the person's likely *typical rhythm* (features/rhythms.py).
  Every strength is chosen by held-out log-likelihood of the last weeks.
* **Response** (when to send): sending at hour h reaches a person who looks in the following hours,
  weighted by the probability a message is still answered after waiting that long (the kernel,
  learnt from the observed engagement delays). E-mail waits in the inbox; SMS is seen at once.
* **Level** (how much): click and engagement rates per send, shrunk toward the cohort (Beta prior);
  recency; counts; opt-outs (unsubscribes, hard bounces and runs of soft bounces: features/suppression.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from sendtime import schema as S
from sendtime.configs.settings import ProfileSettings
from sendtime.features import local_time
from sendtime.features.prepare import FeatureBase
from sendtime.features.rhythms import Answers, Rhythms, fit_shapes, with_cohort_weights
from sendtime.features.signals import CLICK_KIND
from sendtime.features.suppression import suppressed_as_of

H = S.HOURS_PER_WEEK
KERNEL_HOURS = 24
RATE_PRIOR_SENDS = 20.0  # Beta prior weight, in sends, for click and engagement rates
BETA_GRID = (0.0, 0.25, 0.5, 0.75)
BLUR_GRID = (0.0, 0.15, 0.3, 0.45)
TRIGGER_GRID = (0.0, 0.25, 1.0, 4.0, 16.0, 64.0)
RHYTHM_TYPES_GRID = (3, 6, 10, 16)  # number of typical daily rhythms (features/rhythms.py)
RHYTHM_WEIGHT_GRID = (0.5, 0.75, 1.0)  # share of the cohort prior replaced by the person's likely rhythm
RHYTHM_TEMPER_GRID = (0.25, 0.5, 1.0)  # how far a person's own events are trusted to pick a rhythm
RHYTHM_OTHER_GRID = (0.0, 0.25, 0.5, 1.0)  # weight of the other channel's answers in picking the rhythm
WEEKEND_SHIFT_GRID = (-1, 0, 1, 2, 3)  # hours later the same habits run at the weekend
# held-out people per channel, over all blocks: plenty to choose a handful of strengths
MAX_HELDOUT_ROWS = 5_000
# earlier held-out blocks are added only while a channel has fewer held-out people than this
ENOUGH_HELDOUT_ROWS = 2_000
UNKNOWN_TZ_SUFFIX = " (timezone unknown)"
EXPOSURE_FLOOR = 0.05  # share of the mean exposure added everywhere, so a rare hour is not divided by ~0
PATTERN_SOURCES = ("personal history", "linked profile", "cohort prior", "population prior")


@dataclass
class Profiles:
    """Profiles as of an instant; arrays are indexed [subscriber row, channel, local hour-of-week]."""

    as_of: pd.Timestamp
    table: pd.DataFrame
    shape: np.ndarray
    response: np.ndarray
    cohorts: list[str]
    cohort_shape: np.ndarray  # [n_cohorts, 2, 168]
    cohort_response: np.ndarray
    cohort_rates: np.ndarray  # [n_cohorts, 2, 2]: click rate, engagement rate
    population_shape: np.ndarray  # [2, 168]
    population_response: np.ndarray
    kernel: np.ndarray  # [2, 24]
    shrinkage: dict[str, dict[str, float]]
    has_sends: bool
    addresses: pd.DataFrame = field(default_factory=pd.DataFrame)
    data_span: tuple[str, str] = ("", "")

    def __len__(self) -> int:
        return len(self.table)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.table.to_parquet(folder / "profiles.parquet", index=False)
        self.addresses.to_parquet(folder / "addresses.parquet", index=False)
        np.savez_compressed(
            folder / "arrays.npz",
            shape=self.shape,
            response=self.response,
            cohort_shape=self.cohort_shape,
            cohort_response=self.cohort_response,
            cohort_rates=self.cohort_rates,
            population_shape=self.population_shape,
            population_response=self.population_response,
            kernel=self.kernel,
        )
        meta = {
            "as_of": self.as_of.isoformat(),
            "cohorts": self.cohorts,
            "shrinkage": self.shrinkage,
            "has_sends": self.has_sends,
            "data_span": list(self.data_span),
            "subscribers": len(self.table),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Profiles:
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        arrays = np.load(folder / "arrays.npz")
        return cls(
            as_of=pd.Timestamp(meta["as_of"]),
            table=pd.read_parquet(folder / "profiles.parquet"),
            shape=arrays["shape"],
            response=arrays["response"],
            cohorts=list(meta["cohorts"]),
            cohort_shape=arrays["cohort_shape"],
            cohort_response=arrays["cohort_response"],
            cohort_rates=arrays["cohort_rates"],
            population_shape=arrays["population_shape"],
            population_response=arrays["population_response"],
            kernel=arrays["kernel"],
            shrinkage=dict(meta["shrinkage"]),
            has_sends=bool(meta["has_sends"]),
            addresses=pd.read_parquet(folder / "addresses.parquet"),
            data_span=tuple(meta["data_span"]),
        )

    def cohort_index(self, timezones: np.ndarray) -> np.ndarray:
        """Cohort row per timezone; -1 (population) for a timezone no profile had."""
        return pd.Index(self.cohorts).get_indexer(pd.Index(timezones, dtype=object))


# --------------------------------------------------------------------------------------------- kernels
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


# ------------------------------------------------------------------------------------------- counting
def _counts(sub: np.ndarray, channel: np.ndarray, how: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    flat = (sub.astype(np.int64) * 2 + channel) * H + how
    counts = np.bincount(flat, weights=np.asarray(weight, dtype=float), minlength=n * 2 * H)
    return np.asarray(counts, dtype=float).reshape(n, 2, H)  # float even for an empty history; no copy


def _age_weight(at: pd.Series, as_of: pd.Timestamp, half_life_days: float) -> np.ndarray:
    age_days = (as_of - at).dt.total_seconds().to_numpy() / 86400.0
    return np.power(0.5, age_days / half_life_days)


def _normalise(x: np.ndarray) -> np.ndarray:
    total = x.sum(axis=-1, keepdims=True)
    if total.all():  # the common case, without a filled copy
        return x / total
    out = x / np.where(total > 0, total, 1.0)
    out[(total == 0)[..., 0]] = 1.0 / x.shape[-1]
    return out


@dataclass
class _Evidence:
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
            self._types[name] = _day_types(getattr(self, name))
        return self._types[name]

    def take(self, rows: np.ndarray) -> _Evidence:
        return _Evidence(self.corrected[rows], self.exposure[rows], self.hourly[rows], self.triggers[rows])


def _evidence(
    base: FeatureBase,
    start: pd.Timestamp | None,
    end: pd.Timestamp,
    weigh_from: pd.Timestamp,
    kernel: np.ndarray,
    half_life: float | None,
    skip: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    subs: np.ndarray | None = None,
) -> _Evidence:
    """Evidence of the events in [start, end); with `skip` = (lo, hi), of those outside [lo, hi), each
    weighted by its distance in time to that gap (a held-out block in the middle of the history).
    With `subs`, of those people only, in that order (a held-out sample, without [n, 2, H] arrays)."""
    n = len(base.subscribers) if subs is None else len(subs)
    eng, sends = base.engagements, base.sends
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

    def weight(at: pd.Series) -> np.ndarray:
        if not half_life:
            return np.ones(len(at))
        if skip is None:
            return _age_weight(at, weigh_from, half_life)
        distance = np.where(at < skip[0], skip[0] - at, at - skip[1]) / pd.Timedelta(days=1)
        return np.power(0.5, distance.astype(float) / half_life)

    eng = keep(eng)
    w = weight(eng["at"])
    counts = _counts(eng["sub"].to_numpy(), eng["channel"].to_numpy(), eng["how"].to_numpy(), w, n)
    if base.has_sends:
        s = keep(sends)
        sw = weight(s["at"])
        sent = _counts(s["sub"].to_numpy(), s["channel"].to_numpy(), s["how"].to_numpy(), sw, n)
        trig = s["triggered"].to_numpy(bool)
        triggers = _counts(
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
    return _Evidence(corrected=corrected, exposure=exposure, hourly=counts, triggers=triggers)


# -------------------------------------------------------------------------------------------- priors
def cohort_keys(timezones: np.ndarray, tz_sources: np.ndarray) -> np.ndarray:
    """Cohort = timezone; people whose timezone is only the default form a cohort of their own (a mix)."""
    tz = np.asarray(timezones, dtype=object).astype(str)
    unknown = np.asarray(tz_sources, dtype=object) == "default"
    return np.where(unknown, np.char.add(tz.astype(str), UNKNOWN_TZ_SUFFIX), tz).astype(object)


def _cohort_codes(base: FeatureBase) -> tuple[list[str], np.ndarray]:
    keys = cohort_keys(base.subscribers["timezone"].to_numpy(), base.subscribers[S.TZ_SOURCE].to_numpy())
    codes, names = pd.factorize(pd.Series(keys, dtype=object))
    return list(names), codes


def _day_types(x: np.ndarray) -> np.ndarray:
    """[..., 168] -> [..., 2, 24]: the hours of the five weekdays and of the two weekend days, summed."""
    days = x.reshape(*x.shape[:-1], 7, 24)
    return np.stack([days[..., :5, :].sum(axis=-2), days[..., 5:, :].sum(axis=-2)], axis=-2)


def _shift_index(shift, shape: tuple[int, ...], sign: int) -> np.ndarray:
    s = np.broadcast_to(np.asarray(shift, dtype=np.int64), shape)
    return (np.arange(24) + sign * s[..., None]) % 24


def _fold_types(types: np.ndarray, shift=0) -> np.ndarray:
    """[..., 2, 24] -> [..., 24] on the weekday clock: a weekend hour h + shift counts as hour h.
    `shift` (hours, an int or one per leading row, e.g. per channel) is how much later people keep the
    same habit at the weekend."""
    weekday, weekend = types[..., 0, :], types[..., 1, :]
    if not np.any(shift):
        return weekday + weekend
    return weekday + np.take_along_axis(weekend, _shift_index(shift, weekend.shape[:-1], +1), axis=-1)


def _daily(x: np.ndarray, shift=0) -> np.ndarray:
    """[..., 168] -> [..., 24]: hours of the day pooled over the week's days, on the weekday clock."""
    return _fold_types(_day_types(x), shift)


def _weekly(daily: np.ndarray, shift=0) -> np.ndarray:
    """[..., 24] -> [..., 168]: the weekday clock laid over the week, weekend days `shift` hours later."""
    if not np.any(shift):
        return np.concatenate([daily] * 7, axis=-1)
    weekend = np.take_along_axis(daily, _shift_index(shift, daily.shape[:-1], -1), axis=-1)
    return np.concatenate([daily] * 5 + [weekend] * 2, axis=-1)


def _blur(x: np.ndarray, width: float) -> np.ndarray:
    """Share `width` of each hour with each neighbour (circular): habits are not sharp to the hour."""
    if not width:
        return x
    return (1 - 2 * width) * x + width * (np.roll(x, 1, axis=-1) + np.roll(x, -1, axis=-1))


@dataclass
class _Cohorts:
    weekly: np.ndarray  # [k, 2, 168] cohort shapes
    daily: np.ndarray  # [k, 2, 24] normalised, on the weekday clock
    modulation: np.ndarray  # [k, 2, 168]: weekly shape relative to its hour-of-day pattern
    population: np.ndarray  # [2, 168]
    shifts: np.ndarray  # [2] per channel, hours later at the weekend (the weekend_shift strength)


def _group_sum(x: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of x [n, 2, H] per group: [n_groups, 2, H]."""
    flat = codes.astype(np.int64)
    return np.stack(
        [
            np.stack([np.bincount(flat, weights=x[:, c, h], minlength=n_groups) for h in range(H)], axis=-1)
            for c in range(2)
        ],
        axis=1,
    )


def _pooled_corrected(counts: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """A group's engagement counts corrected by the group's *total* exposure (ratio of sums), rescaled to
    the group's engagement count. Summing people's own ratios instead would let every rarely-exposed
    hour of every person add a spike; pooled, the exposure is dense and the ratio stable."""
    ratio = counts / np.maximum(exposure, 1e-12)
    return _normalise(ratio) * counts.sum(axis=-1, keepdims=True)


def _cohort_sums(ev: _Evidence, codes: np.ndarray, n_cohorts: int) -> tuple[np.ndarray, np.ndarray]:
    """Exposure-corrected engagement counts per cohort [k, 2, H] and for the population [2, H]."""
    counts = _group_sum(ev.hourly, codes, n_cohorts)
    exposure = _group_sum(ev.exposure, codes, n_cohorts)
    population = _pooled_corrected(counts.sum(axis=0), exposure.sum(axis=0))
    return _pooled_corrected(counts, exposure), population


def _cohorts(
    sums: np.ndarray, pop_counts: np.ndarray, strength: np.ndarray, shifts: np.ndarray | None = None
) -> _Cohorts:
    """Cohort (timezone x channel) shapes, smoothed toward the population with `strength` events per
    channel; `shifts` per channel: hours later at the weekend (see `_fold_types`)."""
    shifts = np.zeros(2, dtype=np.int64) if shifts is None else np.asarray(shifts, dtype=np.int64)
    pop = _normalise(pop_counts + 1e-3)  # [2, H]
    weekly = _normalise(sums + np.asarray(strength)[None, :, None] * pop[None])
    daily = _daily(weekly, shifts)
    return _Cohorts(weekly, daily, _day_type_modulation(weekly, daily, shifts), pop, shifts)


def _day_type_modulation(weekly: np.ndarray, daily: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """How a weekday's and a weekend day's hours differ from the average day laid over the week (weekend
    days shifted), pooled over the five weekdays and the two weekend days: one cohort hour of the week
    is too little data to say more than that."""
    days = weekly.reshape(*weekly.shape[:-1], 7, 24)
    average = _weekly(np.maximum(daily / 7.0, 1e-12), shifts).reshape(days.shape)
    weekday = days[..., :5, :].mean(axis=-2, keepdims=True) / average[..., :1, :]
    weekend = days[..., 5:, :].mean(axis=-2, keepdims=True) / average[..., 5:6, :]
    per_day = np.concatenate([np.repeat(weekday, 5, axis=-2), np.repeat(weekend, 2, axis=-2)], axis=-2)
    return per_day.reshape(weekly.shape)


@dataclass
class _DailyInputs:
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
        ev: _Evidence,
        coh: _Cohorts,
        codes: np.ndarray,
        c: int,
        rhythms: dict[tuple[int, bool], Rhythms | None],
    ) -> _DailyInputs:
        sc = coh.shifts
        d, t = _fold_types(ev.day_types("corrected"), sc), _fold_types(ev.day_types("triggers"), sc)
        return cls(
            d[:, c],
            d[:, 1 - c],
            t[:, c],
            t[:, 1 - c],
            coh.daily[codes, c],
            coh.daily[codes, 1 - c],
            ev.counts[:, 1 - c],
            codes,
            rhythms,
            _fold_types(ev.day_types("hourly")[:, c], sc[c]),
            _normalise(_fold_types(ev.day_types("exposure")[:, c], sc[c])),
            _fold_types(ev.day_types("hourly")[:, 1 - c], sc[1 - c]),
            _normalise(_fold_types(ev.day_types("exposure")[:, 1 - c], sc[1 - c])),
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


def _rhythm_evidence(ev: _Evidence) -> np.ndarray:
    """[n, 2, 2, 24]: corrected engagements and triggered sends by day type and hour, what rhythms are
    fitted on once folded onto the weekday clock (`_fold_types`)."""
    return _day_types(ev.corrected + ev.triggers)


def _fit_rhythms(
    both: np.ndarray,
    codes: np.ndarray,
    n_cohorts: int,
    c: int,
    types: list[tuple[int, bool]],
    pooled_shapes: dict | None = None,
) -> dict[tuple[int, bool], Rhythms | None]:
    """Typical daily rhythms of channel c for each (number, pooled) asked for, fitted on everybody's
    corrected engagements and triggered sends (`both`, [n, 2, 24]): of this channel, or (pooled) of both
    channels, which gives the shapes more data where one channel is sparse (SMS) and the day's habits
    are shared. Pooled shapes are the same for both channels: pass one `pooled_shapes` dict to fit them once.
    """
    pooled_shapes = {} if pooled_shapes is None else pooled_shapes
    out: dict[tuple[int, bool], Rhythms | None] = {}
    for k, pool in types:
        if pool:
            if k not in pooled_shapes:
                pooled_shapes[k] = fit_shapes(np.concatenate([both[:, 0], both[:, 1]]), k)
            fitted = pooled_shapes[k]
        else:
            fitted = fit_shapes(both[:, c], k)
        out[(k, pool)] = (
            None if fitted is None else with_cohort_weights(*fitted, both[:, c], codes, n_cohorts)
        )
    return out


def _rhythm_key(p: dict) -> tuple[int, bool]:
    return int(p.get("rhythm_types", 0)), bool(p.get("rhythm_pooled", 0.0))


def _rhythm_types(p: dict) -> list[tuple[int, bool]]:
    return [_rhythm_key(p)] if _rhythm_key(p)[0] > 0 and p.get("rhythm_weight", 0.0) > 0 else []


def _daily_shape(x: _DailyInputs, p: dict, alphas: np.ndarray | None = None) -> np.ndarray:
    """Person's hour-of-day distribution: own evidence (engagements, triggered sends) + alpha x prior,
    the prior mixing the cohort (or the person's likely rhythm, see features/rhythms.py) with the
    person's other channel (weight beta) where that has evidence.

    With `alphas`, one shape per daily strength at once: [len(alphas), m, 24], *not* normalised (the
    grid search's hot path; its held-out score does not depend on a row's total).
    """
    w, v, b = p.get("trigger_weight", 0.0), p.get("other_trigger_weight", 0.0), p["beta"]
    a = np.asarray(p["alpha_daily"] if alphas is None else alphas, dtype=float).reshape(-1, 1, 1)
    own = _blur(x.own + w * x.trig_same + v * x.trig_other, p["blur"])
    same = x.coh_same
    g = p.get("rhythm_weight", 0.0)
    if g > 0 and x.rhythms.get(_rhythm_key(p)) is not None:
        typical = x.typical(_rhythm_key(p), p["rhythm_temper"], p.get("rhythm_other", 0.0), w, v)
        same = (1 - g) * same + g * typical
    prior = same[None]
    if b > 0:
        other = _normalise(_blur(x.other + w * x.trig_other, p["blur"])[None] + a * x.coh_other[None])
        has_other = ((x.other_counts + w * x.trig_other.sum(axis=-1)) > 0)[None, :, None]
        prior = np.where(has_other, (1 - b) * prior + b * other, prior)
    out = own[None] + a * prior
    return _normalise(out)[0] if alphas is None else out


def _person_shapes(
    ev: _Evidence,
    coh: _Cohorts,
    codes: np.ndarray,
    c: int,
    p: dict,
    rhythms: dict[tuple[int, bool], Rhythms | None],
    inputs: _DailyInputs | None = None,
) -> np.ndarray:
    """Two-level smoothing for channel c: hour-of-day first (dense data), then the hour of the week.
    `inputs`: `_DailyInputs.build(ev, coh, codes, c, rhythms)` when already at hand."""
    inputs = _DailyInputs.build(ev, coh, codes, c, rhythms) if inputs is None else inputs
    daily = _daily_shape(inputs, p)
    weekly_prior = _normalise(_weekly(daily, coh.shifts[c]) * coh.modulation[codes, c])
    if not np.isfinite(p["alpha_weekly"]):
        return weekly_prior
    return _normalise(ev.corrected[:, c] + p["alpha_weekly"] * weekly_prior)


def _heldout_loglik(shape: np.ndarray, heldout: _Evidence, rows: np.ndarray, c: int) -> float:
    """Mean log-probability of the held-out engagement hours on channel c, given the held-out exposure."""
    p = _normalise(shape[rows] * heldout.exposure[rows, c])
    counts = heldout.hourly[rows, c]
    return float((counts * np.log(p + 1e-12)).sum() / max(counts.sum(), 1e-9))


@dataclass
class _DailyHeldout:
    """The held-out log-likelihood of a weekly shape built from an hour-of-day shape q, computed at 24 bins:
    log p(h) = log q(h mod 24) - log sum_h' q(h' mod 24) m(h') e(h') + terms that do not depend on q."""

    counts: np.ndarray  # [m, 24] held-out engagements by hour of day
    weight: np.ndarray  # [m, 24] sum over the week's days of modulation x held-out exposure
    total: float

    @classmethod
    def build(cls, held: _Evidence, coh: _Cohorts, codes: np.ndarray, c: int) -> _DailyHeldout:
        counts = _fold_types(held.day_types("hourly")[:, c], coh.shifts[c])
        weight = _daily(coh.modulation[codes, c] * held.exposure[:, c], coh.shifts[c])
        return cls(counts, weight, float(max(counts.sum(), 1e-9)))

    def score(self, q: np.ndarray) -> np.ndarray:
        """q is [..., m, 24]; one score per leading index."""
        norm = np.log((q * self.weight).sum(axis=-1) + 1e-300)
        own = (self.counts * np.log(q + 1e-12)).sum(axis=(-1, -2))
        return (own - (self.counts.sum(axis=-1) * norm).sum(axis=-1)) / self.total


def heldout_start(base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings) -> pd.Timestamp:
    """The held-out tail: the last `holdout_days`, widened until it holds `holdout_min_share` of the
    engagements before as_of (sparse, long exports would otherwise choose strengths on a handful of people)."""
    cut = as_of - pd.Timedelta(days=settings.holdout_days)
    times = base.engagements.loc[base.engagements["at"] < as_of, "at"]
    if len(times) and (times >= cut).mean() < settings.holdout_min_share:
        cut = min(cut, times.quantile(1 - settings.holdout_min_share))
    return cut


DEFAULT_CHANNEL_SHRINKAGE = {
    "cohort_strength": 1000.0,
    "alpha_daily": 8.0,
    "alpha_weekly": 32.0,
    "beta": 0.25,
    "blur": 0.15,
    "trigger_weight": 0.0,
    "other_trigger_weight": 0.0,
    "rhythm_types": 0.0,
    "rhythm_pooled": 0.0,
    "rhythm_weight": 0.0,
    "rhythm_temper": 1.0,
    "rhythm_other": 0.0,
    "weekend_shift": 0.0,
}


def _choose_rhythms(best: dict, fitted: list[tuple[int, bool]], score) -> dict:
    """Which typical rhythms (or none) at the current weight and temper, then the weight x temper of the
    chosen ones, then the weight of the other channel's answers in picking one; `score(p)` returns
    (held-out log-likelihood, p with its best daily strength)."""

    def using(key: tuple[int, bool], weight: float, temper: float) -> dict:
        return dict(
            best,
            rhythm_types=float(key[0]),
            rhythm_pooled=float(key[1]),
            rhythm_weight=weight if key[0] else 0.0,
            rhythm_temper=temper,
        )

    weight, temper = (
        (best["rhythm_weight"], best["rhythm_temper"]) if best["rhythm_weight"] > 0 else (0.75, 0.5)
    )
    best = max((score(using(key, weight, temper)) for key in [(0, False), *fitted]), key=lambda t: t[0])[1]
    if best["rhythm_types"] > 0:
        key = _rhythm_key(best)
        choices = [using(key, g, t) for g in RHYTHM_WEIGHT_GRID for t in RHYTHM_TEMPER_GRID]
        best = max((score(p) for p in choices), key=lambda t: t[0])[1]
        best = max((score(dict(best, rhythm_other=o)) for o in RHYTHM_OTHER_GRID), key=lambda t: t[0])[1]
    return best


def heldout_blocks(
    base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The held-out blocks, newest first: the tail before as_of (see `heldout_start`), then up to
    `holdout_folds - 1` earlier blocks of the same length that still hold some data. The search uses
    them newest first and only as many as it needs people (see `choose_shrinkage`)."""
    cut = heldout_start(base, as_of, settings)
    length, first = as_of - cut, base.span[0]
    return [
        (as_of - length * (k + 1), as_of - length * k)
        for k in range(settings.holdout_folds)
        if as_of - length * k > first
    ]


@dataclass
class _Sample:
    """The people of one block with held-out events on one channel (a sample when many): their
    evidence from outside the block and in it."""

    rows: np.ndarray
    train: _Evidence
    held: _Evidence

    @property
    def events(self) -> float:
        return float(self.held.hourly.sum())


@dataclass
class _Fold:
    """One held-out block, reduced to what the search reads: the cohort sums and everybody's rhythm
    evidence from outside the block, and per channel a sample of people (None when too few). The full
    evidence is not kept: at 10M events each block's would take a gigabyte."""

    cohort_sums: tuple[np.ndarray, np.ndarray]
    rhythm_evidence: np.ndarray
    samples: list[_Sample | None]

    @classmethod
    def build(
        cls,
        base: FeatureBase,
        block: tuple[pd.Timestamp, pd.Timestamp],
        as_of: pd.Timestamp,
        kernel: np.ndarray,
        settings: ProfileSettings,
        codes: np.ndarray,
        n_cohorts: int,
        wanted: np.ndarray,
        rng: np.random.Generator,
    ) -> _Fold:
        """`wanted[c]`: how many more held-out people channel c needs (a random sample of them)."""
        lo, hi = block
        train = _evidence(base, None, as_of, lo, kernel, settings.half_life_days, skip=block)
        eng = base.engagements
        in_block = eng[(eng["at"] >= lo) & (eng["at"] < hi)]
        flat = in_block["sub"].to_numpy().astype(np.int64) * 2 + in_block["channel"].to_numpy()
        held_counts = np.bincount(flat, minlength=len(base.subscribers) * 2).reshape(-1, 2)
        samples: list[_Sample | None] = []
        for c in range(2):
            rows = np.flatnonzero(held_counts[:, c] > 0)
            if rows.size < 10 or wanted[c] <= 0 or train.counts[:, c].sum() == 0:
                samples.append(None)
                continue
            if rows.size > wanted[c]:
                rows = np.sort(rng.choice(rows, int(wanted[c]), replace=False))
            held = _evidence(base, lo, hi, hi, kernel, None, subs=rows)
            samples.append(_Sample(rows, train.take(rows), held))
        return cls(_cohort_sums(train, codes, n_cohorts), _rhythm_evidence(train), samples)


@dataclass
class _ChannelFold:
    """One block's view of one channel during the search: its sample of people (their evidence from
    outside the block and in it) and what the hour-of-day search needs of both."""

    sample: _Sample
    codes: np.ndarray
    cohorts: _Cohorts
    rhythms: dict[tuple[int, bool], Rhythms | None]
    inputs: _DailyInputs
    scorer: _DailyHeldout

    @property
    def events(self) -> float:
        return self.scorer.total

    def loglik(self, shape: np.ndarray, c: int) -> float:
        return _heldout_loglik(shape, self.sample.held, np.arange(self.sample.rows.size), c)


def _over_folds(scores: list, weights: list[float]):
    """Held-out scores are means per event; over blocks, weigh each by its events."""
    return sum(w * x for w, x in zip(weights, scores, strict=True)) / max(sum(weights), 1e-9)


class _Scores:
    """Held-out scores of one channel's strengths over all blocks at once."""

    def __init__(self, views: list[_ChannelFold], c: int):
        self.views, self.c, self.events = views, c, [v.events for v in views]

    def best_alpha(self, p: dict, alphas: list[float]) -> tuple[float, dict]:
        """The best daily strength for p, by the hour-of-day score (fast, up to terms p does not change)."""
        shapes = [v.scorer.score(_daily_shape(v.inputs, p, np.asarray(alphas))) for v in self.views]
        scores = _over_folds(shapes, self.events)
        k = int(np.argmax(scores))
        return float(scores[k]), dict(p, alpha_daily=alphas[k])

    def weekly_ll(self, p: dict) -> float:
        """The full held-out log-likelihood of the hour-of-week shapes p gives."""
        c = self.c
        lls = [
            v.loglik(_person_shapes(v.sample.train, v.cohorts, v.codes, c, p, v.rhythms, v.inputs), c)
            for v in self.views
        ]
        return float(_over_folds(lls, self.events))

    def cohort_ll(self) -> float:
        lls = [v.loglik(v.cohorts.weekly[v.codes, self.c], self.c) for v in self.views]
        return float(_over_folds(lls, self.events))


# where each channel's coordinate search starts: no borrowing, no blur, no rhythms, the strongest prior
# (cohort strength and weekend shift are chosen before it, for both channels)
SEARCH_START = {
    k: v for k, v in DEFAULT_CHANNEL_SHRINKAGE.items() if k not in ("cohort_strength", "weekend_shift")
} | {"alpha_weekly": np.inf, "beta": 0.0, "blur": 0.0, "alpha_daily": 512.0}


def _search_channel(views: list[_ChannelFold], c: int, grid: list[float]) -> dict[str, float]:
    """The coordinate search of one channel's strengths, scored over all held-out blocks at once."""
    scores = _Scores(views, c)
    best_alpha = scores.best_alpha
    best = dict(SEARCH_START, alpha_daily=grid[-1])
    has_triggers = any(bool(v.sample.train.triggers.any()) for v in views)
    fitted = sorted({k for v in views for k, r in v.rhythms.items() if r is not None})
    for _ in range(2):  # two rounds of coordinate search
        best = max(
            (best_alpha(dict(best, blur=blur, beta=beta), grid) for blur in BLUR_GRID for beta in BETA_GRID),
            key=lambda t: t[0],
        )[1]
        if has_triggers:
            best = max(
                (
                    best_alpha(dict(best, trigger_weight=w, other_trigger_weight=v), grid)
                    for w in TRIGGER_GRID
                    for v in TRIGGER_GRID
                ),
                key=lambda t: t[0],
            )[1]
        best = _choose_rhythms(best, fitted, lambda p: best_alpha(p, grid))
    best = max((dict(best, alpha_weekly=a) for a in [*grid, np.inf]), key=scores.weekly_ll)
    out = {k: float(v) for k, v in best.items()}
    out["alpha_weekly"] = min(out["alpha_weekly"], 1e6)  # JSON has no infinity
    out["heldout_loglik"] = scores.weekly_ll(best)
    out["heldout_loglik_cohort"] = scores.cohort_ll()
    return out


def _channel_views(
    folds: list[_Fold],
    codes: np.ndarray,
    c: int,
    cohorts: list[_Cohorts],
    rhythms: list[dict[tuple[int, bool], Rhythms | None]],
) -> list[_ChannelFold]:
    """Channel c's view of every block that has held-out people on it."""
    views = []
    for fold, coh, rhy in zip(folds, cohorts, rhythms, strict=True):
        sample = fold.samples[c]
        if sample is None:
            continue
        part_codes = codes[sample.rows]
        views.append(
            _ChannelFold(
                sample,
                part_codes,
                coh,
                rhy,
                _DailyInputs.build(sample.train, coh, part_codes, c, rhy),
                _DailyHeldout.build(sample.held, coh, part_codes, c),
            )
        )
    return views


def _choose_weekend_shift(
    folds: list[_Fold], channels: list[int], codes: np.ndarray, strength: np.ndarray, grid: list[float]
) -> int:
    """How many hours later habits run at the weekend, by the full held-out log-likelihood of both
    channels' hour-of-week shapes (each channel at its best blur and daily strength for that shift).

    A shift lets a person's weekday habit, learnt from all seven days, land at the right weekend hour;
    the cohort's weekday/weekend modulation alone can only reweigh hours, not move a personal peak.
    One shift for both channels: a person's weekend lie-in moves both, and a small export's few
    weekend SMS answers alone picked shifts at random. 0 is one of the choices. `channels`: those with
    held-out people to judge by."""

    def score(shift: int) -> float:
        cohorts = [_cohorts(*fold.cohort_sums, strength, np.full(2, shift)) for fold in folds]
        total, events = 0.0, 0.0
        for c in channels:
            scores = _Scores(_channel_views(folds, codes, c, cohorts, [{}] * len(folds)), c)
            best = max(
                (scores.best_alpha(dict(SEARCH_START, blur=b), grid) for b in BLUR_GRID), key=lambda t: t[0]
            )
            total += scores.weekly_ll(best[1]) * sum(scores.events)
            events += sum(scores.events)
        return total / max(events, 1e-9)

    if not channels:
        return 0
    return max(sorted(WEEKEND_SHIFT_GRID, key=abs), key=score)  # ties go to the smaller shift, 0 first


def choose_shrinkage(
    base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings, kernel: np.ndarray
) -> dict[str, dict[str, float]]:
    """Per channel, pick every strength by the log-likelihood of held-out blocks of the history.

    Each block (the last `holdout_days` before as_of, then earlier ones, up to `holdout_folds`) is
    predicted from the evidence outside it, and the scores add up over blocks, weighted by their events.
    Blocks are added newest first until each channel has ENOUGH_HELDOUT_ROWS held-out people (at most
    MAX_HELDOUT_ROWS are sampled): one block alone left the sparse channel (SMS: a few hundred people in
    a small export) to chance, the strengths it picked swinging from world to world by more than they
    gained; a large export stops after one block and pays nothing.

    Coordinate search: cohort strength; then, twice, hour-of-day blur x borrowing from the other channel
    (beta) x daily strength, triggered-send weights x daily strength, and typical rhythms (how many, how
    much of the cohort prior they replace, how far a person's events pick one) x daily strength; last
    the weekly strength.
    """
    names, codes = _cohort_codes(base)
    rng = np.random.default_rng(0)
    past = base.engagements["channel"].to_numpy()[(base.engagements["at"] < as_of).to_numpy()]
    wanted = np.array([MAX_HELDOUT_ROWS if (past == c).any() else 0 for c in range(2)])
    folds: list[_Fold] = []
    for block in heldout_blocks(base, as_of, settings):  # newest first, while some channel needs people
        if folds and not (wanted > MAX_HELDOUT_ROWS - ENOUGH_HELDOUT_ROWS).any():
            break
        folds.append(_Fold.build(base, block, as_of, kernel, settings, codes, len(names), wanted, rng))
        wanted = wanted - [0 if s is None else s.rows.size for s in folds[-1].samples]
    grid = [float(g) for g in settings.shrinkage_grid]
    out: dict[str, dict[str, float]] = {}
    cohort_strength = np.zeros(2)
    judged: list[int] = []  # channels with held-out people
    for c, channel in enumerate(S.CHANNELS):
        used = [(fold, fold.samples[c]) for fold in folds if fold.samples[c] is not None]
        if not used:
            out[channel] = dict(DEFAULT_CHANNEL_SHRINKAGE, heldout_rows=0, heldout_folds=0)
            cohort_strength[c] = DEFAULT_CHANNEL_SHRINKAGE["cohort_strength"]
            continue
        events = [sample.events for _, sample in used]

        def over_blocks(shape_of, c: int = c, used=used, events=events) -> float:
            """shape_of(fold, rows) -> [rows, H]; its held-out log-likelihood over all blocks."""
            lls = [
                _heldout_loglik(shape_of(fold, sample.rows), sample.held, np.arange(sample.rows.size), c)
                for fold, sample in used
            ]
            return float(_over_folds(lls, events))

        def cohort_ll(strength: float, c: int = c, over_blocks=over_blocks) -> float:
            return over_blocks(
                lambda f, r: _cohorts(*f.cohort_sums, np.full(2, strength)).weekly[codes[r], c]
            )

        judged.append(c)
        cohort_strength[c] = max((g * 24 for g in grid), key=cohort_ll)
        population = over_blocks(
            lambda f, r, c=c: np.broadcast_to(_normalise(f.cohort_sums[1] + 1e-3)[c], (r.size, H))
        )
        out[channel] = {
            "cohort_strength": float(cohort_strength[c]),
            "heldout_rows": int(sum(sample.rows.size for _, sample in used)),
            "heldout_folds": len(used),
            "heldout_loglik_population": population,
        }
    shifts = np.full(2, _choose_weekend_shift(folds, judged, codes, cohort_strength, grid))
    for c, channel in enumerate(S.CHANNELS):
        out[channel]["weekend_shift"] = float(shifts[c])
    rhythm_choices = [(k, pool) for k in RHYTHM_TYPES_GRID for pool in (False, True)]
    cohorts = [_cohorts(*fold.cohort_sums, cohort_strength, shifts) for fold in folds]
    folded = [_fold_types(fold.rhythm_evidence, shifts) for fold in folds]
    pooled_shapes: list[dict] = [{} for _ in folds]  # pooled rhythm shapes serve both channels
    for c in judged:
        rhythms = [
            _fit_rhythms(daily, codes, len(names), c, rhythm_choices, pooled)
            if fold.samples[c] is not None
            else {}
            for fold, daily, pooled in zip(folds, folded, pooled_shapes, strict=True)
        ]
        out[S.CHANNELS[c]].update(_search_channel(_channel_views(folds, codes, c, cohorts, rhythms), c, grid))
    return out


# ------------------------------------------------------------------------------------------- levels
def _levels(
    base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings, codes: np.ndarray, n_cohorts: int
) -> tuple[pd.DataFrame, np.ndarray]:
    n = len(base.subscribers)
    sends = base.sends[base.sends["at"] < as_of]
    eng = base.engagements[base.engagements["at"] < as_of]
    hl = settings.half_life_days

    def per(frame: pd.DataFrame, weight: np.ndarray | None = None) -> np.ndarray:
        flat = frame["sub"].to_numpy().astype(np.int64) * 2 + frame["channel"].to_numpy()
        return np.bincount(flat, weights=weight, minlength=n * 2).reshape(n, 2)

    n_sends = per(sends)
    w_sends = per(sends, _age_weight(sends["at"], as_of, hl))
    clicks = eng[eng["kind"] == CLICK_KIND]
    n_clicks = per(clicks)
    w_clicks = per(clicks, _age_weight(clicks["at"], as_of, hl))
    n_eng = per(eng)
    w_eng = per(eng, _age_weight(eng["at"], as_of, hl))

    cohort_rates = np.zeros((n_cohorts, 2, 2))
    pop_sends = w_sends.sum(axis=0) + 1e-9
    pop_rates = np.stack([w_clicks.sum(axis=0) / pop_sends, w_eng.sum(axis=0) / pop_sends], axis=-1)  # [2, 2]
    for k, (num, den) in enumerate(((w_clicks, w_sends), (w_eng, w_sends))):
        num_c = np.zeros((n_cohorts, 2))
        den_c = np.zeros((n_cohorts, 2))
        np.add.at(num_c, codes, num)
        np.add.at(den_c, codes, den)
        cohort_rates[..., k] = (num_c + RATE_PRIOR_SENDS * 5 * pop_rates[None, :, k]) / (
            den_c + RATE_PRIOR_SENDS * 5
        )
    prior = cohort_rates[codes]  # [n, 2, 2]
    click_rate = (w_clicks + RATE_PRIOR_SENDS * prior[..., 0]) / (w_sends + RATE_PRIOR_SENDS)
    engage_rate = (w_eng + RATE_PRIOR_SENDS * prior[..., 1]) / (w_sends + RATE_PRIOR_SENDS)

    table = pd.DataFrame(index=range(n))
    last_any = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    last_channel = np.full(n, -1, dtype=np.int8)
    opted, why = suppressed_as_of(base.optouts, as_of, n, settings)
    for c, name in enumerate(S.CHANNELS):
        table[f"{name}_sends"] = n_sends[:, c]
        table[f"{name}_clicks"] = n_clicks[:, c]
        table[f"{name}_engagements"] = n_eng[:, c]
        table[f"{name}_click_rate"] = click_rate[:, c]
        table[f"{name}_engage_rate"] = engage_rate[:, c]
        last = eng[eng["channel"] == c].groupby("sub")["at"].max()
        last_c = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
        last_c.loc[last.index] = last.to_numpy()
        table[f"{name}_recency_days"] = ((as_of - last_c).dt.total_seconds() / 86400.0).to_numpy()
        newer = last_c.notna() & (last_any.isna() | (last_c > last_any))
        last_any = last_any.where(~newer, last_c)
        last_channel[newer.to_numpy()] = c
        table[f"{name}_opted_out"] = opted[:, c]
        table[f"{name}_optout_reason"] = why[:, c]  # "" where not opted out; e.g. "hard bounce on 2026-10-07"
    table["recency_days"] = ((as_of - last_any).dt.total_seconds() / 86400.0).to_numpy()
    first = pd.concat([sends[["sub", "at"]], eng[["sub", "at"]]]).groupby("sub")["at"].min()
    first_seen = pd.Series(as_of, index=range(n), dtype="datetime64[ns, UTC]")
    first_seen.loc[first.index] = first.to_numpy()
    # counts grow with the length of history; per-week rates do not, so old and new snapshots compare
    table["weeks_observed"] = np.maximum(
        (as_of - first_seen).dt.total_seconds().to_numpy() / (7 * 86400.0), 1.0
    )
    table["last_engaged_channel"] = last_channel
    return table, cohort_rates


# -------------------------------------------------------------------------------------------- time
def timezones_as_of(base: FeatureBase, as_of: pd.Timestamp, settings: ProfileSettings) -> FeatureBase:
    """People with no known timezone get one inferred from when they engaged *before as_of*.

    Inference is point-in-time like everything else here: a later engagement must not move a
    person's clock (and with it every local hour of their history) in a profile built before it.
    Their events' local hours are recomputed in the inferred zone; everybody else is untouched.
    """
    subs = base.subscribers
    unknown = (subs[S.TZ_SOURCE] == "default").to_numpy()
    eng = base.engagements[base.engagements["at"] < as_of]
    if not unknown.any() or eng.empty:
        return base
    sub = eng["sub"].to_numpy()
    of_unknown = unknown[sub]
    rows = np.flatnonzero(unknown)
    position = np.full(len(subs), -1)
    position[rows] = np.arange(rows.size)
    utc_how = local_time.local_hour_of_week(eng["at"][of_unknown].reset_index(drop=True), "UTC").astype(
        np.int64
    )
    counts = np.zeros((rows.size, H))
    np.add.at(counts, (position[sub[of_unknown]], utc_how), 1.0)
    population = (
        np.bincount(eng["how"].to_numpy()[~of_unknown].astype(np.int64), minlength=H).astype(float) + 1.0
    )
    candidates = sorted(set(subs["timezone"].astype(str)))
    zones, _ = local_time.infer_timezone_from_activity(
        counts,
        population / population.sum(),
        candidates,
        eng["at"].max(),
        settings.min_events_for_activity_tz,
    )
    current = subs["timezone"].to_numpy(dtype=object)[rows]
    moved = np.array([z is not None and z != c for z, c in zip(zones, current, strict=True)], dtype=bool)
    if not moved.any():
        return base
    subs = subs.copy()
    subs.loc[rows[moved], "timezone"] = np.asarray(zones, dtype=object)[moved]
    subs.loc[rows[moved], S.TZ_SOURCE] = "activity"
    changed = np.zeros(len(subs), dtype=bool)
    changed[rows[moved]] = True
    zone_of = subs["timezone"].to_numpy(dtype=object)

    def relocal(frame: pd.DataFrame) -> pd.DataFrame:
        hit = changed[frame["sub"].to_numpy()]
        if not hit.any():
            return frame
        frame = frame.copy()
        part = frame.loc[hit]
        frame.loc[hit, "how"] = local_time.local_hour_of_week(
            part["at"].reset_index(drop=True), pd.Series(zone_of[part["sub"].to_numpy()])
        )
        return frame

    return replace(base, subscribers=subs, sends=relocal(base.sends), engagements=relocal(base.engagements))


# ---------------------------------------------------------------------------------------------- build
@threadpool_limits.wrap(limits=1, user_api="blas")
def build_profiles(
    base: FeatureBase,
    as_of: pd.Timestamp | str,
    settings: ProfileSettings | None = None,
    shrinkage: dict[str, dict[str, float]] | None = None,
) -> Profiles:
    """Profiles from events strictly before `as_of`; `shrinkage` None chooses it on held-out blocks.

    BLAS runs on one thread here: the products are small ([people, 24] x [24, rhythms]) and a
    multi-threaded BLAS spinning for them on a busy 2-core machine made profiles 4x slower.
    """
    settings = settings or ProfileSettings()
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    base = timezones_as_of(base, as_of, settings)
    past = base.engagements[base.engagements["at"] < as_of]
    kernel = delay_kernel(past)
    if shrinkage is None:
        shrinkage = choose_shrinkage(base, as_of, settings, kernel)
    names, codes = _cohort_codes(base)
    ev = _evidence(base, None, as_of, as_of, kernel, settings.half_life_days)
    params = [shrinkage[c] for c in S.CHANNELS]
    shifts = np.array([int(p.get("weekend_shift", 0)) for p in params])
    strengths = np.array([p["cohort_strength"] for p in params])
    coh = _cohorts(*_cohort_sums(ev, codes, len(names)), strengths, shifts)
    cohort_shape, pop_shape = coh.weekly, coh.population
    daily = _fold_types(_rhythm_evidence(ev), shifts) if any(_rhythm_types(p) for p in params) else None
    shape = np.empty(ev.corrected.shape, np.float32)
    pooled_shapes: dict = {}
    for c in range(2):
        rhythms = (
            _fit_rhythms(daily, codes, len(names), c, _rhythm_types(params[c]), pooled_shapes)
            if daily is not None
            else {}
        )
        shape[:, c] = _person_shapes(ev, coh, codes, c, params[c], rhythms)

    reach = response_kernel(kernel)

    def respond(x: np.ndarray) -> np.ndarray:
        out = np.stack([circular_convolve(x[..., c, :], reach[c], forward=True) for c in range(2)], axis=-2)
        return (out / out.mean(axis=-1, keepdims=True)).astype(np.float32)

    table, cohort_rates = _levels(base, as_of, settings, codes, len(names))
    subs = base.subscribers
    identity_cols = [S.SUBSCRIBER_ID, "timezone", S.TZ_SOURCE, "phone_state", "has_email", "has_sms"]
    table = pd.concat([subs[identity_cols].reset_index(drop=True), table], axis=1)
    table["cohort"] = codes
    cohort_data = np.zeros((len(names), 2))
    np.add.at(cohort_data, codes, ev.counts)
    for c, name in enumerate(S.CHANNELS):
        own = ev.counts[:, c] / (ev.counts[:, c] + params[c]["alpha_daily"])
        linked = (ev.counts[:, 1 - c] > 0) & (params[c]["beta"] > 0)
        cohort_weight = cohort_data[codes, c] / (cohort_data[codes, c] + params[c]["cohort_strength"])
        source = np.where(own >= 0.5, 0, np.where(linked, 1, np.where(cohort_weight >= 0.5, 2, 3)))
        table[f"{name}_pattern_source"] = np.asarray(PATTERN_SOURCES, dtype=object)[source]
        table[f"{name}_data_weight"] = own
    span = base.span if len(base.engagements) or len(base.sends) else (as_of, as_of)
    return Profiles(
        as_of=as_of,
        table=table,
        shape=shape,
        response=respond(shape),
        cohorts=names,
        cohort_shape=cohort_shape.astype(np.float32),
        cohort_response=respond(cohort_shape),
        cohort_rates=cohort_rates.astype(np.float32),
        population_shape=pop_shape.astype(np.float32),
        population_response=respond(pop_shape),
        kernel=kernel.astype(np.float32),
        shrinkage=shrinkage,
        has_sends=base.has_sends,
        addresses=base.addresses,
        data_span=(str(span[0]), str(min(span[1], as_of))),
    )
