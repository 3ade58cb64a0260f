"""Point-in-time subscriber profiles: when each person engages, on which channel, and how much.

`build_profiles(base, as_of)` reads only events strictly before `as_of`, so a profile used to label a
send never saw what happened after it. See docs/estimator.md for the reasoning; in short:

* **Shape** (when): per subscriber and channel a distribution over the 168 local hours of the week.
  Each engagement is weighted by its age (a half-life chosen per channel on held-out blocks, relative
  within the person: their weights sum to their event count) and divided by the subscriber's *exposure* at
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

Where each part lives: exposure and the delay kernel in features/exposure.py, priors and the two-level
smoothing in features/priors.py (typical rhythms: features/rhythms.py), the strengths in
features/strengths.py and their held-out search in features/shrinkage.py (blocks: features/heldout.py),
levels in features/levels.py. This module holds the `Profiles` object and `build_profiles`, which
puts them together.
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
from sendtime.features.exposure import circular_convolve, delay_kernel, evidence, response_kernel
from sendtime.features.levels import rate_levels
from sendtime.features.prepare import FeatureBase
from sendtime.features.priors import (
    cohort_codes,
    cohort_sums,
    fold_types,
    person_shapes,
    rhythm_evidence,
    smoothed_cohorts,
)
from sendtime.features.rhythms import fit_channel_rhythms
from sendtime.features.shrinkage import choose_shrinkage
from sendtime.features.strengths import ChannelStrengths, Shrinkage

H = S.HOURS_PER_WEEK
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
    shrinkage: Shrinkage
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
        # uncompressed: zlib over [people, 2, 168] floats took most of a large refresh (~25x slower to
        # write, ~3x to load, for files only ~10% smaller); np.load reads snapshots written either way
        np.savez(
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
            "shrinkage": self.shrinkage.to_dict(),
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
            shrinkage=Shrinkage.from_dict(meta["shrinkage"]),
            has_sends=bool(meta["has_sends"]),
            addresses=pd.read_parquet(folder / "addresses.parquet"),
            data_span=tuple(meta["data_span"]),
        )

    def cohort_index(self, timezones: np.ndarray) -> np.ndarray:
        """Cohort row per timezone; -1 (population) for a timezone no profile had."""
        return pd.Index(self.cohorts).get_indexer(pd.Index(timezones, dtype=object))


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


@threadpool_limits.wrap(limits=1, user_api="blas")
def build_profiles(
    base: FeatureBase,
    as_of: pd.Timestamp | str,
    settings: ProfileSettings | None = None,
    shrinkage: Shrinkage | None = None,
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
    names, codes = cohort_codes(base)
    params = [shrinkage[c] for c in S.CHANNELS]
    ev = evidence(base, kernel, as_of, half_life=[p.half_life_days for p in params])
    shifts = np.array([p.weekend_shift for p in params])
    strengths = np.array([p.cohort_strength for p in params])
    coh = smoothed_cohorts(*cohort_sums(ev, codes, len(names)), strengths, shifts)
    cohort_shape, pop_shape = coh.weekly, coh.population
    daily = fold_types(rhythm_evidence(ev), shifts) if any(p.uses_rhythms for p in params) else None
    shape = np.empty(ev.corrected.shape, np.float32)
    pooled_shapes: dict = {}
    for c in range(2):
        rhythms = (
            fit_channel_rhythms(daily, codes, len(names), c, _used_rhythms(params[c]), pooled_shapes)
            if daily is not None
            else {}
        )
        shape[:, c] = person_shapes(ev, coh, codes, c, params[c], rhythms)

    reach = response_kernel(kernel)

    def respond(x: np.ndarray) -> np.ndarray:
        out = np.stack([circular_convolve(x[..., c, :], reach[c], forward=True) for c in range(2)], axis=-2)
        return (out / out.mean(axis=-1, keepdims=True)).astype(np.float32)

    table, cohort_rates = rate_levels(base, as_of, settings, codes, len(names))
    subs = base.subscribers
    identity_cols = [S.SUBSCRIBER_ID, "timezone", S.TZ_SOURCE, "phone_state", "has_email", "has_sms"]
    table = pd.concat([subs[identity_cols].reset_index(drop=True), table], axis=1)
    table["cohort"] = codes
    cohort_data = np.zeros((len(names), 2))
    np.add.at(cohort_data, codes, ev.counts)
    for c, name in enumerate(S.CHANNELS):
        own = ev.counts[:, c] / (ev.counts[:, c] + params[c].alpha_daily)
        linked = (ev.counts[:, 1 - c] > 0) & (params[c].beta > 0)
        cohort_weight = cohort_data[codes, c] / (cohort_data[codes, c] + params[c].cohort_strength)
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


def _used_rhythms(p: ChannelStrengths) -> list[tuple[int, bool]]:
    return [p.rhythm_key] if p.uses_rhythms else []
