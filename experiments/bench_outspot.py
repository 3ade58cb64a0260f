"""Real-data benchmark on Outspot's newsletter opens (../shared/data/outspot): which local hours will a
subscriber open in, after a cut-off, given their opens before it?

    python -m sendtime.experiments.bench_outspot [--file opens_2013_2023.csv] [--cutoff-share 0.7]

The cut-off is the instant before which `cutoff-share` of the (deduplicated) opens lie.

The opens are turned into a contract data folder (channel email, event open, address a placeholder per
user id, timezone Europe/Brussels) and go through the same loader, signals and profile estimator as any
export. Opens-only exports have no sends, so no exposure correction is possible; the estimator shrinks
each person's history toward the cohort with strengths chosen on held-out weeks before the cut-off.

Reported per method, on every open after the cut-off of a subscriber with at least one open before it:
- hit@3: share of later opens whose local hour is among the method's top 3 hours for that subscriber;
- mean log-likelihood per open of the local hour (natural log; uniform = log(1/24) = -3.18).
Baselines: the population's top 3 hours (and distribution), and the subscriber's raw histogram (top 3,
and its distribution with a tiny floor so unseen hours are not impossible). The shop sent in two daily
slots (06-09 and 12-15 UTC), so every method is judged on opens shaped by those slots: hours right after
the slots are a strong population answer; a personal method must beat it on the person's own hours.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "outspot"
TIMEZONE = "Europe/Brussels"
RAW_FLOOR = 1e-3


def to_folder(csv: Path, out: Path) -> Path:
    raw = pd.read_csv(csv, dtype=str)
    raw.columns = [c.strip().lower() for c in raw.columns]
    address = "user" + raw["user_id"].str.strip() + "@outspot.invalid"
    events = pd.DataFrame(
        {S.TIMESTAMP: raw["opened"], S.CHANNEL: S.EMAIL, S.EVENT_TYPE: S.OPEN, S.ADDRESS: address}
    )
    out.mkdir(parents=True, exist_ok=True)
    events.to_csv(out / "events.csv", index=False)
    subs = pd.DataFrame({S.ADDRESS: address.unique(), S.CHANNEL: S.EMAIL, S.TIMEZONE: TIMEZONE})
    subs.to_csv(out / "subscribers.csv", index=False)
    return out


def top3_hits(dist: np.ndarray, rows: np.ndarray, hours: np.ndarray) -> np.ndarray:
    top = np.argsort(-dist, axis=1, kind="stable")[:, :3]
    return (top[rows] == hours[:, None]).any(axis=1)


def evaluate(folder: Path, cutoff_share: float) -> pd.DataFrame:
    from sendtime.configs.settings import load_settings
    from sendtime.features.load import load_folder
    from sendtime.features.prepare import build_feature_base
    from sendtime.features.profiles import build_profiles

    settings = load_settings()
    data = load_folder(folder, settings.data)
    base = build_feature_base(data, settings)
    eng = base.engagements
    cutoff = eng["at"].quantile(cutoff_share)
    profiles = build_profiles(base, cutoff, settings.profiles)
    hod = eng["how"].to_numpy() % 24
    before = (eng["at"] < cutoff).to_numpy()
    n = len(base.subscribers)
    raw = np.zeros((n, 24))
    np.add.at(raw, (eng["sub"].to_numpy()[before], hod[before]), 1.0)
    seen = raw.sum(axis=1) > 0
    after = ~before & seen[eng["sub"].to_numpy()]
    rows, hours = eng["sub"].to_numpy()[after], hod[after]

    population = raw.sum(axis=0) / raw.sum()
    methods = {
        "sendtime profile": profiles.shape[:, 0].reshape(n, 7, 24).sum(axis=1),
        "population top-3": np.broadcast_to(population, (n, 24)),
        "per-subscriber raw top-3": (raw + RAW_FLOOR) / (raw + RAW_FLOOR).sum(axis=1, keepdims=True),
    }
    out = []
    for name, dist in methods.items():
        dist = dist / dist.sum(axis=1, keepdims=True)
        hits = top3_hits(dist + 1e-12 * np.arange(24)[::-1], rows, hours)  # ties: earlier hour first
        out.append(
            {"method": name, "hit@3": hits.mean(), "loglik_per_open": np.log(dist[rows, hours]).mean()}
        )
    table = pd.DataFrame(out)
    table.attrs.update(
        {
            "cutoff": str(cutoff),
            "later_opens": int(after.sum()),
            "subscribers": int(seen.sum()),
            "shrinkage": profiles.shrinkage["email"].to_dict(),
            "automated_readers": base.stats.get("automated_readers"),
        }
    )
    return table


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: no spinning threads
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--file", nargs="+", default=["opens_2013_2023.csv", "opens_2021_2023.csv"])
    parser.add_argument(
        "--cutoff-share",
        type=float,
        default=0.7,
        help="cut-off: this share of the (deduplicated) opens lies before it",
    )
    args = parser.parse_args()
    for name in args.file:
        with tempfile.TemporaryDirectory() as tmp:
            table = evaluate(to_folder(args.data / name, Path(tmp)), args.cutoff_share)
        print(
            f"\n{name}: cut-off {table.attrs['cutoff']}, {table.attrs['later_opens']:,} later opens of "
            f"{table.attrs['subscribers']:,} subscribers"
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        shrink = {k: round(v, 3) for k, v in table.attrs["shrinkage"].items()}
        print(f"chosen on held-out weeks: {shrink}")


if __name__ == "__main__":
    main()
