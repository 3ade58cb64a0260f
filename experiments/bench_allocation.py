"""Benchmark of campaign-wide allocation: SMS budget plus hourly send caps on a million rows.

    python -m sendtime.experiments.bench_allocation --rows 1000000 --hours 24

Draws a realistic score grid (each row peaked at a random local hour, a lognormal scale per row,
audiences clustered in a few timezones so some UTC hours are crowded, SMS only inside quiet hours),
then plans it with the production planner (`campaign.plan_campaign`, as `sendtime schedule` does)
under a 30% SMS budget and a cap that binds (6% of the
rows per hour and channel by default). Prints the time (median of repeats), what the caps cost, and
how much more expected engagement the optimal assignment keeps than first come, first served.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from sendtime.configs.settings import PolicySettings
from sendtime.serving.allocation import allocate_sms_budget
from sendtime.serving.campaign import plan_campaign
from sendtime.serving.capacity import assign_hours, greedy_first_come

# (UTC offset in hours, share of the audience): a mostly American list with a European tail
_TIMEZONES = ((-5, 0.40), (-6, 0.22), (-7, 0.08), (-8, 0.15), (0, 0.07), (1, 0.08))
_QUIET = (8, 21)  # SMS allowed from 08:00 to 21:00 local time


def synthetic_values(rows: int, hours: int, seed: int = 0, day_effect: float = 0.05) -> np.ndarray:
    """value[rows, 2, hours]: P(click) per row, channel and UTC hour of a window starting at 00:00 UTC.

    Each row responds around one local hour (morning or evening, people differ), with a lognormal
    overall level and a small floor; SMS peaks near the e-mail peak, narrower, and is -inf outside
    quiet hours; 15% of rows have no e-mail and 40% no phone (-inf for that channel). A window of
    several days scales each row's days by 1 + day_effect * N(0, 1) (0: every day alike).
    """
    rng = np.random.default_rng(seed)
    offsets, shares = np.array(_TIMEZONES, dtype=float).T
    offset = rng.choice(offsets, size=rows, p=shares / shares.sum())
    evening = rng.random(rows) < 0.35
    peak_local = np.where(evening, rng.normal(19.5, 1.5, rows), rng.normal(9.5, 1.5, rows))
    local = (np.arange(hours)[None, :] + offset[:, None]) % 24  # local hour of each UTC hour
    value = np.empty((rows, 2, hours))
    widths, levels = (2.5, 1.5), (np.log(0.03), np.log(0.04))
    for c in (0, 1):
        peak = peak_local + (rng.normal(0, 1.0, rows) if c else 0.0)
        d = np.abs(local - peak[:, None]) % 24
        d = np.minimum(d, 24 - d)
        scale = np.minimum(rng.lognormal(levels[c], 0.8, rows), 0.9)
        value[:, c] = scale[:, None] * (0.1 + 0.9 * np.exp(-0.5 * (d / widths[c]) ** 2))
    if hours > 24 and day_effect:
        days = 1.0 + day_effect * rng.standard_normal((rows, 1, (hours + 23) // 24))
        value *= np.repeat(np.maximum(days, 0.5), 24, axis=2)[:, :, :hours]
    value[:, 1][(local < _QUIET[0]) | (local >= _QUIET[1])] = -np.inf
    value[rng.random(rows) < 0.15, 0] = -np.inf
    value[rng.random(rows) < 0.40, 1] = -np.inf
    return value


def greedy_plan_value(value: np.ndarray, max_sms: int, cap: int) -> float:
    """The naive plan's total: the same budget, then first come, first served per channel."""
    best = value.max(axis=2)
    channel = allocate_sms_budget(best[:, 0], best[:, 1], max_sms)
    total = 0.0
    for c in (0, 1):
        rows = np.flatnonzero(channel == c)
        hour = greedy_first_come(value[rows, c], np.full(value.shape[2], cap))
        ok = hour >= 0
        total += float(value[rows[ok], c, hour[ok]].sum())
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--sms-share", type=float, default=0.30, help="SMS budget as a share of rows")
    parser.add_argument(
        "--cap-share", type=float, default=0.06, help="sends per hour and channel, share of rows"
    )
    parser.add_argument("--day-effect", type=float, default=0.05, help="day-to-day spread of a row's scores")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    value = synthetic_values(args.rows, args.hours, args.seed, args.day_effect)
    print(f"{args.rows:,} rows x {args.hours} hours drawn in {time.perf_counter() - t0:.1f} s")
    max_sms = int(round(args.sms_share * args.rows))
    cap = max(int(round(args.cap_share * args.rows)), 1)

    feasible = np.isfinite(value)
    scores = np.where(feasible, value, 0.0)
    policy = PolicySettings(sms_cost=0.0)  # a text costs nothing: the plan's values are the scores
    limits = {"max_sms": max_sms, "max_per_hour": {"email": cap, "sms": cap}}
    seconds, plan = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        plan = plan_campaign(scores, feasible, policy, **limits)
        seconds.append(time.perf_counter() - t0)
    assert plan is not None
    total = plan.total
    uncapped = plan_campaign(scores, feasible, policy, max_sms=max_sms).total
    t0 = time.perf_counter()
    greedy = greedy_plan_value(value, max_sms, cap)
    greedy_seconds = time.perf_counter() - t0

    print(f"plan_campaign: {statistics.median(seconds):.2f} s (median of {args.repeats})")
    print(f"  sms budget {max_sms:,} ({plan.sms_used:,} used), cap {cap:,} per hour and channel")
    for c, name in ((0, "email"), (1, "sms")):
        sent = np.bincount(plan.hour[plan.channel == c], minlength=args.hours)
        print(
            f"  {name}: {int(sent.sum()):,} sends, busiest hour {int(sent.max()):,}, "
            f"cost of cap {plan.cost[f'{name} cap']:.1f}"
        )
    unplaced = pd.Series(plan.reason[plan.channel < 0], dtype=object).value_counts().to_dict()
    print(f"  fallbacks to the other channel: {plan.fallbacks:,}; unplaced: {unplaced}")
    print(
        f"expected clicks: uncapped {uncapped:,.1f}, optimal {total:,.1f}, first come {greedy:,.1f} ({greedy_seconds:.1f} s)"
    )
    lost_opt, lost_greedy = uncapped - total, uncapped - greedy
    print(
        f"  the caps cost {lost_opt:,.1f} clicks with the optimal assignment vs {lost_greedy:,.1f} first come: "
        f"+{total - greedy:,.1f} clicks (+{100 * (total - greedy) / greedy:.2f}%), "
        f"{100 * (1 - lost_opt / lost_greedy) if lost_greedy > 0 else 0:.0f}% of the greedy loss recovered"
    )

    email = np.flatnonzero(plan.channel == 0)
    t0 = time.perf_counter()
    result = assign_hours(value[email, 0], np.full(args.hours, cap))
    print(
        f"assign_hours on the {len(email):,} e-mail rows: {time.perf_counter() - t0:.2f} s, "
        f"{result.iterations} price rounds + {result.augmentations} exact repairs, duality gap {result.duality_gap:.1e}"
    )


if __name__ == "__main__":
    main()
