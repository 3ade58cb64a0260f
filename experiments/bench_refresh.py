"""Benchmark: `sendtime refresh`, its speed on large exports and what it wins on simulated worlds.

    python -m sendtime.experiments.bench_refresh --events 1000000 10000000
    python -m sendtime.experiments.bench_refresh --quality --subscribers 4000 --seeds 0 1 2

Speed: a champion is trained once on a small world (the version's recipe; what it was trained on does not
change what a refresh costs), then each export of about N events (bench_profiles' cached worlds) is
refreshed in a fresh subprocess, timed stage by stage with its peak memory. Every stage of a refresh is
in the time: load, features, profiles with the version's shrinkage (not chosen again), and logging the
snapshot to MLflow and pointing the version at it.

Quality: a world is cut two weeks before its end; a model is trained on the first part, then refreshed
with the whole export. Both snapshots plan the same seven daily campaigns after the export's end, judged
against the world's truth under today's eligibility.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from sendtime import schema as S

TWO_WEEKS = pd.Timedelta(days=14)


def cut(world: Path, out: Path, end: pd.Timestamp, extra: pd.DataFrame | None = None) -> Path:
    """The export as it would have been taken at `end`: events, subscribers and links before it (plus
    `extra` event rows), and the world's ground truth."""
    out.mkdir(parents=True)
    events = pd.read_parquet(world / "events.parquet")
    events = events[pd.to_datetime(events[S.TIMESTAMP], utc=True) < end]
    if extra is not None:
        events = pd.concat([events, extra], ignore_index=True)
    events.to_parquet(out / "events.parquet", index=False)
    for table, column in (("subscribers", S.SUBSCRIBED_AT), ("identity_links", S.OBSERVED_AT)):
        frame = pd.read_parquet(world / f"{table}.parquet")
        frame[pd.to_datetime(frame[column], utc=True) < end].to_parquet(out / f"{table}.parquet", index=False)
    shutil.copytree(world / S.GROUND_TRUTH_DIR, out / S.GROUND_TRUTH_DIR)
    return out


def capture_over_days(stale, fresh, gt, start: pd.Timestamp, days: int = 7) -> dict[str, float]:
    """Capture of each snapshot's plans over the same daily 24 h campaigns from `start` (at 12:00 UTC),
    judged under today's eligibility (the fresh snapshot's: whoever unsubscribed cannot be sent to,
    whatever a plan says)."""
    from sendtime.workflows.capture import audience_grids, capture_report

    totals = {"campaign": 0.0, "oracle": 0.0, "stale": 0.0, "fresh": 0.0}
    for day in range(days):
        at = start + pd.Timedelta(days=day, hours=12)
        plans = {}
        for name, predictor in (("stale", stale), ("fresh", fresh)):
            audience, hour_starts, _ = audience_grids(predictor, gt, at, 24)
            plans[name] = predictor.score(audience, hour_starts)
        report = capture_report(fresh, gt, at, 24, plans)
        for key in totals:
            totals[key] += report[f"{key}_value"]
    gain = totals["oracle"] - totals["campaign"]
    return {name: (totals[name] - totals["campaign"]) / gain for name in ("stale", "fresh")}


def _home(folder: Path) -> None:
    os.environ["SENDTIME_HOME"] = str(folder)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def quality(subscribers: int, days: int, seed: int, scratch: Path) -> dict:
    from sendtime.configs.settings import load_settings
    from sendtime.experiments.simulate import simulate
    from sendtime.serving.predictor import Predictor
    from sendtime.workflows.capture import GroundTruth
    from sendtime.workflows.refresh import refresh
    from sendtime.workflows.train import train

    world = scratch / f"world-{seed}"
    simulate(world, subscribers=subscribers, days=days, seed=seed)
    end = pd.to_datetime(pd.read_parquet(world / "events.parquet")[S.TIMESTAMP], utc=True).max()
    stale_dir = cut(world, scratch / f"stale-{seed}", (end - TWO_WEEKS).floor("D"))
    _home(scratch / f"home-{seed}")
    settings = load_settings()
    quiet = lambda *_: None  # noqa: E731
    trained = train(stale_dir, settings, progress=False, echo=quiet)
    stale = Predictor.from_registry(settings, version=trained.version)
    done = refresh(world, settings, progress=False, echo=quiet)
    fresh = Predictor.from_registry(settings, version=trained.version)
    captured = capture_over_days(stale, fresh, GroundTruth.load(world), fresh.profiles.as_of.ceil("D"))
    return {
        "seed": seed,
        "people_stale": len(stale.profiles),
        "people_fresh": len(fresh.profiles),
        "stale_capture": captured["stale"],
        "fresh_capture": captured["fresh"],
        "refresh_s": done.seconds,
    }


def champion_for_speed(home: Path) -> None:
    """A champion with the default recipe, trained on a small world two weeks shorter, in `home`."""
    from sendtime.configs.settings import load_settings
    from sendtime.experiments.simulate import simulate
    from sendtime.workflows.train import train

    _home(home)
    if (home / "trained").exists():
        return
    world = home / "small-world"
    simulate(world, subscribers=2000, days=70, seed=5)  # ends two weeks before the measured exports
    result = train(world, load_settings(), progress=False, echo=lambda *_: None)
    assert result.promoted, result.gate
    (home / "trained").write_text(result.version)


def measure(folder: Path) -> dict:
    """One timed refresh of the champion; then the version points at its training snapshot again and the
    refresh's files go, so that every size refreshes the same champion (and the cache does not grow)."""
    from urllib.parse import urlparse

    from sendtime.configs.settings import load_settings
    from sendtime.training import registry
    from sendtime.workflows.refresh import refresh

    settings = load_settings()
    r = refresh(folder, settings, progress=False, echo=lambda *_: None)
    name = settings.training.registered_model
    for tag in (registry.SNAPSHOT_RUN_TAG, registry.SNAPSHOT_URI_TAG, registry.SNAPSHOT_AS_OF_TAG):
        registry.client().delete_model_version_tag(name, r.version, tag)
    registry.client().delete_run(r.run_id)
    shutil.rmtree(urlparse(registry.client().get_run(r.run_id).info.artifact_uri).path, ignore_errors=True)
    return {
        "events": r.events,
        "subscribers": r.subscribers,
        **{f"{k}_s": v for k, v in r.stages.items()},
        "total_s": r.seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: no spinning threads
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--cache", type=Path, default=Path(".sendtime/bench"))
    parser.add_argument("--quality", action="store_true", help="capture before and after a refresh instead")
    parser.add_argument("--subscribers", type=int, default=4000)
    parser.add_argument("--days", type=int, default=84)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--one", type=Path, help=argparse.SUPPRESS
    )  # internal: refresh one folder, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    if args.quality:
        with tempfile.TemporaryDirectory(prefix="sendtime-bench-refresh-") as scratch:
            for seed in args.seeds:
                r = quality(args.subscribers, args.days, seed, Path(scratch))
                print(
                    f"seed {r['seed']}: people {r['people_stale']:,} -> {r['people_fresh']:,} | capture stale "
                    f"{r['stale_capture']:.3f}, refreshed {r['fresh_capture']:.3f} | refresh {r['refresh_s']:.1f} s",
                    flush=True,
                )
        return
    from sendtime.experiments.bench_profiles import world_for

    home = args.cache.resolve() / "refresh-home"
    champion_for_speed(home)
    for events in args.events:
        folder = world_for(events, args.cache)
        out = subprocess.run(
            [sys.executable, "-m", "sendtime.experiments.bench_refresh", "--one", str(folder)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "SENDTIME_HOME": str(home)},
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['events']:>11,} events {r['subscribers']:>8,} subscribers | load {r['load_s']:6.1f} s | features "
            f"{r['features_s']:6.1f} s | profiles {r['profiles_s']:6.1f} s | log {r['log_s']:5.1f} s | total "
            f"{r['total_s']:6.1f} s | peak {r['peak_rss_gb']:.2f} GB",
            flush=True,
        )


if __name__ == "__main__":
    main()
