"""Benchmark: profiles from raw exports, for simulated worlds of about 1M and 10M events.

    python -m sendtime.experiments.bench_profiles --events 1000000 10000000

Each size is simulated once into a cache folder (not timed), then timed stage by stage: load and
validate, identity + signals + local time (the feature base), point-in-time profiles with held-out
shrinkage. Peak memory is the process's maximum resident set size, measured in a fresh subprocess
per size so one size's peak does not hide the next one's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

EVENTS_PER_PERSON = 112  # the default simulated world (84 days) makes about this many events per person


def world_for(events: int, cache: Path, seed: int = 11) -> Path:
    from sendtime.experiments.simulate import simulate

    people = max(100, round(events / EVENTS_PER_PERSON))
    folder = cache / f"world-{people}"
    if not (folder / "events.parquet").exists():
        print(f"simulating {people:,} people (about {events:,} events) into {folder} ...", flush=True)
        simulate(folder, subscribers=people, days=84, seed=seed)
    return folder


def measure(folder: Path, engine: str) -> dict:
    import pandas as pd

    from sendtime.configs.settings import load_settings
    from sendtime.features.load import load_folder
    from sendtime.features.prepare import build_feature_base
    from sendtime.features.profiles import build_profiles

    settings = load_settings()
    if engine == "spark":  # load = starting the local Spark session; features = read, validate, identity,
        # signals and local time on Spark; profiles = build_profiles on the driver. Peak memory: the driver's
        # Python process only (the JVM and the Python workers are processes of their own).
        import pyarrow.parquet as pq

        from sendtime.features.spark_engine import build_feature_base_spark
        from sendtime.spark_session import local_spark

        t0 = time.perf_counter()
        spark = local_spark()
        t1 = time.perf_counter()
        base = build_feature_base_spark(folder, settings, spark)
        n = pq.ParquetFile(folder / "events.parquet").metadata.num_rows  # simulated exports reject no row
    else:
        t0 = time.perf_counter()
        data = load_folder(folder, settings.data)
        t1 = time.perf_counter()
        base = build_feature_base(data, settings)
        n = len(data.events)
    t2 = time.perf_counter()
    profiles = build_profiles(base, base.span[1] + pd.Timedelta(seconds=1), settings.profiles)
    t3 = time.perf_counter()
    return {
        "events": n,
        "subscribers": len(profiles),
        "load_s": t1 - t0,
        "features_s": t2 - t1,
        "profiles_s": t3 - t2,
        "total_s": t3 - t0,
        "events_per_s": n / (t3 - t0),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: no spinning threads
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--cache", type=Path, default=Path(".sendtime/bench"))
    parser.add_argument("--engine", choices=["local", "spark"], default="local")
    parser.add_argument(
        "--one", type=Path, help=argparse.SUPPRESS
    )  # internal: measure one folder, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.engine)))
        return
    rows = []
    for events in args.events:
        folder = world_for(events, args.cache)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "sendtime.experiments.bench_profiles",
                "--one",
                str(folder),
                "--engine",
                args.engine,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{r['events']:>11,} events {r['subscribers']:>8,} subscribers | load {r['load_s']:6.1f} s | features "
            f"{r['features_s']:6.1f} s | profiles {r['profiles_s']:6.1f} s | total {r['total_s']:6.1f} s | "
            f"{r['events_per_s']:>9,.0f} events/s | peak {r['peak_rss_gb']:.2f} GB",
            flush=True,
        )


if __name__ == "__main__":
    main()
