"""Benchmark of `sendtime schedule`: seconds per stage for audiences of 100k to millions of rows.

    python -m sendtime.experiments.bench_schedule --rows 100000 1000000

Under a SENDTIME_HOME of its own (default: <tmp>/sendtime-bench; reused between runs) it simulates a
world and trains a champion once, then plans audiences of N rows drawn from the world's people (with
replacement) plus ~5% brand-new contacts and a few empty rows, over a 24-hour window, with a 30% SMS
budget and an e-mail and SMS cap per hour that binds (by default `--cap-peak` = 80% of the busiest hour
of the uncapped plan, measured on a 20k-row sample; or `--cap-share` of the rows). Prints the
seconds of each stage (resolve, score, allocate, assemble, write) and the total, the median of
`--repeats` runs for audiences up to 200k rows (one run above; `--big-repeats` to change that).

A resampled audience repeats each simulated person many times. The plan normally sends once per
person; here every row is planned on its own (`duplicates="all"`), so budget and caps work on all N
rows. The scheduler resolves each distinct contact pair and scores each distinct scoring input once,
so `--distinct` also times the model-facing stages for N *different* people: `predictor.resolve` on N
distinct new contacts, and `predictor.score` on the N rows without de-duplication.

`--end-to-end` times the whole plan (`schedule_frame`, then the file) for N *different* people: an
audience whose rows are all distinct contacts, `--new-share` of them never seen (an e-mail and a valid
US mobile-style phone number each, with probability `--new-email` / `--new-phone`), the rest the
world's people; every row scored as its own person (no de-duplication of scoring inputs, one plan per
row), with the same SMS budget and binding caps. Each repeat draws new numbers, so nothing is cached
between runs; `--full-scoring` scores every cell instead of each row's top hours, for comparison.

    python -m sendtime.experiments.bench_schedule --rows 1000000 --end-to-end --big-repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime.serving.top_hours import TOP_K

STAGES = ("resolve", "score", "allocate", "assemble", "write")
AREA_CODES = ("212", "312", "415", "713", "305", "206", "617", "404", "602", "303", "503", "615", "702", "919")  # fmt: skip


def prepare_home(home: Path, subscribers: int, days: int, seed: int) -> Path:
    """A world and a trained champion under `home` (built once, reused); returns the world folder.

    The store lives in a sub-folder named after the model's feature list, so a champion trained before
    the features changed is never loaded (the predictor would refuse it) and never blocks the gate.
    """
    import hashlib

    from sendtime.features.model_features import FEATURES

    home = home / ("features-" + hashlib.sha1(",".join(FEATURES).encode()).hexdigest()[:10])
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SENDTIME_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    from sendtime.configs.settings import load_settings
    from sendtime.training import registry

    world = home / f"world-{subscribers}-{days}-{seed}"
    settings = load_settings()
    registry.configure_mlflow(settings.training.experiment)
    if not (world / "ground_truth" / "people.parquet").exists():
        from sendtime.experiments.simulate import simulate

        t0 = time.perf_counter()
        simulate(world, subscribers=subscribers, days=days, seed=seed)
        print(
            f"simulated {subscribers:,} people x {days} days in {time.perf_counter() - t0:.0f} s -> {world}"
        )
    marker = world / "champion.json"
    if registry.champion_version(settings.training.registered_model) is None or not marker.exists():
        from sendtime.workflows.train import train

        t0 = time.perf_counter()
        result = train(world, settings, progress=False, echo=lambda *_: None)
        marker.write_text(json.dumps({"version": result.version}))
        print(f"trained champion version {result.version} in {time.perf_counter() - t0:.0f} s")
    return world


def make_audience(people: pd.DataFrame, rows: int, seed: int = 0, new_share: float = 0.05) -> pd.DataFrame:
    """N rows: the world's people drawn with replacement, ~5% new contacts, 0.1% empty rows, an own column."""
    rng = np.random.default_rng(seed)
    n_new = int(round(new_share * rows))
    n_empty = max(1, rows // 1000)
    known = people.iloc[rng.integers(0, len(people), rows - n_new - n_empty)]
    k = np.arange(n_new)
    area = rng.choice(["212", "312", "415", "713", "305", "206"], n_new)
    new = pd.DataFrame(
        {
            "email": np.where(rng.random(n_new) < 0.85, [f"new{seed}.{i}@example.com" for i in k], None),
            "phone": np.where(
                rng.random(n_new) < 0.5,
                [f"+1{a}555{i % 10_000:04d}" for a, i in zip(area, k, strict=True)],
                None,
            ),
        }
    )
    audience = pd.concat(
        [
            known[["email", "phone"]],
            new,
            pd.DataFrame({"email": [None] * n_empty, "phone": [None] * n_empty}),
        ],
        ignore_index=True,
    )
    audience = audience.iloc[rng.permutation(len(audience))].reset_index(drop=True)
    audience.insert(0, "customer_ref", [f"C{i:08d}" for i in range(len(audience))])
    return audience


def run_once(
    frame, predictor, window, max_sms, caps, out: Path, dedupe: bool, top_k=TOP_K
) -> dict[str, float]:
    from sendtime.serving.plan_io import write_plan
    from sendtime.serving.planner import schedule_frame

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    result = schedule_frame(
        frame,
        predictor,
        window,
        max_sms=max_sms,
        max_per_hour=caps,
        progress=False,
        dedupe_scoring=dedupe,
        duplicates="all",
        timings=timings,
        top_k=top_k,
    )
    t1 = time.perf_counter()
    write_plan(result.frame, out)
    timings["write"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    timings["distinct"] = result.scored_rows
    timings["sms_used"] = result.plan.sms_used
    timings["cap_cost"] = result.plan.cost.get("email cap", 0.0) + result.plan.cost.get("sms cap", 0.0)
    timings["moved"] = result.plan.moved_by_cap
    timings["cells"] = result.scored_cells
    timings["rounds"] = result.plan_rounds
    return timings


def distinct_audience(
    people: pd.DataFrame, rows: int, seed: int, new_share: float, new_email: float, new_phone: float
) -> pd.DataFrame:
    """N rows of different contacts: `new_share` never-seen people (e-mail and phone drawn with the given
    probabilities; phones are distinct +1 numbers with a real area code and an exchange of 200-999, so
    nearly all are valid), the rest the world's people drawn with replacement; 0.1% empty rows."""
    rng = np.random.default_rng([seed, 0xD15])
    n_new = int(round(new_share * rows))
    n_empty = max(1, rows // 1000)
    known = people.iloc[rng.integers(0, len(people), max(rows - n_new - n_empty, 0))][["email", "phone"]]
    k = np.arange(n_new, dtype=np.int64) + np.int64(seed) * rows  # a different block of numbers per seed
    areas = np.array(AREA_CODES)[k % len(AREA_CODES)]
    exchange = 200 + (k // len(AREA_CODES)) % 800
    line = (k // (len(AREA_CODES) * 800)) % 10_000
    phone = np.char.add(
        np.char.add(np.char.add("+1", areas), exchange.astype(str)), np.char.zfill(line.astype(str), 4)
    )
    email = np.char.add(np.char.add(f"p{seed}.", k.astype(str)), "@bench.example")
    new = pd.DataFrame(
        {
            "email": np.where(rng.random(n_new) < new_email, email.astype(object), None),
            "phone": np.where(rng.random(n_new) < new_phone, phone.astype(object), None),
        }
    )
    empty = pd.DataFrame({"email": [None] * n_empty, "phone": [None] * n_empty})
    audience = pd.concat([known, new, empty], ignore_index=True)
    audience = audience.iloc[rng.permutation(len(audience))].reset_index(drop=True)
    audience.insert(0, "customer_ref", [f"D{i:08d}" for i in range(len(audience))])
    return audience


def end_to_end(people, predictor, window, rows: int, repeats: int, args, out: Path) -> None:
    """`schedule_frame` + write for N different people (see the module docstring), median of repeats."""
    runs = []
    for r in range(repeats):
        frame = distinct_audience(
            people, rows, args.seed + 1 + r, args.new_share, args.new_email, args.new_phone
        )
        max_sms = int(round(args.sms_share * rows))
        cap = binding_cap(frame, predictor, window, args.cap_peak)
        caps = {"email": cap, "sms": cap}
        top_k = None if args.full_scoring else args.top_k
        timings = run_once(frame, predictor, window, max_sms, caps, out, dedupe=False, top_k=top_k)
        timings["cap"] = cap
        runs.append(timings)
        print(
            f"{'':>12}run {r + 1}: "
            + ", ".join(f"{s} {timings[s]:.2f}" for s in STAGES)
            + f"; total {timings['total']:.2f} s; {int(timings['cells']):,} cells scored, "
            f"{int(timings['rounds'])} plan(s)"
        )
    med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    stages = ", ".join(f"{s} {med[s]:.2f}" for s in STAGES)
    mode = "full scoring" if args.full_scoring else f"top {args.top_k} hours"
    print(
        f"{rows:>10,} different people ({mode}): {stages}; total {med['total']:.2f} s (median of {repeats}); "
        f"{int(med['cells']):,} cells scored, sms {int(med['sms_used']):,}/{int(round(args.sms_share * rows)):,}, "
        f"cap {int(med['cap']):,}/h per channel moved {int(med['moved']):,} rows"
    )


def binding_cap(frame: pd.DataFrame, predictor, window, peak_share: float, sample: int = 20_000) -> int:
    """`peak_share` of the busiest hour (either channel) of the uncapped plan, scaled from a sample."""
    from sendtime.serving.planner import schedule_frame

    part = frame.iloc[: min(sample, len(frame))]
    plan = schedule_frame(part, predictor, window, progress=False, duplicates="all").plan
    busiest = plan.sends_per_hour(len(window.hours)).max()
    return max(1, int(round(peak_share * busiest * len(frame) / len(part))))


def distinct_costs(frame: pd.DataFrame, predictor, window, rows: int) -> None:
    """Resolve N distinct new contacts, and score N rows without de-duplication: N different people."""
    from sendtime.serving.plan_io import contacts
    from sendtime.serving.planner import score_audience

    k = np.arange(rows)
    emails = [f"person{i}@bench.example" for i in k]
    phones = [
        f"+1{a}{i % 10_000_000:07d}"
        for a, i in zip(np.resize(["212", "312", "415", "713", "305"], rows), k, strict=True)
    ]
    t0 = time.perf_counter()
    predictor.resolve(emails, phones)
    resolve = time.perf_counter() - t0
    aud = predictor.resolve(contacts(frame, "email").tolist(), contacts(frame, "phone").tolist())
    t0 = time.perf_counter()
    score_audience(predictor, aud, window.hours, dedupe=False)
    score = time.perf_counter() - t0
    cells = int(aud.has.sum()) * len(window.hours)
    print(
        f"{'':>12}N different people: resolve {resolve:.2f} s ({rows / resolve:,.0f} contacts/s), "
        f"score {score:.2f} s ({cells / score / 1e6:.2f} M cells/s)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "sendtime-bench")
    parser.add_argument("--subscribers", type=int, default=5000, help="people in the simulated world")
    parser.add_argument("--days", type=int, default=84)
    parser.add_argument("--sms-share", type=float, default=0.30, help="--max-sms as a share of the rows")
    parser.add_argument("--cap-share", type=float, help="--max-per-hour per channel as a share of the rows")
    parser.add_argument(
        "--cap-peak", type=float, default=0.8, help="cap as a share of the uncapped busiest hour"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per size up to 200k rows (median reported)"
    )
    parser.add_argument("--big-repeats", type=int, default=1, help="runs per size above 200k rows")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="plan file format")
    parser.add_argument("--distinct", action="store_true", help="also time scoring without de-duplication")
    parser.add_argument(
        "--end-to-end", action="store_true", help="time the whole plan for N different people instead"
    )
    parser.add_argument("--new-share", type=float, default=0.9, help="--end-to-end: never-seen people")
    parser.add_argument("--new-email", type=float, default=0.9, help="--end-to-end: new people with e-mail")
    parser.add_argument("--new-phone", type=float, default=0.9, help="--end-to-end: new people with a phone")
    parser.add_argument("--top-k", type=int, default=TOP_K, help="hours scored up front per person-channel")
    parser.add_argument("--full-scoring", action="store_true", help="score every cell (the reference)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    world = prepare_home(args.home.resolve(), args.subscribers, args.days, args.seed)
    from sendtime.configs.settings import load_settings
    from sendtime.experiments.demo import window as demo_window
    from sendtime.serving.campaign_options import parse_window
    from sendtime.serving.planner import load_predictor

    t0 = time.perf_counter()
    predictor = load_predictor(load_settings())
    print(
        f"champion version {predictor.model_version} ({predictor.booster.num_trees()} trees) loaded in "
        f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} cpus"
    )
    window = parse_window(*demo_window(world))
    people = pd.read_parquet(world / "ground_truth" / "people.parquet", columns=["email", "phone"])
    out_dir = Path(tempfile.mkdtemp(prefix="bench-schedule-"))

    for rows in args.rows:
        if args.end_to_end:
            repeats = args.repeats if rows <= 200_000 else args.big_repeats
            end_to_end(people, predictor, window, rows, repeats, args, out_dir / f"plan-{rows}.{args.format}")
            (out_dir / f"plan-{rows}.{args.format}").unlink(missing_ok=True)
            continue
        frame = make_audience(people, rows, args.seed)
        max_sms = int(round(args.sms_share * rows))
        if args.cap_share is not None:
            cap = max(1, int(round(args.cap_share * rows)))
        else:
            cap = binding_cap(frame, predictor, window, args.cap_peak)
        caps = {"email": cap, "sms": cap}
        out = out_dir / f"plan-{rows}.{args.format}"
        repeats = args.repeats if rows <= 200_000 else args.big_repeats
        runs = [run_once(frame, predictor, window, max_sms, caps, out, dedupe=True) for _ in range(repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        stages = ", ".join(f"{s} {med[s]:.2f}" for s in STAGES)
        print(
            f"{rows:>10,} rows: {stages}; total {med['total']:.2f} s (median of {repeats}); "
            f"{int(med['distinct']):,} distinct scoring inputs, sms {int(med['sms_used']):,}/{max_sms:,}, "
            f"cap {cap:,}/h per channel moved {int(med['moved']):,} rows, cost {med['cap_cost']:.3g}"
        )
        if args.distinct:
            distinct_costs(frame, predictor, window, rows)
        out.unlink(missing_ok=True)
    out_dir.rmdir()


if __name__ == "__main__":
    main()
