"""`sendtime report` on a simulated world whose truth is known: a plan from the real champion, sent to the
world (experiments/outcomes.py), read back: files, counts, the MLflow run, the CLI and its errors, and the
coverage of the lift interval over a few repeated campaigns (the full measure: bench_report, 50 seeds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration
SENDTIME = Path(sys.executable).with_name("sendtime")


@pytest.fixture(scope="module")
def campaign(trained_champion, small_world, test_settings, tmp_path_factory):
    """A plan with a holdout, exploration and a share never sent; the export overlaps the history."""
    from sendtime.experiments.outcomes import World, follow_plan
    from sendtime.serving.planner import load_predictor
    from sendtime.serving.schedule import run_schedule
    from sendtime.workflows.report_join import read_plan

    folder = tmp_path_factory.mktemp("report")
    world = World.load(small_world)
    end = pd.Timestamp(world.meta["end"])
    audience = folder / "audience.csv"
    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet")
    people[["email", "phone"]].fillna("").to_csv(audience, index=False)
    predictor = load_predictor(test_settings)
    window = ((end + pd.Timedelta(hours=12)).isoformat(), (end + pd.Timedelta(hours=36)).isoformat())
    plan_path = folder / "plan.csv"
    run_schedule(audience, *window, plan_path, test_settings, holdout=0.3, explore=0.3, seed=0,
                 echo=lambda *_: None, predictor=predictor)  # fmt: skip
    plan = read_plan(plan_path)
    sent = follow_plan(world, plan, folder / "export", seed=0, never_sent_share=0.1, history=True)
    return {"folder": folder, "plan": plan_path, "sent": sent, "world": world, "predictor": predictor,
            "window": window, "audience": audience}  # fmt: skip


@pytest.fixture(scope="module")
def result(campaign, test_settings, trained_champion):
    from sendtime.workflows.report import report

    return report(
        campaign["plan"],
        campaign["folder"] / "export",
        test_settings,
        out=campaign["folder"] / "out",
        export_end=str(campaign["sent"]["export_end"]),
        echo=lambda *_: None,
    )


def test_report_files_and_counts(result, campaign):
    out = campaign["folder"] / "out"
    for name in ("report.md", "overview.png", "lift.png", "calibration.png", "hours.png", "arms.csv",
                 "arms_by_channel.csv", "calibration_by_decile.csv", "calibration_by_hour.csv",
                 "never_sent.csv", "metrics.json"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    sent = campaign["sent"]
    arms = result.arms
    assert arms.loc["all", "planned"] == sent["planned"]
    assert arms.loc["all", "never_sent"] == sent["never_sent"] > 0  # reported, not failures
    assert arms.loc["all", "censored"] == 0 and arms.loc["all", "measured"] == sent["sent"]
    assert len(pd.read_csv(out / "never_sent.csv")) == sent["never_sent"]
    assert arms.loc[["optimised", "holdout", "explored"], "planned"].sum() == sent["planned"]
    text = (out / "report.md").read_text()
    assert "Never sent: " in text and "percentile bootstrap over people" in text
    assert {"all", "email"} <= set(result.lift)
    assert set(result.off_policy) == {"plan", "campaign time", "population best hour"}


def test_outcomes_follow_the_truth(result, campaign):
    """The simulated clicks of the sent rows average to the world's true probabilities."""
    from sendtime.experiments.outcomes import true_probability

    rows = result.rows[result.rows["measured"]]
    world = campaign["world"]
    truth = true_probability(world, world.person_of(rows), rows["channel"], rows["send_at"])
    clicks = rows["clicked"].to_numpy(float)
    se = np.sqrt(np.sum(truth * (1 - truth))) / len(truth)
    assert clicks.mean() == pytest.approx(truth.mean(), abs=3 * se)


def test_mlflow_run_linked_to_the_model_version(result, trained_champion, test_settings):
    from sendtime.training import registry

    assert result.model_version == str(trained_champion.version)
    assert result.version_source.startswith("assumed")
    run = registry.client().get_run(result.run_id)
    tags = run.data.tags
    assert tags["sendtime.command"] == "report" and tags["model_version"] == result.model_version
    mv = registry.client().get_model_version(test_settings.training.registered_model, result.model_version)
    assert tags["model_run_id"] == mv.run_id
    assert "lift_all_absolute" in run.data.metrics and "ips_plan" in run.data.metrics
    logged = {f.path for f in registry.client().list_artifacts(result.run_id, "report")}
    assert {"report/overview.png", "report/report.md", "report/arms.csv"} <= logged


def test_without_message_ids_the_same_sends_are_found(campaign, test_settings, result):
    """Exports without message ids: engagements on the address within 24 h count instead."""
    from sendtime.workflows.report import analyse
    from sendtime.workflows.report_join import read_plan

    export = campaign["folder"] / "no-ids"
    export.mkdir()
    events = pd.read_parquet(campaign["folder"] / "export" / "events.parquet").drop(columns=["message_id"])
    events.to_parquet(export / "events.parquet")
    plain = analyse(read_plan(campaign["plan"]), export, test_settings, n_boot=200,
                    export_end=campaign["sent"]["export_end"])  # fmt: skip
    assert plain.arms.loc["all", "sent"] == result.arms.loc["all", "sent"]
    assert plain.arms.loc["all", "clicks"] >= result.arms.loc["all", "clicks"]


def test_lift_interval_covers_the_truth_in_repeated_campaigns(campaign, test_settings, tmp_path):
    """A few seeds here (bench_report measures 50): coverage and the IPS of the plan against the truth."""
    from sendtime.experiments.bench_report import measure

    table = measure(campaign["world"].folder, test_settings, campaign["predictor"], list(range(6)), tmp_path,
                    n_boot=500, echo=lambda *_: None)  # fmt: skip
    assert table["covers"].sum() >= 4
    err = table["ips_plan"] - table["ips_plan_truth"]
    assert abs(err.mean()) <= 3 * err.std(ddof=1) / np.sqrt(len(err)) + 1e-3
    assert table["ips_plan_covers"].sum() >= 4


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SENDTIME_HOME=str(home), MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="true")
    return subprocess.run(
        [str(SENDTIME), "report", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_report_and_errors(campaign, session_home, trained_champion):
    folder = campaign["folder"]
    ok = _cli(["--plan", str(campaign["plan"]), "--data", str(folder / "export"), "--out", str(folder / "cli"),
               "--version", str(trained_champion.version), "--export-end", str(campaign["sent"]["export_end"])],
              session_home)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "lift: optimised minus holdout" in ok.stdout and "(--version)" in ok.stdout
    assert (folder / "cli" / "report.md").exists()

    broken = folder / "broken.csv"
    pd.read_csv(campaign["plan"]).drop(columns=["propensity"]).to_csv(broken, index=False)
    bad = _cli(["--plan", str(broken), "--data", str(folder / "export")], session_home)
    assert bad.returncode == 2 and "propensity" in bad.stderr and str(broken) in bad.stderr
    nodata = _cli(["--plan", str(campaign["plan"]), "--data", str(folder / "nowhere")], session_home)
    assert nodata.returncode == 2 and "nowhere" in nodata.stderr


def test_the_report_run_carries_the_drift_figures(result):
    """The drift watch (training/drift.py) on the report's run: the plan's calibration, its reasons' pattern
    sources and the export's clicks per send; the campaign changed nothing, so no warning."""
    from sendtime.training import registry

    run = registry.client().get_run(result.run_id)
    m = run.data.metrics
    assert m["drift_calibration_error"] == pytest.approx(result.metrics["calibration_error_decile"])
    shares = [m[f"drift_source_email_{k}"] for k in ("personal", "linked", "cohort", "population")]
    assert sum(shares) == pytest.approx(1.0)  # among the rows whose reason names a source (not the holdout)
    assert m["drift_source_email_population"] > 0.5  # 600 people with a few events each: mostly priors
    assert 0 < m["drift_engagement_rate_email"] < 0.2
    assert run.data.tags["drift_warning"] == "none" and m["drift_warnings"] == 0
