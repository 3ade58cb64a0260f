"""Speed benchmark: training on about a million labelled sends.

    python -m sendtime.experiments.bench_training [--labelled 1000000]

Simulates (once, cached, not timed) a world big enough for the requested number of labelled sends
across the training, validation and test weeks, then times each stage of `sendtime train`'s work:
load, feature base, labelled examples (point-in-time profiles per snapshot), LightGBM fit with early
stopping, refit on training + validation weeks, and test scoring. No MLflow logging is timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np

LABELLED_PER_PERSON = 30  # sends in the labelled weeks of an 84-day world, per person (measured)


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: no spinning threads
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labelled", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path(".sendtime/bench"))
    args = parser.parse_args()

    from sendtime.configs.settings import load_settings
    from sendtime.experiments.simulate import simulate
    from sendtime.features.load import load_folder
    from sendtime.features.prepare import build_feature_base
    from sendtime.training import examples, model

    people = max(1000, args.labelled // LABELLED_PER_PERSON)
    world = args.cache / f"train-world-{people}"
    if not (world / "events.parquet").exists():
        print(f"simulating {people:,} people into {world} ...", flush=True)
        simulate(world, subscribers=people, days=84, seed=21)
    settings = load_settings()
    times = {}
    t = time.perf_counter()
    data = load_folder(world, settings.data)
    times["load"] = time.perf_counter() - t
    t = time.perf_counter()
    base = build_feature_base(data, settings)
    times["features"] = time.perf_counter() - t
    t = time.perf_counter()
    ex = examples.build_examples(base, settings)
    times["examples"] = time.perf_counter() - t
    t = time.perf_counter()
    early = model.fit(ex.train.X, ex.train.y, ex.validation.X, ex.validation.y, settings.training)
    times["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    booster = model.refit(
        np.concatenate([ex.train.X, ex.validation.X]),
        np.concatenate([ex.train.y, ex.validation.y]),
        settings.training,
        early.best_iteration or early.current_iteration(),
    )
    times["refit"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics = model.metrics(ex.test.y, booster.predict(ex.test.X))
    times["score_test"] = time.perf_counter() - t
    labelled = len(ex.train.cells) + len(ex.validation.cells) + len(ex.test.cells)
    print(
        f"{len(data.events):,} events, {labelled:,} labelled sends (train {len(ex.train.cells):,}, validation "
        f"{len(ex.validation.cells):,}, test {len(ex.test.cells):,}); best iteration {early.best_iteration}"
    )
    print(" | ".join(f"{k} {v:.1f} s" for k, v in times.items()) + f" | total {sum(times.values()):.1f} s")
    print(
        f"test log loss {metrics['log_loss']:.4f}, AUC {metrics['auc']:.3f}; peak memory "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB"
    )


if __name__ == "__main__":
    main()
