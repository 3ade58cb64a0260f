"""Quality benchmark on simulated worlds: capture, log loss and calibration of the model against the
baselines, per seed and size, each measured in the same `sendtime train` run.

    python -m sendtime.experiments.bench_capture --seeds 0 1 2 --subscribers 2000 5000 [--days 84]

Capture is the share of the oracle's gain over a campaign-time send that a plan wins, over seven daily
24 h campaigns in the test week; "budget" is the same with SMS for at most 30% of the audience.
Every training run gets a fresh store of its own (`<cache>/home-<size>-<days>-<seed>`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import pandas as pd

BASELINES = ("campaign_time", "population_best_hour", "most_frequent_hour", "smoothed_histogram")


def run_one(seed: int, subscribers: int, days: int, cache: Path) -> dict:
    from sendtime.configs.settings import load_settings
    from sendtime.experiments.simulate import simulate
    from sendtime.training.pipeline import train

    world = cache / f"world-{subscribers}-{days}-{seed}"
    if not (world / "events.parquet").exists():
        simulate(world, subscribers=subscribers, days=days, seed=seed)
    home = cache / f"home-{subscribers}-{days}-{seed}"  # one store per run, kept for a look in the MLflow UI
    shutil.rmtree(home, ignore_errors=True)
    os.environ["SENDTIME_HOME"] = str(home)
    t0 = time.perf_counter()
    result = train(world, load_settings(), progress=False, echo=lambda *_: None)
    seconds = time.perf_counter() - t0
    m = result.metrics
    row = {
        "seed": seed,
        "subscribers": subscribers,
        "days": days,
        "train_s": seconds,
        "capture": m["model_capture"],
        "capture_budget30": m["budget30_model_capture"],
        "log_loss": m["log_loss"],
        "auc": m["auc"],
        "calibration_error": m["calibration_error"],
    }
    for b in BASELINES:
        row[f"{b}_capture"] = m[f"{b}_capture"]
        row[f"{b}_log_loss"] = m[f"{b}_log_loss"]
    row["best_baseline_capture"] = max(m[f"{b}_capture"] for b in BASELINES)
    row["best_baseline_log_loss"] = min(m[f"{b}_log_loss"] for b in BASELINES)
    return row


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: no spinning threads
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--days", type=int, nargs="+", default=[84])
    parser.add_argument("--cache", type=Path, default=Path(".sendtime/bench"))
    parser.add_argument("--out", type=Path, help="also write the table as CSV")
    args = parser.parse_args()
    rows = []
    for days in args.days:
        for size in args.subscribers:
            for seed in args.seeds:
                rows.append(run_one(seed, size, days, args.cache))
                r = rows[-1]
                print(
                    f"seed {seed} | {size:,} people x {days} days | capture {r['capture']:.3f} (budget 30% "
                    f"{r['capture_budget30']:.3f}; best baseline {r['best_baseline_capture']:.3f}, smoothed histogram "
                    f"{r['smoothed_histogram_capture']:.3f}) | log loss {r['log_loss']:.4f} vs best baseline "
                    f"{r['best_baseline_log_loss']:.4f} | AUC {r['auc']:.3f} | train {r['train_s']:.0f} s",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    cols = [
        "capture",
        "capture_budget30",
        "smoothed_histogram_capture",
        "best_baseline_capture",
        "log_loss",
        "best_baseline_log_loss",
        "calibration_error",
        "train_s",
    ]
    print("\nmedians per size:")
    print(table.groupby(["subscribers", "days"])[cols].median().to_string(float_format=lambda v: f"{v:.4f}"))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
