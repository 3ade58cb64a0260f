"""`sendtime schedule`: the batch campaign plan, one row out for every audience row in.

The job reads the audience (`plan_io`), checks the options (`campaign_options`), plans with the local
engine (`planner.schedule_frame`, whose rules are in `campaign`) or on Spark (`spark_schedule`), then
writes the plan atomically and prints its summary and plot (`plan_report`).
`python -m sendtime.experiments.bench_schedule` measures every stage (`--end-to-end`: N different people).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sendtime.configs.settings import Settings
from sendtime.serving.campaign_options import channel_caps, parse_window
from sendtime.serving.plan_io import check_format, read_audience, write_plan
from sendtime.serving.plan_report import format_summary, plot_plan
from sendtime.serving.planner import lap, load_predictor, schedule_frame
from sendtime.serving.spark_schedule import run_schedule_spark


def run_schedule(
    audience: str | Path,
    start: str,
    end: str,
    out: str | Path,
    settings: Settings,
    max_sms: int | None = None,
    max_per_hour: Mapping[str, int] | None = None,
    holdout: float = 0.0,
    explore: float = 0.0,
    campaign_time: str | None = None,
    seed: int = 0,
    engine: str = "local",
    echo: Callable[[str], None] = print,
    predictor=None,
) -> int:
    """`sendtime schedule`: read the audience, plan it, write the plan and its plot, print the summary."""
    out, audience = Path(out), Path(audience)
    check_format(out, "--out")
    window = parse_window(start, end, campaign_time, settings.serving.max_window_days)
    channel_caps(max_per_hour)
    for option, share in (("--holdout", holdout), ("--explore", explore)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{option} must be a share in [0, 1], got {share}")
    if max_sms is not None and max_sms < 0:
        raise ValueError(f"--max-sms must be >= 0, got {max_sms}")
    if out.resolve() == audience.resolve():
        raise ValueError(f"--out {out} is the audience file itself; write the plan elsewhere")
    if engine != "local":
        # --- SPARK ENGINE: the distributed planner (resolution and scoring on Spark, limits on the driver) ---
        return run_schedule_spark(
            audience,
            window,
            out,
            settings,
            engine=engine,
            echo=echo,
            predictor=predictor,
            max_sms=max_sms,
            max_per_hour=max_per_hour,
            holdout=holdout,
            explore=explore,
            seed=seed,
        )

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    frame = read_audience(audience)
    clock = lap(timings, "read", clock)
    predictor = predictor or load_predictor(settings)
    clock = lap(timings, "load model", clock)
    result = schedule_frame(
        frame,
        predictor,
        window,
        max_sms=max_sms,
        max_per_hour=max_per_hour,
        holdout=holdout,
        explore=explore,
        seed=seed,
        timings=timings,
    )
    clock = time.perf_counter()
    write_plan(result.frame, out)
    clock = lap(timings, "write", clock)
    png = plot_plan(result.plan, window.hours, out.with_suffix(".png"))
    lap(timings, "plot", clock)
    echo(format_summary(result, out, png))
    sys.stdout.flush()
    return 0
