"""The drift figures over time (training/drift.py): read back from every run of an experiment that logged
them, and drawn as one picture for `sendtime evaluate`."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sendtime import schema as S  # noqa: E402
from sendtime.configs.settings import DriftSettings  # noqa: E402
from sendtime.training.drift import PLOT, PREFIX, SOURCE_KEYS, WARNING_TAG  # noqa: E402

MAX_RUNS = 500
COMMANDS = ("train", "refresh", "report")
MARKERS = {"train": "o", "refresh": "s", "report": "^"}


def history(experiment: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, weekly): one row per run with drift figures (time, command, figures, warning), oldest
    first; and the weekly click rates per channel, each week as the latest run that saw it measured it."""
    import mlflow

    from sendtime.training import registry

    found = mlflow.search_runs(
        experiment_names=[experiment], max_results=MAX_RUNS, order_by=["attributes.start_time DESC"]
    )
    if found.empty or f"metrics.{PREFIX}warnings" not in found.columns:
        return pd.DataFrame(), pd.DataFrame(columns=["week", "channel", "rate", "run_time"])
    found = found[found[f"metrics.{PREFIX}warnings"].notna()].sort_values("start_time")
    name = found.get("tags.mlflow.runName", pd.Series("", index=found.index)).fillna("")
    runs = pd.DataFrame(
        {
            "run_id": found["run_id"],
            "time": pd.to_datetime(found["start_time"], utc=True),
            "command": [next((c for c in COMMANDS if str(n).startswith(c)), "other") for n in name],
            "warning": found.get(f"tags.{WARNING_TAG}", pd.Series("none", index=found.index)).fillna("none"),
        }
    )
    for column in found.columns:
        if column.startswith(f"metrics.{PREFIX}"):
            runs[column.removeprefix(f"metrics.{PREFIX}")] = found[column]
    rows = []
    client = registry.client()
    for run_id, when in zip(runs["run_id"], runs["time"], strict=True):
        for c in S.CHANNELS:
            for m in client.get_metric_history(run_id, f"{PREFIX}weekly_rate_{c}"):
                rows.append((pd.Timestamp(m.timestamp, unit="ms", tz="UTC"), c, m.value, when))
    weekly = pd.DataFrame(rows, columns=["week", "channel", "rate", "run_time"])
    if not weekly.empty:
        weekly = weekly.sort_values("run_time").drop_duplicates(["week", "channel"], keep="last")
        weekly = weekly.sort_values(["channel", "week"]).reset_index(drop=True)
    return runs.reset_index(drop=True), weekly


def plot(runs: pd.DataFrame, weekly: pd.DataFrame, settings: DriftSettings, path: Path) -> Path:
    """Four panels: clicks per send by week; pattern-source shares, calibration error and profile
    distance by run time (markers: train, refresh, report; red: the run warned)."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    ax = axes[0, 0]
    for c in S.CHANNELS:
        part = weekly[weekly["channel"] == c]
        if len(part):
            ax.plot(part["week"], part["rate"], marker=".", label=c)
    ax.set(title="Clicks per send, by week of the exports", ylabel="clicks per send")
    _series(
        axes[0, 1],
        runs,
        {f"source_{c}_{k}": f"{c} {k}" for c in S.CHANNELS for k in SOURCE_KEYS.values()},
        "Share of people per pattern source",
        "share",
    )
    _series(axes[1, 0], runs, {"calibration_error": "calibration error"}, "Calibration error", "mean |p - o|")
    ax = _series(
        axes[1, 1],
        runs,
        {f"profile_tv_{c}": f"{c}" for c in S.CHANNELS},
        "Population hour-of-week profile: distance from the champion's",
        "total variation",
    )
    ax.axhline(settings.max_profile_distance, color="red", lw=1, ls="--", label="warning threshold")
    if len(runs):
        warned = runs[runs["warning"] != "none"]
        for a in axes.flat[1:]:
            for when in warned["time"]:
                a.axvline(when, color="red", alpha=0.25, lw=3)
    for a in axes.flat:
        handles, _ = a.get_legend_handles_labels()
        if handles:
            a.legend(fontsize=7)
        else:
            a.text(0.5, 0.5, "nothing logged yet", ha="center", va="center", transform=a.transAxes)
        a.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.suptitle(
        f"Drift watch: {len(runs)} runs (markers: o train, □ refresh, △ report; red bands: runs that warned)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _series(ax, runs: pd.DataFrame, columns: dict[str, str], title: str, ylabel: str):
    for column, label in columns.items():
        if column not in runs.columns or not (np.isfinite(runs[column]) & (runs[column] != 0)).any():
            continue  # never logged, or a source nobody's pattern came from
        part = runs[np.isfinite(runs[column])]
        (line,) = ax.plot(part["time"], part[column], lw=1, label=label)
        for command, marker in MARKERS.items():
            sel = part[part["command"] == command]
            ax.scatter(sel["time"], sel[column], marker=marker, color=line.get_color(), s=18)
    ax.set(title=title, ylabel=ylabel, xlabel="run time (UTC)")
    return ax


def log_history(out: Path, experiment: str, settings: DriftSettings) -> str:
    """Plot the figures of every run of the experiment by run time, log the plot into the active run
    and return the line that says where it is."""
    import mlflow

    runs, weekly = history(experiment)
    path = plot(runs, weekly, settings, Path(out) / PLOT)
    mlflow.log_artifact(str(path))
    run_id = mlflow.active_run().info.run_id
    return f"drift over time: {len(runs)} runs plotted in {PLOT} (an artifact of run {run_id})"
