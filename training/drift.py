"""A watch on drift: the figures that tell a user when to retrain, logged by `train`, `refresh` and `report`.

A champion is trained on weeks that age. Four figures say whether they still describe people:
- **engagement**: clicks per send, per channel, per calendar week of the export (the model's label is a
  click, so a change in it moves every probability). The change compares the export's last
  `recent_weeks` with the weeks before them, so one export is enough and no champion is needed; it
  warns only when it is both large and real (a two-proportion z beyond `engagement_z`): a small
  export's weekly rates move by a third on their own.
- **pattern sources**: the share of people whose hour-of-week pattern is their own, a linked profile's,
  the cohort's or the population's (the snapshot's `<channel>_pattern_source`; a plan's reasons for a
  report). More people on priors means decisions lean on less evidence.
- **calibration error**: predicted against observed, where the run has both (train: the test cells;
  report: the plan's `expected_engagement` by decile).
- **profile distance**: total variation (and Jensen-Shannon, in bits) between the new snapshot's
  population hour-of-week profile and the champion's, per channel: when people engage has moved.

Thresholds (settings `drift`) turn a large shift into a warning line and the run tag `drift_warning`.
`drift_plot.log_history` draws every run's figures over time for `sendtime evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import DriftSettings
from sendtime.features.profiles import PATTERN_SOURCES

PREFIX = "drift_"
WARNING_TAG = "drift_warning"
PLOT = "drift_history.png"
PROFILE_ARTIFACT = "drift/population_profile.json"  # a few kB: no need to fetch a snapshot's arrays
SOURCE_KEYS = dict(zip(PATTERN_SOURCES, ("personal", "linked", "cohort", "population"), strict=True))
WEEK = pd.Timedelta(days=7)
MIN_WEEK_SENDS = 50  # a week with fewer sends (the export's ragged first or last days) shows no rate


@dataclass
class Figures:
    metrics: dict[str, float] = field(default_factory=dict)  # without the prefix
    weekly: pd.DataFrame = field(default_factory=pd.DataFrame)  # week, channel, sends, clicks, rate
    warnings: list[str] = field(default_factory=list)
    population: np.ndarray | None = None  # [channel, 168]: logged small, read back as the next reference


def _sends_and_clicks(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UTC nanoseconds, channel index, is a click) of the send and click rows: plain arrays, since a
    refresh reads ten million events within its time budget."""
    kind = events[S.EVENT_TYPE]
    send, click = (kind == S.SEND).to_numpy(bool), (kind == S.CLICK).to_numpy(bool)
    keep = send | click
    at = pd.to_datetime(events[S.TIMESTAMP], utc=True).dt.tz_convert(None).dt.as_unit("ns")
    ns = at.to_numpy().view("int64")[keep]
    channel = (events[S.CHANNEL] == S.SMS).to_numpy(bool)[keep].astype(np.int64)
    return ns, channel, click[keep]


def weekly_engagement(events: pd.DataFrame, rows: tuple | None = None) -> pd.DataFrame:
    """Sends, clicks and clicks per send per channel and calendar week (Monday 00:00 UTC)."""
    ns, channel, click = rows or _sends_and_clicks(events)
    if ns.size == 0:
        return pd.DataFrame(columns=["week", "channel", "sends", "clicks", "rate"])
    week = (ns // (24 * 3600 * 10**9) + 3) // 7  # 1970-01-01 was a Thursday: weeks from Monday 1969-12-29
    first = int(week.min())
    key = (week - first) * 2 + channel
    sends = np.bincount(key[~click], minlength=int(key.max()) + 1)
    clicks = np.bincount(key[click], minlength=len(sends))
    seen = np.flatnonzero(sends + clicks)
    out = pd.DataFrame(
        {
            "week": pd.to_datetime(((seen // 2 + first) * 7 - 3) * 24 * 3600, unit="s", utc=True),
            "channel": np.asarray(S.CHANNELS, dtype=object)[seen % 2],
            "sends": sends[seen],
            "clicks": clicks[seen],
        }
    )
    out["rate"] = np.where(out["sends"] >= MIN_WEEK_SENDS, out["clicks"] / out["sends"].clip(lower=1), np.nan)
    return out


def engagement_change(
    events: pd.DataFrame, settings: DriftSettings, rows: tuple | None = None
) -> dict[str, float]:
    """Per channel: the click rate per send of the last `recent_weeks` and of the weeks before them, the
    relative change and its two-proportion z (left out where either side has fewer than `min_sends`)."""
    ns, channel, click = rows or _sends_and_clicks(events)
    if ns.size == 0:
        return {}
    end = pd.to_datetime(events[S.TIMESTAMP], utc=True).max()
    recent = ns > (end - settings.recent_weeks * WEEK).value
    out: dict[str, float] = {}
    for i, c in enumerate(S.CHANNELS):
        on = channel == i
        (k1, n1), (k0, n0) = (
            (int(np.sum(side & on & click)), int(np.sum(side & on & ~click))) for side in (recent, ~recent)
        )
        if min(n1, n0) < settings.min_sends:
            continue
        r1, r0 = k1 / n1, k0 / n0
        pooled = min((k1 + k0) / (n1 + n0), 1.0)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
        out[f"recent_rate_{c}"], out[f"earlier_rate_{c}"] = r1, r0
        out[f"engagement_change_{c}"] = r1 / r0 - 1 if r0 > 0 else float("nan")
        out[f"engagement_z_{c}"] = float((r1 - r0) / se) if se > 0 else 0.0
    return out


def source_shares(table: pd.DataFrame) -> dict[str, float]:
    """Per channel, the share of the people reachable on it whose pattern comes from each source."""
    out: dict[str, float] = {}
    for c in S.CHANNELS:
        column = f"{c}_pattern_source"
        if column not in table.columns:
            continue
        reachable = table[f"has_{c}"].astype(bool) if f"has_{c}" in table.columns else slice(None)
        counts = table.loc[reachable, column].value_counts(normalize=True)
        out |= {f"source_{c}_{key}": float(counts.get(name, 0.0)) for name, key in SOURCE_KEYS.items()}
    return out


def reason_shares(plan: pd.DataFrame) -> dict[str, float]:
    """The same shares read from a plan: among its planned rows whose reason names where their scores
    came from (a holdout row's reason, "holdout: campaign time", names none)."""
    if S.REASON not in plan.columns or S.PLAN_CHANNEL not in plan.columns:
        return {}
    if "planned" in plan.columns:
        plan = plan[plan["planned"].astype(bool)]
    text = plan[S.REASON].astype("string").fillna("")
    named = pd.DataFrame({key: text.str.contains(name, regex=False) for name, key in SOURCE_KEYS.items()})
    channel = plan[S.PLAN_CHANNEL].astype("string")
    out: dict[str, float] = {}
    for c in S.CHANNELS:
        rows = named[((channel == c).fillna(False) & named.any(axis=1)).to_numpy()]
        if not rows.empty:
            out |= {f"source_{c}_{key}": float(rows[key].mean()) for key in SOURCE_KEYS.values()}
    return out


def profile_distance(new: np.ndarray, old: np.ndarray) -> dict[str, float]:
    """Total variation and Jensen-Shannon divergence (bits) between two [channel, 168] population profiles,
    each row read as a distribution over the hours of the week."""
    out: dict[str, float] = {}
    for i, c in enumerate(S.CHANNELS):
        p, q = (np.clip(np.asarray(x[i], float), 0, None) for x in (new, old))
        if p.sum() <= 0 or q.sum() <= 0:
            continue
        p, q = p / p.sum(), q / q.sum()
        m = (p + q) / 2

        def kl(a: np.ndarray, m: np.ndarray = m) -> float:
            keep = a > 0
            return float(np.sum(a[keep] * np.log2(a[keep] / m[keep])))

        out[f"profile_tv_{c}"] = float(0.5 * np.abs(p - q).sum())
        out[f"profile_js_{c}"] = 0.5 * kl(p) + 0.5 * kl(q)
    if out:
        out["profile_distance"] = max(v for k, v in out.items() if k.startswith("profile_tv_"))
    return out


def champion_snapshot_run(model_name: str) -> str | None:
    """The run holding the champion's snapshot now (None: no champion). Read it before a new one lands."""
    from sendtime.training import registry

    version = registry.champion_version(model_name)
    return None if version is None else registry.snapshot_run(model_name, str(version))


def champion_population(model_name: str) -> np.ndarray | None:
    """The champion's population profile now: read it before a new snapshot or champion replaces it."""
    return snapshot_population(champion_snapshot_run(model_name))


def snapshot_population(run_id: str | None) -> np.ndarray | None:
    """The population hour-of-week profile [channel, 168] of a run's snapshot (None: none to read): the
    small copy the drift watch logged, else the snapshot's arrays (a run from before the watch)."""
    if run_id is None:
        return None
    import mlflow

    from sendtime.training import registry

    try:
        return np.asarray(
            mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILE_ARTIFACT}")["population"], float
        )
    except Exception:  # not logged: a run from before the drift watch
        pass
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{registry.SNAPSHOT_ARTIFACT}/arrays.npz"
        )
        return np.load(path)["population_shape"]
    except Exception:  # a snapshot from another store layout must not stop the command
        return None


def warnings(
    metrics: dict[str, float], settings: DriftSettings, against: str = "the champion's"
) -> list[str]:
    """One line per shift beyond its threshold, saying what moved and what to do."""
    lines = []
    for c in S.CHANNELS:
        change = metrics.get(f"engagement_change_{c}", float("nan"))
        z = metrics.get(f"engagement_z_{c}", 0.0)
        if (
            np.isfinite(change)
            and abs(change) > settings.max_engagement_change
            and abs(z) >= settings.engagement_z
        ):
            lines.append(
                f"drift warning: {c} clicks per send {metrics[f'recent_rate_{c}']:.4f} in the last "
                f"{settings.recent_weeks} weeks against {metrics[f'earlier_rate_{c}']:.4f} before ({change:+.0%}, "
                f"z {z:+.1f}; limit ±{settings.max_engagement_change:.0%}): engagement has shifted; retrain "
                "(`sendtime train`)"
            )
    for c in S.CHANNELS:
        tv = metrics.get(f"profile_tv_{c}", float("nan"))
        if np.isfinite(tv) and tv > settings.max_profile_distance:
            lines.append(
                f"drift warning: the {c} population hour-of-week profile is {tv:.3f} from {against} (total "
                f"variation, limit {settings.max_profile_distance:.3f}): when people engage has moved; retrain"
            )
    return lines


def measure(
    events: pd.DataFrame,
    settings: DriftSettings,
    table: pd.DataFrame | None = None,
    population: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    calibration_error: float | None = None,
    shares: dict[str, float] | None = None,
) -> Figures:
    rows = _sends_and_clicks(events)
    weekly = weekly_engagement(events, rows)
    metrics: dict[str, float] = {}
    for c in S.CHANNELS:
        part = weekly[weekly["channel"] == c]
        if part["sends"].sum() > 0:
            metrics[f"engagement_rate_{c}"] = float(part["clicks"].sum() / part["sends"].sum())
    metrics |= engagement_change(events, settings, rows)
    metrics |= source_shares(table) if table is not None else (shares or {})
    if calibration_error is not None and np.isfinite(calibration_error):
        metrics["calibration_error"] = float(calibration_error)
    if population is not None and reference is not None:
        metrics |= profile_distance(population, reference)
    figures = Figures(metrics, weekly, population=population)
    figures.warnings = warnings(metrics, settings)
    return figures


def log(figures: Figures) -> None:
    """Into the active MLflow run: the figures, the weekly rates as a metric history (one step per week,
    stamped with the week's start) and the `drift_warning` tag ("none" when quiet)."""
    import mlflow
    from mlflow.entities import Metric

    run_id = mlflow.active_run().info.run_id
    finite = {PREFIX + k: float(v) for k, v in figures.metrics.items() if np.isfinite(v)}
    history = [
        Metric(f"{PREFIX}weekly_rate_{row.channel}", float(row.rate), int(row.week.timestamp() * 1000), step)
        for step, row in enumerate(figures.weekly.dropna(subset=["rate"]).itertuples())
    ]
    mlflow.log_metrics(finite | {f"{PREFIX}warnings": float(len(figures.warnings))})
    if history:
        mlflow.MlflowClient().log_batch(run_id, metrics=history)
    if figures.population is not None:
        profile = {"channels": list(S.CHANNELS), "population": np.asarray(figures.population, float).tolist()}
        mlflow.log_dict(profile, PROFILE_ARTIFACT)
    mlflow.set_tag(WARNING_TAG, "; ".join(figures.warnings)[:4900] or "none")


def watch(events: pd.DataFrame, settings: DriftSettings, echo=print, **inputs) -> Figures:
    """Measure, log into the active run and print each warning: the one call each command makes."""
    figures = measure(events, settings, **inputs)
    log(figures)
    for line in figures.warnings:
        echo(line)
    return figures
