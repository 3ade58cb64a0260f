"""Does `sendtime report` tell the truth? Coverage of its intervals over repeated campaigns on a simulated world.

    python -m sendtime.experiments.bench_report --seeds 50 --subscribers 4000 [--days 56] [--out table.csv]

One world is simulated and one model trained on it; then, per seed, a 24 h campaign is planned for every
person with a random holdout and exploration (`schedule --holdout --explore --seed`), sent to the world
(`experiments/outcomes.py`: the world's own people answer), and reported. The truth comes from the world:

- lift: the audience's true mean P(click) under the plan's cells minus under the campaign-time cells,
  over the people who get a send in both (two extra plans, holdout 0 and 1, give every person both
  cells). The holdout design estimates exactly this; the interval should cover it in ~95% of seeds.
- off-policy: each policy's true mean P(click) over the rows the report read it on (non-holdout, usable
  e-mail): the IPS estimates should average to it over seeds (unbiased) and their intervals cover it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

START, END = pd.Timedelta(hours=12), pd.Timedelta(hours=36)  # the campaign: the day after the history


def _plan(audience: Path, out: Path, window, settings, predictor, **options) -> pd.DataFrame:
    from sendtime.serving.schedule import run_schedule
    from sendtime.workflows.report_join import read_plan

    run_schedule(audience, *window, out, settings, echo=lambda *_: None, predictor=predictor, **options)
    return read_plan(out)


def measure(
    world_dir: Path,
    settings,
    predictor,
    seeds: list[int],
    scratch: Path,
    holdout: float = 0.3,
    explore: float = 0.4,
    n_boot: int = 1000,
    never_sent_share: float = 0.05,
    echo=print,
) -> pd.DataFrame:
    """One row per seed: the report's lift and IPS values with intervals, and the truths they aim at."""
    from sendtime.experiments.outcomes import World, follow_plan, true_probability
    from sendtime.workflows import report as R

    world = World.load(world_dir)
    end = pd.Timestamp(world.meta["end"])
    window = ((end + START).isoformat(), (end + END).isoformat())
    scratch.mkdir(parents=True, exist_ok=True)
    audience = scratch / "audience.csv"
    people = pd.read_parquet(world_dir / "ground_truth" / "people.parquet")
    people[["email", "phone"]].fillna("").to_csv(audience, index=False)

    def truth(plan: pd.DataFrame) -> np.ndarray:
        return true_probability(world, world.person_of(plan), plan["channel"], plan["send_at"])

    best = _plan(audience, scratch / "all-plan.csv", window, settings, predictor)
    camp = _plan(audience, scratch / "all-campaign.csv", window, settings, predictor, holdout=1.0)
    p_best, p_camp = truth(best), truth(camp)
    both = np.isfinite(p_best) & np.isfinite(p_camp)
    true_lift = float(np.mean(p_best[both] - p_camp[both]))
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        plan = _plan(
            audience,
            scratch / "plan.csv",
            window,
            settings,
            predictor,
            holdout=holdout,
            explore=explore,
            seed=seed,
        )
        export = scratch / "export"
        shutil.rmtree(export, ignore_errors=True)
        sent = follow_plan(world, plan, export, seed=seed, never_sent_share=never_sent_share)
        r = R.analyse(plan, export, settings, n_boot=n_boot, seed=seed, export_end=sent["export_end"])
        lift = r.lift["all"].absolute
        p_row = truth(plan)
        measured = r.rows["measured"].to_numpy()
        arm = r.rows["arm"].to_numpy()
        row = {
            "seed": seed,
            "true_lift": true_lift,
            "conditional_true_lift": float(
                np.nanmean(p_row[measured & (arm == "optimised")])
                - np.nanmean(p_row[measured & (arm == "holdout")])
            ),
            "lift": lift.estimate,
            "lift_low": lift.low,
            "lift_high": lift.high,
            "lift_p_value": r.lift["all"].p_value,
            "covers": lift.covers(true_lift),
            "never_sent": int(r.arms.loc["all", "never_sent"]),
        }
        cells = {k: pd.Timestamp(v) for k, v in r.cells.items()}
        _, pop = R.off_policy(r.rows, cells, n_boot, seed)
        targets = {R.PLAN_POLICY: p_best[pop.index]}
        for name, cell in cells.items():
            frame = pd.DataFrame({"email": pop["email"], "phone": "", "channel": "email", "send_at": cell})
            targets[name] = truth(frame)
        for name, iv in r.off_policy.items():
            key = name.replace(" ", "_")
            value = float(np.nanmean(targets[name]))
            row |= {f"ips_{key}": iv.estimate, f"ips_{key}_low": iv.low, f"ips_{key}_high": iv.high}
            row |= {f"ips_{key}_truth": value, f"ips_{key}_covers": iv.covers(value)}
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        echo(
            f"seed {seed}: lift {lift.estimate:+.4f} [{lift.low:+.4f}, {lift.high:+.4f}] truth {true_lift:+.4f} "
            f"{'covered' if row['covers'] else 'MISSED'}; IPS plan {row.get('ips_plan', float('nan')):.4f} "
            f"(truth {row.get('ips_plan_truth', float('nan')):.4f}) in {row['seconds']:.1f} s"
        )
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> list[str]:
    n = len(table)
    se = table["lift"].std(ddof=1) / np.sqrt(n)
    lines = [
        f"{n} seeds: lift interval covered the true lift in {int(table['covers'].sum())}/{n} "
        f"({table['covers'].mean():.0%}); mean estimate {table['lift'].mean():+.4f} vs truth "
        f"{table['true_lift'].iloc[0]:+.4f} (standard error of the mean {se:.4f})",
    ]
    for key in ("plan", "campaign_time", "population_best_hour"):
        if f"ips_{key}" not in table:
            continue
        est, tru = table[f"ips_{key}"], table[f"ips_{key}_truth"]
        bias_se = (est - tru).std(ddof=1) / np.sqrt(n)
        lines.append(
            f"IPS {key}: mean estimate {est.mean():.4f} vs mean truth {tru.mean():.4f} (difference "
            f"{(est - tru).mean():+.4f}, standard error {bias_se:.4f}); interval covered the truth in "
            f"{int(table[f'ips_{key}_covers'].sum())}/{n}"
        )
    return lines


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=50, help="campaigns (seeds 0..N-1)")
    parser.add_argument("--subscribers", type=int, default=4000)
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--explore", type=float, default=0.4)
    parser.add_argument("--cache", type=Path, default=Path(".sendtime/bench-report"))
    parser.add_argument("--out", type=Path, help="also write the per-seed table as CSV")
    args = parser.parse_args()

    from sendtime.configs.settings import load_settings
    from sendtime.experiments.simulate import simulate
    from sendtime.serving.planner import load_predictor
    from sendtime.workflows.train import train

    tag = f"{args.subscribers}-{args.days}-{args.world_seed}"
    world = args.cache / f"world-{tag}"
    if not (world / "ground_truth" / "response.npy").exists():
        simulate(world, subscribers=args.subscribers, days=args.days, seed=args.world_seed)
    home = args.cache / f"home-{tag}"
    os.environ["SENDTIME_HOME"] = str(home.resolve())
    settings = load_settings()
    from sendtime.training import registry

    registry.configure_mlflow(settings.training.experiment)
    if registry.champion_version(settings.training.registered_model) is None:
        train(world, settings, progress=False, echo=lambda *_: None)
    predictor = load_predictor(settings)
    table = measure(
        world,
        settings,
        predictor,
        list(range(args.seeds)),
        args.cache / f"scratch-{tag}",
        args.holdout,
        args.explore,
    )
    if args.out:
        table.to_csv(args.out, index=False)
    print("\n".join(summarise(table)))


if __name__ == "__main__":
    main()
