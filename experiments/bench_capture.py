"""Quality benchmark on simulated worlds: capture, log loss and calibration of the model against the
baselines, per seed and size, each measured in the same `sendtime train` run.

    python -m sendtime.experiments.bench_capture --seeds 0 1 2 --subscribers 2000 5000 [--days 84]
    python -m sendtime.experiments.bench_capture --zoo all --seeds 0 --subscribers 4000 --weeks 8 [--reference]

`--zoo` runs the worlds of `experiments/zoo` (written independently of the estimator) instead of
`sendtime simulate`'s; `--reference` adds the simulate world at 2,000 people x 84 days to the same table.

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

from sendtime.training.baselines import NAMES as BASELINES


def run_one(
    seed: int, subscribers: int, days: int, cache: Path, zoo: str | None = None, hour_source: str = "auto"
) -> dict:
    from sendtime.configs.settings import load_settings
    from sendtime.experiments.simulate import simulate
    from sendtime.workflows.train import train

    tag = f"{subscribers}-{days}-{seed}" if zoo is None else f"zoo-{zoo}-{subscribers}-{days}-{seed}"
    world = cache / f"world-{tag}"
    if not (world / "ground_truth" / "response.npy").exists():
        if zoo is None:
            simulate(world, subscribers=subscribers, days=days, seed=seed)
        else:
            from sendtime.experiments.zoo import generate

            generate(zoo, world, subscribers=subscribers, weeks=days // 7, seed=seed)
    home = cache / f"home-{tag}"  # one store per run, kept for a look in the MLflow UI
    shutil.rmtree(home, ignore_errors=True)
    os.environ["SENDTIME_HOME"] = str(home)
    t0 = time.perf_counter()
    settings = load_settings(overrides={"training": {"hour_source": hour_source}})
    result = train(world, settings, progress=False, echo=lambda *_: None)
    seconds = time.perf_counter() - t0
    m = result.metrics
    row = {
        "world": zoo or "simulate",
        "seed": seed,
        "subscribers": subscribers,
        "days": days,
        "train_s": seconds,
        "split": result.design,  # `sendtime train` chooses the split for the span by itself
        "capture": m["model_capture"],
        "capture_budget30": m["budget30_model_capture"],
        "log_loss": m["log_loss"],
        "auc": m["auc"],
        "calibration_error": m["calibration_error"],
        "hour_source": hour_source,
    }
    for c in ("email", "sms"):  # the hour guard (training/hour_guard.py): who placed the hours, and why
        row[f"{c}_hours_by_profile"] = m.get(f"hour_guard_{c}_profile", float("nan"))
        row[f"{c}_guard_diff"] = m.get(f"hour_guard_{c}_diff", float("nan"))
        row[f"{c}_guard_se"] = m.get(f"hour_guard_{c}_se", float("nan"))
    for b in BASELINES:
        row[f"{b}_capture"] = m[f"{b}_capture"]
        row[f"{b}_log_loss"] = m[f"{b}_log_loss"]
    row["budget_smoothed_histogram_capture"] = m["budget30_smoothed_histogram_capture"]
    row["best_baseline_capture"] = max(m[f"{b}_capture"] for b in BASELINES)
    row["best_baseline_log_loss"] = min(m[f"{b}_log_loss"] for b in BASELINES)
    return row


def _line(r: dict) -> str:
    return (
        f"{r['world']} seed {r['seed']} | {r['subscribers']:,} people x {r['days']} days | capture "
        f"{r['capture']:.3f} (budget 30% {r['capture_budget30']:.3f}; smoothed histogram "
        f"{r['smoothed_histogram_capture']:.3f}, exposure-corrected {r['exposure_corrected_histogram_capture']:.3f}, "
        f"population best hour {r['population_best_hour_capture']:.3f}, best baseline "
        f"{r['best_baseline_capture']:.3f}) | log loss {r['log_loss']:.4f} vs best baseline "
        f"{r['best_baseline_log_loss']:.4f} | AUC {r['auc']:.3f} | train {r['train_s']:.0f} s | hours "
        + ", ".join(
            f"{c} by {'profile' if r[f'{c}_hours_by_profile'] == 1 else 'model'} (model - profile "
            f"{r[f'{c}_guard_diff']:+.4f}, SE {r[f'{c}_guard_se']:.4f})"
            for c in ("email", "sms")
        )
    )


def markdown(table: pd.DataFrame) -> str:
    """The README's table: one line per world and seed."""
    head = (
        "| world | seed | people x days | capture | capture, 30% SMS budget | smoothed histogram | "
        "exposure-corrected histogram | population best hour | best baseline | log loss | "
        "best baseline log loss |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in table.to_dict("records"):
        best = max(BASELINES, key=lambda b: r[f"{b}_capture"])
        lines.append(
            f"| {r['world']} | {r['seed']} | {r['subscribers']:,} x {r['days']} | {r['capture']:.3f} | "
            f"{r['capture_budget30']:.3f} | {r['smoothed_histogram_capture']:.3f} | "
            f"{r['exposure_corrected_histogram_capture']:.3f} | {r['population_best_hour_capture']:.3f} | "
            f"{r['best_baseline_capture']:.3f} ({best.replace('_', ' ')}) | "
            f"{r['log_loss']:.4f} | {r['best_baseline_log_loss']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: no spinning threads
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--days", type=int, nargs="+", default=[84])
    parser.add_argument(
        "--zoo", nargs="+", metavar="WORLD", help="zoo worlds instead of simulate's ('all': every one)"
    )
    parser.add_argument(
        "--weeks", type=int, nargs="+", help="with --zoo: export lengths in weeks (default 8)"
    )
    parser.add_argument(
        "--reference", action="store_true", help="also the simulate world at 2,000 people x 84 days, seed 0"
    )
    parser.add_argument(
        "--hour-source",
        choices=["auto", "model", "profile"],
        default="auto",
        help="training.hour_source: auto = the hour guard decides (default); model or profile forces it",
    )
    parser.add_argument("--cache", type=Path, default=Path(".sendtime/bench"))
    parser.add_argument("--out", type=Path, help="also write the table as CSV")
    parser.add_argument("--table", type=Path, help="only print the README table of a CSV written by --out")
    args = parser.parse_args()
    if args.table:
        print(markdown(pd.read_csv(args.table)))
        return
    jobs: list[tuple[int, int, int, str | None]] = []
    if args.zoo:
        from sendtime.experiments.zoo import WORLDS

        names = list(WORLDS) if args.zoo == ["all"] else args.zoo
        unknown = sorted(set(names) - set(WORLDS))
        if unknown:
            parser.error(f"--zoo: unknown world(s) {unknown}; known: {', '.join(WORLDS)}")
        days_list = [7 * w for w in (args.weeks or [8])]
        jobs += [(s, n, d, w) for w in names for d in days_list for n in args.subscribers for s in args.seeds]
    else:
        jobs += [(s, n, d, None) for d in args.days for n in args.subscribers for s in args.seeds]
    if args.reference:
        jobs.append((0, 2000, 84, None))
    rows = []
    for seed, size, days, zoo in jobs:
        rows.append(run_one(seed, size, days, args.cache, zoo, args.hour_source))
        print(_line(rows[-1]), flush=True)
        if args.out:  # written after every run too: a long benchmark keeps what it measured
            pd.DataFrame(rows).to_csv(args.out, index=False)
    table = pd.DataFrame(rows)
    cols = [
        "capture",
        "capture_budget30",
        "smoothed_histogram_capture",
        "exposure_corrected_histogram_capture",
        "population_best_hour_capture",
        "best_baseline_capture",
        "log_loss",
        "best_baseline_log_loss",
        "calibration_error",
        "train_s",
    ]
    print("\nmedians per world and size:")
    print(
        table.groupby(["world", "subscribers", "days"])[cols]
        .median()
        .to_string(float_format=lambda v: f"{v:.4f}")
    )
    print("\n" + markdown(table))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
