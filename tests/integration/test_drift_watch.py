"""The drift watch on a simulated world, in the session's real MLflow store: train on the weeks before a
cut, then refresh the same version with exports of the whole world (unchanged; with most clicks of the
last two weeks gone; with every event six hours later), and evaluate. Its own experiment and registered
model, so the other modules' champion and runs are untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.experiments.bench_refresh import cut

pytestmark = pytest.mark.integration

NAME = "sendtime-drift-test"
WEEK = pd.Timedelta(days=7)


@pytest.fixture(scope="module")
def settings(test_settings):
    from sendtime.configs.settings import Settings

    raw = test_settings.model_dump(mode="json")
    raw["training"] |= {"registered_model": NAME, "experiment": NAME}
    return Settings.model_validate(raw)


def _altered(world: Path, out: Path, change) -> Path:
    """The whole world's export with its events passed through `change`."""
    out.mkdir(parents=True)
    events = change(pd.read_parquet(world / "events.parquet"))
    events.to_parquet(out / "events.parquet", index=False)
    for table in ("subscribers", "identity_links"):
        shutil.copy(world / f"{table}.parquet", out / f"{table}.parquet")
    return out


def _drop_recent_clicks(events: pd.DataFrame) -> pd.DataFrame:
    at = pd.to_datetime(events[S.TIMESTAMP], utc=True)
    recent_click = (events[S.EVENT_TYPE] == S.CLICK) & (at > at.max() - 2 * WEEK) & (at < at.max())
    drop = recent_click & (np.random.default_rng(0).random(len(events)) < 0.7)
    return events[~drop.to_numpy()]


def _six_hours_later(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(
        **{S.TIMESTAMP: pd.to_datetime(events[S.TIMESTAMP], utc=True) + pd.Timedelta(hours=6)}
    )


@pytest.fixture(scope="module")
def watched(session_home, small_world, settings, tmp_path_factory) -> dict:
    """Each command in turn, with what it printed and its MLflow run."""
    from sendtime.workflows.refresh import refresh
    from sendtime.workflows.train import train

    folder = tmp_path_factory.mktemp("drift")
    end = pd.to_datetime(pd.read_parquet(small_world / "events.parquet")[S.TIMESTAMP], utc=True).max()
    out: dict = {}

    def run(name, command, data):
        lines: list[str] = []
        out[name] = {"result": command(data, settings, progress=False, echo=lines.append), "lines": lines}

    run("train", train, cut(small_world, folder / "stale", (end - 2 * WEEK).floor("D")))
    run("dropped", refresh, _altered(small_world, folder / "dropped", _drop_recent_clicks))
    run("whole", refresh, _altered(small_world, folder / "whole", lambda e: e))
    run("shifted", refresh, _altered(small_world, folder / "shifted", _six_hours_later))
    run("retrain", train, folder / "dropped")  # against the champion's snapshot now: the shifted one
    return out


def _run(run_id: str):
    from sendtime.training import registry

    return registry.client().get_run(run_id)


def _warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("drift warning:")]


def test_train_logs_the_figures(watched):
    result = watched["train"]["result"]
    run = _run(result.run_id)
    m = run.data.metrics
    for c in S.CHANNELS:
        assert 0 < m[f"drift_engagement_rate_{c}"] < 0.2
        shares = [m[f"drift_source_{c}_{k}"] for k in ("personal", "linked", "cohort", "population")]
        assert sum(shares) == pytest.approx(1.0)
    assert m["drift_calibration_error"] == pytest.approx(result.metrics["calibration_error"])
    assert "drift_profile_distance" not in m  # the first version: no champion to compare with
    history = _run_history(result.run_id, "drift_weekly_rate_email")
    assert len(history) >= 7  # eight weeks of export: one point per calendar week
    assert run.data.tags["drift_warning"] == "none" and not _warnings(watched["train"]["lines"])


def _run_history(run_id: str, key: str):
    from sendtime.training import registry

    return registry.client().get_metric_history(run_id, key)


def test_refresh_of_the_unchanged_world_logs_the_figures_without_a_warning(watched):
    run = _run(watched["whole"]["result"].run_id)
    m = run.data.metrics
    assert {"drift_engagement_rate_email", "drift_source_sms_population", "drift_profile_tv_email"} <= set(m)
    assert 0 <= m["drift_profile_distance"] < 0.25
    assert abs(m["drift_engagement_change_email"]) < 0.3
    assert "drift_calibration_error" not in m  # a refresh predicts nothing it could check
    assert run.data.tags["drift_warning"] == "none"
    assert _warnings(watched["whole"]["lines"]) == []


def test_fewer_clicks_in_the_last_weeks_warn(watched):
    run = _run(watched["dropped"]["result"].run_id)
    m = run.data.metrics
    assert m["drift_engagement_change_email"] < -0.5
    lines = _warnings(watched["dropped"]["lines"])
    assert any(line.startswith("drift warning: email clicks per send") for line in lines), lines
    assert "email clicks per send" in run.data.tags["drift_warning"]
    assert m["drift_warnings"] == len(lines)


def test_engagement_six_hours_later_moves_the_profile_and_warns(watched):
    run = _run(watched["shifted"]["result"].run_id)
    assert run.data.metrics["drift_profile_distance"] > 0.25
    lines = _warnings(watched["shifted"]["lines"])
    assert any("population hour-of-week profile is" in line for line in lines), lines
    assert "hour-of-week profile" in run.data.tags["drift_warning"]
    # measured against the snapshot it replaced (the unchanged world's), read from its small copy
    from sendtime.training import drift

    before, after = (drift.snapshot_population(watched[k]["result"].run_id) for k in ("whole", "shifted"))
    arrays = np.load(_artifact(watched["shifted"]["result"].run_id, "profiles/arrays.npz"))
    assert after == pytest.approx(arrays["population_shape"], abs=1e-6)
    expected = drift.profile_distance(after, before)["profile_distance"]
    assert run.data.metrics["drift_profile_distance"] == pytest.approx(expected)


def _artifact(run_id: str, path: str) -> str:
    import mlflow

    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)


def test_train_warns_against_the_champion_it_may_replace(watched):
    run = _run(watched["retrain"]["result"].run_id)
    assert run.data.metrics["drift_profile_distance"] > 0.25  # six hours earlier than the champion's
    lines = _warnings(watched["retrain"]["lines"])
    assert any(line.startswith("drift warning: email clicks per send") for line in lines), lines
    assert any("population hour-of-week profile is" in line for line in lines), lines
    assert run.data.tags["drift_warning"] == "; ".join(lines)


def test_evaluate_plots_the_figures_over_time(watched, settings, small_world, tmp_path):
    from sendtime.training import registry
    from sendtime.training.drift_plot import history
    from sendtime.workflows.evaluate import evaluate

    runs, weekly = history(NAME)
    assert list(runs["command"]) == ["train", "refresh", "refresh", "refresh", "train"]
    assert list(runs["warning"] != "none") == [False, True, False, True, True]
    assert set(weekly["channel"]) == set(S.CHANNELS)
    assert (weekly["channel"] == S.EMAIL).sum() >= 10  # ten weeks of the world, each once (the latest run's)
    assert not weekly.duplicated(["week", "channel"]).any()

    lines: list[str] = []
    result = evaluate(small_world, settings, progress=False, echo=lines.append)
    said = [line for line in lines if line.startswith("drift over time:")]
    assert said == [
        f"drift over time: 5 runs plotted in drift_history.png (an artifact of run {result.run_id})"
    ]
    path = registry.client().download_artifacts(result.run_id, "drift_history.png", str(tmp_path))
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
