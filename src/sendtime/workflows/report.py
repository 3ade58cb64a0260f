"""`sendtime report`: did the plan work? A plan written by `sendtime schedule`, joined with the events that
followed (report_join), read three ways:

- **Arms**: the holdout (kept at the campaign time) is a random share of the audience, so the optimised
  arm's click rate minus the holdout's is the plan's lift, with a stratified percentile bootstrap interval
  over people and a two-sided p-value (report_stats.lift).
- **Off-policy**: the non-holdout rows were logged by a known random policy (explored rows took a uniform
  random feasible cell, with the plan's `propensity`), so inverse-propensity weighting estimates what any
  other policy would have got on them without a holdout: the plan's own choices, everyone by e-mail at
  the campaign time, and everyone by e-mail at the population's best clock hour of the export's history.
  These simple policies are e-mail policies, so all three are read on the non-holdout rows with a usable
  e-mail address. An explored row landed on the plan's own cell exactly when its propensity exceeds 1/2
  (true for any explore share below 1/2).
- **Calibration**: the plan's `expected_engagement` against the observed rate, by decile and send hour.

The plan file does not record the model version that made it, so the version is `--version`, else a
`model_version` column in the plan, else the champion when the report runs (said so in the report).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features.identity import normalise_emails
from sendtime.features.load import DataError, load_folder
from sendtime.workflows import report_join as J
from sendtime.workflows import report_stats as st

REPORT_TAG = "report"
PLAN_POLICY, CAMPAIGN_POLICY, BEST_HOUR_POLICY = "plan", "campaign time", "population best hour"


@dataclass
class ReportResult:
    out_dir: Path
    markdown: Path
    figures: dict[str, Path]
    rows: pd.DataFrame  # the joined plan: one row per plan row
    arms: pd.DataFrame  # per arm (and "all"): counts and rates
    by_channel: pd.DataFrame  # per arm x channel
    lift: dict[str, st.Lift]  # "all", "email", "sms" (where both arms have measured sends)
    off_policy: dict[str, st.Interval]
    cells: dict[str, str]  # the simple policies' send times (ISO)
    by_decile: pd.DataFrame
    by_hour: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    version_source: str = ""
    run_id: str | None = None
    events: pd.DataFrame | None = None  # the export's validated events (the drift watch reads them)


def arm_table(rows: pd.DataFrame, group: list[str], n_boot: int, seed: int) -> pd.DataFrame:
    """Counts and rates per group: planned, sent, never sent, censored, measured; click, open, conversion."""
    planned = rows[rows["planned"]]
    out = []
    for key, part in planned.groupby(group, sort=False):
        m = part[part["measured"]]
        clicks = m["clicked"].to_numpy(float)
        ci = st.rate_interval(clicks, np.ones(len(clicks)), n_boot, seed)
        email = m[m[S.PLAN_CHANNEL] == S.EMAIL]
        record = dict(zip(group, key if isinstance(key, tuple) else (key,), strict=True))
        record |= {
            "planned": len(part),
            "sent": int(part["sent"].sum()),
            "never_sent": int((~part["sent"]).sum()),
            "censored": int(part["censored"].sum()),
            "measured": len(m),
            "clicks": int(clicks.sum()),
            "click_rate": ci.estimate,
            "click_low": ci.low,
            "click_high": ci.high,
            "open_rate": float(email["opened"].mean()) if len(email) else float("nan"),
            "conversion_rate": float(m["converted"].mean()) if len(m) else float("nan"),
            "predicted": float(m[S.EXPECTED_ENGAGEMENT].mean()) if len(m) else float("nan"),
        }
        out.append(record)
    table = pd.DataFrame(out)
    if table.empty:
        return table
    order = {a: i for i, a in enumerate((*J.ARMS, "all"))}
    return table.sort_values(group, key=lambda c: c.map(order) if c.name == "arm" else c).set_index(group)


def person_totals(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(clicks, measured sends) per person: the bootstrap's unit."""
    who = (
        rows[S.SUBSCRIBER_ID]
        .astype("string")
        .fillna("row:" + pd.Series(rows.index, index=rows.index).astype(str))
    )
    totals = rows.groupby(who.to_numpy())["clicked"].agg(["sum", "size"])
    return totals["sum"].to_numpy(float), totals["size"].to_numpy(float)


def lifts(rows: pd.DataFrame, n_boot: int, seed: int) -> dict[str, st.Lift]:
    m = rows[rows["measured"]]
    out = {}
    for name, part in (("all", m), *((c, m[m[S.PLAN_CHANNEL] == c]) for c in S.CHANNELS)):
        treat, control = part[part["arm"] == J.OPTIMISED], part[part["arm"] == J.HOLDOUT_ARM]
        if len(treat) and len(control):
            out[name] = st.lift(person_totals(treat), person_totals(control), n_boot, seed)
    return out


def utc(text: str | pd.Timestamp | None) -> pd.Timestamp | None:
    if text is None or text == "":
        return None
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 time") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def campaign_time(rows: pd.DataFrame, given: str | None) -> pd.Timestamp | None:
    """The campaign's plain send time: given, else the holdout's usual e-mail time, else the first send."""
    if given:
        return utc(given)
    planned = rows[rows["planned"]]
    held = planned[(planned["arm"] == J.HOLDOUT_ARM) & (planned[S.PLAN_CHANNEL] == S.EMAIL)]
    if len(held):
        return held[S.SEND_AT].mode().iloc[0]
    return planned[S.SEND_AT].min() if len(planned) else None


def best_hour_cell(rows: pd.DataFrame, rates: pd.DataFrame) -> pd.Timestamp | None:
    """The first hour of the plan's span at the clock hour with the best historical e-mail rate."""
    planned = rows.loc[rows["planned"], S.SEND_AT]
    if planned.empty or rates.empty:
        return None
    hours = pd.date_range(planned.min().floor("h"), planned.max().floor("h"), freq="h")
    usable = rates[rates.index.isin(hours.hour)]
    if usable.empty:
        return None
    best = usable["rate"].idxmax()
    return hours[hours.hour == best][0]


def off_policy(
    rows: pd.DataFrame, cells: dict[str, pd.Timestamp | None], n_boot: int, seed: int
) -> tuple[dict[str, st.Interval], pd.DataFrame]:
    """IPS values of the plan and the simple e-mail policies on the same logged rows (see the module)."""
    email_ok = normalise_emails(rows[S.AUDIENCE_EMAIL].astype("string")).notna()
    if S.REASON in rows.columns:
        email_ok &= ~rows[S.REASON].astype("string").str.contains("email suppressed", regex=False).fillna(
            False
        )
    logged = rows["measured"] & (rows["arm"] != J.HOLDOUT_ARM) & email_ok & (rows[J.PROPENSITY] > 0)
    pop = rows[logged]
    if pop.empty or not pop[J.EXPLORED].any():
        return {}, pop
    reward, prop = pop["clicked"].to_numpy(float), pop[J.PROPENSITY].to_numpy(float)
    matches = {PLAN_POLICY: (~pop[J.EXPLORED] | (pop[J.PROPENSITY] > 0.5)).to_numpy()}
    for name, cell in cells.items():
        if cell is not None:
            matches[name] = ((pop[S.PLAN_CHANNEL] == S.EMAIL) & (pop[S.SEND_AT] == cell)).to_numpy()
    return {name: st.ips_value(reward, prop, match, n_boot, seed) for name, match in matches.items()}, pop


def calibration(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = rows[rows["measured"] & rows[S.EXPECTED_ENGAGEMENT].notna()]
    pred, obs = m[S.EXPECTED_ENGAGEMENT].to_numpy(float), m["clicked"].to_numpy(float)
    by_decile = st.calibration_table(pred, obs, st.deciles(pred))
    by_hour = st.calibration_table(pred, obs, m[S.SEND_AT].dt.hour.to_numpy())
    by_decile.index.name, by_hour.index.name = "decile", "hour_utc"
    return by_decile, by_hour


def analyse(
    plan: pd.DataFrame,
    data: str | Path,
    settings: Settings,
    n_boot: int = st.N_BOOT,
    seed: int = 0,
    campaign: str | None = None,
    match_hours: float = 1.0,
    export_end: str | pd.Timestamp | None = None,
) -> ReportResult:
    """Everything the report says, without writing anything (the benchmark calls this directly)."""
    folder = load_folder(data, settings.data)
    region = settings.data.default_region
    events = folder.events.assign(key=J.event_keys(folder.events, region))
    rows = J.join(plan, events, region, match_hours, utc(export_end))
    first = rows.loc[rows["planned"], S.SEND_AT].min()
    rates = J.history_hour_rates(events, first) if pd.notna(first) else pd.DataFrame()
    times = {CAMPAIGN_POLICY: campaign_time(rows, campaign), BEST_HOUR_POLICY: best_hour_cell(rows, rates)}
    planned = rows[rows["planned"]]
    arms = arm_table(pd.concat([planned, planned.assign(arm="all")]), ["arm"], n_boot, seed)
    by_channel = arm_table(planned, ["arm", S.PLAN_CHANNEL], n_boot, seed)
    values, _ = off_policy(rows, times, n_boot, seed)
    by_decile, by_hour = calibration(rows)
    cells = {k: v.strftime("%Y-%m-%dT%H:%M:%SZ") for k, v in times.items() if v is not None}
    result = ReportResult(
        Path(),
        Path(),
        {},
        rows,
        arms,
        by_channel,
        lifts(rows, n_boot, seed),
        values,
        cells,
        by_decile,
        by_hour,
    )
    result.metrics = flat_metrics(result)
    result.events = folder.events
    return result


def flat_metrics(r: ReportResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for arm, row in r.arms.iterrows():
        for col in (
            "planned",
            "sent",
            "never_sent",
            "censored",
            "measured",
            "click_rate",
            "click_low",
            "click_high",
        ):
            out[f"{arm}_{col}"] = float(row[col])
    for name, lift in r.lift.items():
        for kind in ("absolute", "relative"):
            iv = getattr(lift, kind)
            out |= {f"lift_{name}_{kind}": iv.estimate, f"lift_{name}_{kind}_low": iv.low}
            out[f"lift_{name}_{kind}_high"] = iv.high
        out[f"lift_{name}_p_value"] = lift.p_value
    for name, iv in r.off_policy.items():
        key = "ips_" + name.replace(" ", "_")
        out |= {key: iv.estimate, f"{key}_low": iv.low, f"{key}_high": iv.high}
    out["calibration_error_decile"] = st.calibration_error(r.by_decile)
    out["calibration_error_hour"] = st.calibration_error(r.by_hour)
    return {k: float(v) for k, v in out.items()}


def resolve_version(plan: pd.DataFrame, version: str | None, settings: Settings) -> tuple[str | None, str]:
    if version:
        return str(version), "--version"
    if J.MODEL_VERSION in plan.columns:
        found = plan[J.MODEL_VERSION].dropna().astype(str).unique()
        if len(found) == 1:
            return found[0], "the plan's model_version column"
    from sendtime.training import registry

    champion = registry.champion_version(settings.training.registered_model)
    if champion is None:
        return None, "unknown (no --version, no model_version column in the plan, no champion)"
    return champion, "assumed: the champion when the report ran (the plan does not record it; pass --version)"


def report(
    plan: str | Path,
    data: str | Path,
    settings: Settings,
    out: str | Path | None = None,
    version: str | None = None,
    n_boot: int = st.N_BOOT,
    seed: int = 0,
    campaign: str | None = None,
    export_end: str | None = None,
    log_mlflow: bool = True,
    echo=print,
) -> ReportResult:
    """`sendtime report`: analyse, write report.md, figures and tables to `out`, log them to MLflow."""
    from sendtime.training import drift, registry
    from sendtime.workflows.report_plots import write_figures
    from sendtime.workflows.report_text import markdown, summary_lines

    plan_path = Path(plan)
    table = J.read_plan(plan_path)
    if not Path(data).is_dir():
        raise DataError(f"--data {data}: not a folder (expected the export holding events.parquet or .csv)")
    result = analyse(table, data, settings, n_boot, seed, campaign, export_end=export_end)
    out_dir = Path(out) if out else plan_path.with_name(f"{plan_path.stem}-report")
    out_dir.mkdir(parents=True, exist_ok=True)
    if log_mlflow:
        registry.configure_mlflow(settings.training.experiment)
    result.model_version, result.version_source = resolve_version(table, version, settings)
    result.out_dir = out_dir
    result.figures = write_figures(
        out_dir, result.arms, result.lift.get("all"), result.off_policy, result.by_decile, result.by_hour
    )
    result.arms.to_csv(out_dir / "arms.csv")
    result.by_channel.to_csv(out_dir / "arms_by_channel.csv")
    result.by_decile.to_csv(out_dir / "calibration_by_decile.csv")
    result.by_hour.to_csv(out_dir / "calibration_by_hour.csv")
    never = result.rows[result.rows["planned"] & ~result.rows["sent"]]
    never.drop(columns=["key"]).to_csv(out_dir / "never_sent.csv", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2, default=str))
    if log_mlflow:
        result.run_id = _log_run(result, plan_path, data, settings)
    result.markdown = out_dir / "report.md"
    result.markdown.write_text(markdown(result, plan_path, Path(data)))
    if result.run_id:
        import mlflow

        with mlflow.start_run(run_id=result.run_id):
            mlflow.log_artifact(str(result.markdown), artifact_path=REPORT_TAG)
            drift.watch(
                result.events,
                settings.drift,
                echo,
                calibration_error=result.metrics.get("calibration_error_decile"),
                shares=drift.reason_shares(result.rows),
            )
    for line in summary_lines(result):
        echo(line)
    return result


def _log_run(result: ReportResult, plan: Path, data, settings: Settings) -> str:
    """An MLflow run tagged `report`, linked to the model version (its run and, in MLflow 3, its model)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from sendtime.training import registry

    name, version = settings.training.registered_model, result.model_version
    mv = None
    if version is not None:
        try:
            mv = registry.client().get_model_version(name, version)
        except MlflowException:
            mv = None
    tags = {"sendtime.command": REPORT_TAG, REPORT_TAG: "true", "model_name": name}
    tags |= {"model_version": version or "unknown", "model_version_source": result.version_source}
    if mv is not None:
        tags["model_run_id"] = mv.run_id
    with mlflow.start_run(run_name=f"report-v{version or 'unknown'}", tags=registry.process_tags()) as run:
        mlflow.set_tags(tags)
        mlflow.log_params({"plan": str(plan.resolve()), "data": str(Path(data).resolve())})
        finite = {k: v for k, v in result.metrics.items() if np.isfinite(v)}
        model_id = getattr(mv, "model_id", None)
        mlflow.log_metrics(finite, **({"model_id": model_id} if model_id else {}))
        mlflow.log_dict({k: asdict(v) for k, v in result.off_policy.items()}, "off_policy.json")
        mlflow.log_artifacts(str(result.out_dir), artifact_path=REPORT_TAG)
    return run.info.run_id


def run_report(
    plan: str | Path,
    data: str | Path,
    settings: Settings,
    out: str | Path | None = None,
    version: str | None = None,
    campaign: str | None = None,
    export_end: str | None = None,
    seed: int = 0,
) -> int:
    report(plan, data, settings, out, version, seed=seed, campaign=campaign, export_end=export_end)
    return 0
