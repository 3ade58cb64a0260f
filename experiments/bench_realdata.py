"""Real-data benchmark over several public activity logs: from everything before a cut-off, in which local
hours will each person be active in the week after it?

    python -m sendtime.experiments.realdata          # rebuild the derived tables first (once)
    python -m sendtime.experiments.bench_realdata [--sets ...] [--cutoffs 120] [--resamples 200]

This generalises bench_outspot from one file to every set `realdata` builds (git commit histories with
the authors' own UTC offsets, and Outspot's opens), and from top-3 hours to the decision a sender makes:
one hour to send at, judged by the share of the person's later activity in the 3 hours after it.

Unit of activity: an *active hour*, a (person, local clock hour) with at least one event, so a burst of
twenty commits in one hour counts once, for every method and in the target alike.

Per set, up to `--cutoffs` instants evenly spaced over the quantiles 0.25-0.97 of its active hours, at
least a week apart. For each:
- before = active hours before the cut-off (the only evidence every method gets);
- later = the person's active hours in the 7 days after it; a person counts if they have 2+ active
  hours before and 1+ later, in the stratum "2-9" or "10+" by their active hours before;
- a method picks a local start hour h per person; a later active hour is a hit if its local hour of
  day is h, h+1 or h+2.
Methods (all see the same active hours before the cut-off):
- sendtime profile: sendtime's own estimator (the same loader, signals and `build_profiles` as any
  export; activity as e-mail opens, no sends), its hour-of-day shape's best 3-hour window;
- sendtime profile by weekday: the profile's best 3-hour window of each day of the week (its
  hour-of-week shape), a later active hour judged by its own weekday's window;
- raw window, profile breaks ties: the person's own raw best window, ties going to the window where
  sendtime's profile is heavier (the reading "the person's own hours decide, the prior breaks ties");
- population best window: the best 3-hour window of everyone's active hours before the cut-off;
- raw best window: the person's own active hours' best 3-hour window (ties: the population's better);
- smoothed histogram: the person's hours blurred by +-1 hour plus one pseudo-event spread as the
  population, then its best 3-hour window.
Share = hits / later active hours, pooled over the people of a set and stratum (and over cut-offs);
standard errors bootstrap the people (all of a person's cut-offs move together), the same resamples for
every method so that differences are paired. "pooled" rows average the sets with equal weight.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.experiments import realdata

HOURS = 24
WINDOW = 3
WEEK = pd.Timedelta(days=7)
MAX_OFFSET = pd.Timedelta(hours=14)  # the largest UTC offset: local clocks run at most this far ahead
STRATA = (("2-9", 2, 9), ("10+", 10, None))
SENDTIME, SENDTIME_WEEKDAY = "sendtime profile", "sendtime profile by weekday"
RAW_TIES_SENDTIME = "raw window, profile breaks ties"
POPULATION, RAW, SMOOTHED = "population best window", "raw best window", "smoothed histogram"
METHODS = (SENDTIME, SENDTIME_WEEKDAY, RAW_TIES_SENDTIME, POPULATION, RAW, SMOOTHED)
BASELINES = (POPULATION, RAW, SMOOTHED)


def active_hours(events: pd.DataFrame) -> pd.DataFrame:
    """Derived events -> one row per (person, local clock hour) with activity: person, at (the first
    UTC instant in that hour), local (naive local time, floored to the hour)."""
    local = (events["at"].dt.tz_localize(None) + pd.to_timedelta(events["offset_minutes"], "min")).dt.floor(
        "h"
    )
    frame = pd.DataFrame({"person": events["person"].to_numpy(), "at": events["at"], "local": local})
    out = frame.groupby(["person", "local"], sort=False, as_index=False)["at"].min()
    return out.sort_values("at", kind="stable").reset_index(drop=True)


def choose_cutoffs(active: pd.DataFrame, n: int, low: float = 0.25, high: float = 0.97) -> list[pd.Timestamp]:
    """Up to `n` cut-offs (UTC midnights) at evenly spaced quantiles of the activity between `low` and
    `high`, at least a week apart (so no later week is judged twice) and a full week before the last
    event: quantiles put them where the activity is, not in a project's quiet first years."""
    last = active["at"].max() - WEEK
    qs = np.linspace(low, high, n) if n > 1 else np.array([(low + high) / 2])
    cuts: list[pd.Timestamp] = []
    for c in sorted(active["at"].quantile(qs).dt.floor("D")):
        if c <= last and (not cuts or c - cuts[-1] >= WEEK):
            cuts.append(c)
    return cuts


def window_sums(dist: np.ndarray) -> np.ndarray:
    """[..., 24] -> mass of the 3 hours starting at each hour (circular over the day)."""
    return sum(np.roll(dist, -k, axis=-1) for k in range(WINDOW))


def best_window(dist: np.ndarray, tie_break: np.ndarray | None = None) -> np.ndarray:
    """Start hour of the heaviest 3-hour window per row; ties go to the heavier `tie_break` window
    (e.g. the population's), then to the earlier hour."""
    score = window_sums(np.asarray(dist, dtype=np.float64))
    if tie_break is not None:
        tb = window_sums(np.asarray(tie_break, dtype=np.float64))
        score = score + 1e-9 * tb / max(tb.max(), 1e-300) * np.abs(score).max(axis=-1, keepdims=True).clip(
            1e-300
        )
    return score.argmax(axis=-1)


def in_window(start: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Is `hour` among the 3 hours starting at `start` (hours of day, circular)?"""
    return (np.asarray(hour) - np.asarray(start)) % HOURS < WINDOW


def weekday_windows(shape168: np.ndarray) -> np.ndarray:
    """[m, 168] hour-of-week shape -> [m, 7] start hour of each day's heaviest 3-hour window (a
    window may run past midnight into the next day, circular over the week)."""
    week = window_sums(shape168)  # the window starting at each hour of the week
    return week.reshape(len(shape168), 7, HOURS).argmax(axis=-1)


def bootstrap_share(
    hits: np.ndarray, counts: np.ndarray, resamples: int = 200, seed: int = 0
) -> tuple[float, float, np.ndarray]:
    """Pooled share sum(hits) / sum(counts) over people, with its bootstrap standard error over people.

    `hits` is [methods, people] (or [people]); `counts` is [people]. Returns (share, se, resampled
    shares [resamples, methods]) with the same resamples for every method, so differences are paired.
    """
    hits = np.atleast_2d(np.asarray(hits, dtype=np.float64))
    counts = np.asarray(counts, dtype=np.float64)
    share = hits.sum(axis=1) / counts.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, counts.size, size=(resamples, counts.size))
    boot = hits[:, idx].sum(axis=2).T / np.maximum(counts[idx].sum(axis=1), 1e-300)[:, None]
    se = boot.std(axis=0, ddof=1)
    if share.size == 1:
        return float(share[0]), float(se[0]), boot
    return share, se, boot


def _contract_folder(before: pd.DataFrame, out: Path) -> Path:
    """Active hours -> a contract data folder: one e-mail open per active hour, at the person's local
    wall-clock time written as UTC, everyone in timezone UTC, so sendtime's local hour-of-week is the
    person's own (offsets change with DST and travel; one zone per person could not say that)."""
    address = before["person"] + "@realdata.invalid"
    events = pd.DataFrame(
        {
            S.TIMESTAMP: before["local"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            S.CHANNEL: S.EMAIL,
            S.EVENT_TYPE: S.OPEN,
            S.ADDRESS: address,
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    events.to_csv(out / "events.csv", index=False)
    subs = pd.DataFrame({S.ADDRESS: address.unique(), S.CHANNEL: S.EMAIL, S.TIMEZONE: "UTC"})
    subs.to_csv(out / "subscribers.csv", index=False)
    return out


def sendtime_shapes(before: pd.DataFrame, cutoff: pd.Timestamp, people: np.ndarray, settings) -> np.ndarray:
    """[len(people), 168] e-mail hour-of-week shape of sendtime's profiles as of the cut-off."""
    from sendtime.features.identity import hash_values
    from sendtime.features.load import load_folder
    from sendtime.features.prepare import build_feature_base
    from sendtime.features.profiles import build_profiles

    with tempfile.TemporaryDirectory() as tmp:
        data = load_folder(_contract_folder(before, Path(tmp)), settings.data)
    base = build_feature_base(data, settings)
    # every training event is at most MAX_OFFSET later on the local clock than its instant
    profiles = build_profiles(base, cutoff + MAX_OFFSET, settings.profiles)
    email = S.CHANNELS.index(S.EMAIL)
    addr = base.addresses[base.addresses[S.CHANNEL] == S.EMAIL]
    row_of_sub = pd.Series(np.arange(len(base.subscribers)), index=base.subscribers[S.SUBSCRIBER_ID])
    row_of_hash = pd.Series(row_of_sub.reindex(addr[S.SUBSCRIBER_ID]).to_numpy(), index=addr["address_hash"])
    hashes = hash_values(pd.Series(people + "@realdata.invalid"), settings.salt())
    rows = row_of_hash.reindex(hashes.to_numpy()).to_numpy()
    known = ~np.isnan(rows)
    if not known.all():  # everyone judged has events before the cut-off: the base must hold them
        raise RuntimeError(f"{int((~known).sum())} of {len(people)} people missing from sendtime's profiles")
    return profiles.shape[rows.astype(np.int64), email]


def score_cutoff(
    active: pd.DataFrame, cutoff: pd.Timestamp, settings, shapes_fn=sendtime_shapes
) -> pd.DataFrame:
    """One row per (person, method) of the people judged at this cut-off: stratum, hits, later."""
    before = active[active["at"] < cutoff]
    later = active[(active["at"] >= cutoff) & (active["at"] < cutoff + WEEK)]
    n_before = before.groupby("person").size()
    judged = n_before[n_before >= 2].index.intersection(later["person"].unique())
    if len(judged) == 0:
        return pd.DataFrame(columns=["person", "stratum", "method", "hits", "later", "before"])
    people = np.asarray(sorted(judged), dtype=object)
    pos = pd.Series(np.arange(len(people)), index=people)

    hod_before = before["local"].dt.hour.to_numpy()
    population = np.bincount(hod_before, minlength=HOURS).astype(np.float64)
    population /= population.sum()
    mine = before[before["person"].isin(judged)]
    counts = np.zeros((len(people), HOURS))
    np.add.at(counts, (pos[mine["person"]].to_numpy(), mine["local"].dt.hour.to_numpy()), 1.0)
    blurred = 0.5 * counts + 0.25 * (np.roll(counts, 1, axis=1) + np.roll(counts, -1, axis=1))
    shape = shapes_fn(before, cutoff, people, settings)
    daily = shape.reshape(len(people), 7, HOURS).sum(axis=1)
    starts = {
        SENDTIME: best_window(daily, population),
        POPULATION: np.full(len(people), best_window(population)),
        RAW: best_window(counts, population),
        RAW_TIES_SENDTIME: best_window(counts, daily),
        SMOOTHED: best_window(blurred + population, population),
    }
    later = later[later["person"].isin(judged)]
    row = pos[later["person"]].to_numpy()
    hour = later["local"].dt.hour.to_numpy()
    day = later["local"].dt.dayofweek.to_numpy()
    hit = {name: in_window(start[row], hour) for name, start in starts.items()}
    hit[SENDTIME_WEEKDAY] = in_window(weekday_windows(shape)[row, day], hour)
    n_later = np.bincount(row, minlength=len(people))
    nb = n_before.reindex(people).to_numpy()
    stratum = np.full(len(people), "", dtype=object)
    for name, low, high in STRATA:
        stratum[(nb >= low) & (nb <= (high if high is not None else np.inf))] = name
    frames = [
        pd.DataFrame(
            {
                "person": people,
                "stratum": stratum,
                "method": name,
                "hits": np.bincount(row, weights=hit[name].astype(float), minlength=len(people)),
                "later": n_later,
                "before": nb,
            }
        )
        for name in METHODS
    ]
    return pd.concat(frames, ignore_index=True)


def summarise(records: pd.DataFrame, resamples: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per set and stratum: share and bootstrap SE per method, and sendtime minus the raw window and
    minus the best baseline, with paired SEs. `records` has set, cutoff, person, stratum, method, hits,
    later."""
    rows = []
    groups = records.groupby(["set", "stratum"], sort=False)
    keys = [(name, stratum) for name in pd.unique(records["set"]) for stratum, _, _ in STRATA]
    for name, stratum in (k for k in keys if k in groups.groups):
        grp = groups.get_group((name, stratum))
        per = grp.groupby(["person", "method"])[["hits", "later"]].sum().unstack("method")
        hits = per["hits"][list(METHODS)].to_numpy().T
        later = per["later"][SENDTIME].to_numpy()
        share, se, boot = bootstrap_share(hits, later, resamples, seed)
        row = {"set": name, "stratum": stratum, "people": len(later), "later": int(later.sum())}
        for k, method in enumerate(METHODS):
            row[method], row[f"{method} se"] = share[k], se[k]
        base_idx = [METHODS.index(b) for b in BASELINES]
        row["best baseline"] = METHODS[base_idx[int(np.argmax(share[base_idx]))]]
        for b in BASELINES:  # sendtime minus each baseline, with the paired SE
            k = METHODS.index(b)
            row[f"vs {b}"], row[f"vs {b} se"] = share[0] - share[k], (boot[:, 0] - boot[:, k]).std(ddof=1)
        _name_differences(row)
        rows.append(row)
    table = pd.DataFrame(rows)
    return pd.concat([table, _pooled(table)], ignore_index=True)


def _pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Sets averaged with equal weight; SEs combined as independent."""
    rows = []
    for stratum, grp in table.groupby("stratum", sort=False):
        k = len(grp)
        row = {
            "set": "pooled",
            "stratum": stratum,
            "people": grp["people"].sum(),
            "later": grp["later"].sum(),
        }
        for method in METHODS:
            row[method] = grp[method].mean()
            row[f"{method} se"] = np.sqrt((grp[f"{method} se"] ** 2).sum()) / k
        best = max(BASELINES, key=lambda b: row[b])
        row["best baseline"] = best
        for b in BASELINES:
            row[f"vs {b}"] = row[SENDTIME] - row[b]
            row[f"vs {b} se"] = np.sqrt((grp[f"vs {b} se"] ** 2).sum()) / k
        _name_differences(row)
        rows.append(row)
    return pd.DataFrame(rows)


def _name_differences(row: dict) -> None:
    """The two differences the table shows: against the raw window and against the best baseline."""
    for label, method in (("raw", RAW), ("best", row["best baseline"])):
        row[f"vs {label}"], row[f"vs {label} se"] = row[f"vs {method}"], row[f"vs {method} se"]


def markdown(table: pd.DataFrame) -> str:
    """The summary as a markdown table: share (SE) per method; sendtime minus the raw window (paired SE);
    sendtime's lift over the best baseline, and the difference (paired SE)."""
    head = [
        "set",
        "stratum",
        "people",
        "later active hours",
        *METHODS,
        "sendtime - raw",
        "sendtime vs best baseline",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [str(r["set"]), str(r["stratum"]), f"{int(r['people']):,}", f"{int(r['later']):,}"]
        best = max(r[m] for m in METHODS)
        for m in METHODS:
            text = f"{r[m]:.3f} ({r[f'{m} se']:.3f})"
            cells.append(f"**{text}**" if r[m] == best else text)
        cells.append(f"{r['vs raw']:+.3f} ({r['vs raw se']:.3f})")
        lift = r[SENDTIME] / r[r["best baseline"]] - 1 if r[r["best baseline"]] > 0 else np.nan
        name = r["best baseline"].split(" ")[0]
        cells.append(f"{lift:+.0%} vs {name}: {r['vs best']:+.3f} ({r['vs best se']:.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_set(folder: Path, n_cutoffs: int, settings) -> tuple[pd.DataFrame, dict]:
    active = active_hours(realdata.read_set(folder))
    cuts = choose_cutoffs(active, n_cutoffs)
    frames = [score_cutoff(active, c, settings).assign(cutoff=c) for c in cuts]
    judged = [f for f in frames if len(f)]  # a quiet week judges nobody
    info = {"cutoffs": [str(c.date()) for c in cuts], "active_hours": len(active), "judged": len(judged)}
    return pd.concat(judged, ignore_index=True), info


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: no spinning threads
    from sendtime.configs.settings import load_settings

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None, help="default: $SENDTIME_HOME/realdata")
    parser.add_argument("--sets", nargs="+", default=list(realdata.SET_NAMES))
    parser.add_argument("--cutoffs", type=int, default=120, help="cut-offs per set (at most)")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples over people")
    parser.add_argument("--out", type=Path, default=None, help="markdown table; default DATA/results.md")
    args = parser.parse_args()
    data = args.data or realdata.default_out()
    settings = load_settings()
    records = []
    for name in args.sets:
        if not (data / name / "events.csv.gz").is_file():
            hint = "python -m sendtime.experiments.realdata"
            print(f"{name}: skipped, no derived table under {data / name} ({hint})")
            continue
        frame, info = run_set(data / name, args.cutoffs, settings)
        cuts = info["cutoffs"]
        line = f"{info['active_hours']:,} active hours, {len(cuts)} cut-offs {cuts[0]} .. {cuts[-1]}"
        line += f" ({info['judged']} with someone to judge)"
        print(f"{name}: {line}", flush=True)
        records.append(frame.assign(set=name))
    if not records:
        print("no set to benchmark")
        return
    records = pd.concat(records, ignore_index=True)
    table = summarise(records, args.resamples)
    text = markdown(table)
    print()
    print(text)
    out = args.out or data / "results.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    # per person and cut-off (hashed ids only), for any other cut of the same run
    records.to_csv(out.with_name("records.csv.gz"), index=False)
    print(f"written: {out} and {out.with_name('records.csv.gz')}")


if __name__ == "__main__":
    main()
