"""Short exports train with the default config (issue 11): two weeks give a profile-only decision maker,
eight weeks a model on a split chosen for the span; both plan a campaign through the real CLI.

In one MLflow store, in order: 2 weeks (profile-only, the first champion), 8 weeks (a model, gated
against the profile-only champion on its own test cells), 2 weeks again (not promoted over a tested
model). Small worlds (800 people) keep it to about a minute.
"""

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
PEOPLE = 800


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SENDTIME_HOME=str(home), MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="true")
    done = subprocess.run([str(SENDTIME), *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Worlds of 14 and 56 days trained in one store (default config), each followed by a plan."""
    from sendtime.experiments.simulate import simulate

    root = tmp_path_factory.mktemp("short")
    home = root / "home"
    out = {"home": home}
    for days in (14, 56):
        world = root / f"w{days}"
        simulate(world, subscribers=PEOPLE, days=days, seed=days)
        people = pd.read_parquet(world / "ground_truth" / "people.parquet")[["email", "phone"]].head(200)
        people.fillna("").to_csv(root / f"audience{days}.csv", index=False)
        out[days] = {"world": world, "train": _run(["train", "--data", str(world)], home).stdout}
        end = pd.read_parquet(world / "events.parquet")["timestamp"].max().ceil("D")
        plan = root / f"plan{days}.csv"
        out[days]["schedule"] = _run(
            [
                "schedule",
                "--audience",
                str(root / f"audience{days}.csv"),
                "--out",
                str(plan),
                "--start",
                f"{end:%Y-%m-%dT12:00:00Z}",
                "--end",
                f"{end + pd.Timedelta(days=1):%Y-%m-%dT12:00:00Z}",
                "--max-sms",
                "50",
            ],
            home,
        ).stdout
        out[days]["plan"] = pd.read_csv(plan, keep_default_na=False)
    return out


def test_two_weeks_register_a_profile_only_champion(runs):
    text = runs[14]["train"]
    assert "split design: 14.0 days of data are too short to train and test a model" in text
    assert "profile-only decision maker" in text and "promoted to champion: yes (no champion yet)" in text
    plan = runs[14]["plan"]
    assert len(plan) == 200 and (plan["channel"] != "").mean() > 0.9
    assert "planned with model version 1" in runs[14]["schedule"]


def test_eight_weeks_train_a_model_on_a_split_chosen_for_the_span(runs):
    text = runs[56]["train"]
    assert "split design (chosen for the data span): 56.0 days" in text
    assert "4 weekly training snapshots, 10.5 validation days, 10.5 test days" in text
    assert "model kind: send_response\n" in text and "test log loss" in text
    assert "champion log loss on this test set: none" not in text  # gated against the profile-only v1
    plan = runs[56]["plan"]
    # most rows get a send; a row without one is suppressed or an SMS-only person the 50-text budget
    # did not reach (which of them the budget reaches moves with the estimator), never silently dropped
    assert len(plan) == 200 and (plan["channel"] != "").mean() > 0.85
    unsent = plan.loc[plan["channel"] == "", "reason"]
    assert unsent.str.contains("suppressed|budget").all(), unsent[~unsent.str.contains("suppressed|budget")]


def test_mlflow_records_the_design_and_the_model_kind(runs, monkeypatch):
    monkeypatch.setenv("SENDTIME_HOME", str(runs["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from sendtime.configs.settings import load_settings
    from sendtime.serving.predictor import Predictor
    from sendtime.training import registry

    settings = load_settings()
    registry.configure_mlflow(settings.training.experiment)
    name = settings.training.registered_model
    client = registry.client()
    v1, v2 = client.get_model_version(name, "1"), client.get_model_version(name, "2")
    assert v1.tags["model_kind"] == "profile_only" and v2.tags["model_kind"] == "lightgbm"
    r1, r2 = client.get_run(v1.run_id), client.get_run(v2.run_id)
    assert r1.data.tags["model_kind"] == "profile_only" and "too short" in r1.data.tags["split_design"]
    assert r1.data.params["split_profile_only"] == "True" and "log_loss" not in r1.data.metrics
    # the drift watch runs on a profile-only training too: rates and sources, no calibration (no test),
    # no profile distance (no champion before it)
    m1 = r1.data.metrics
    assert 0 < m1["drift_engagement_rate_email"] < 0.2 and r1.data.tags["drift_warning"] == "none"
    assert sum(m1[f"drift_source_email_{k}"] for k in ("personal", "linked", "cohort", "population")) == (
        pytest.approx(1.0)
    )
    assert "drift_calibration_error" not in m1 and "drift_profile_distance" not in m1
    assert r2.data.params["split_snapshots"] == "4" and r2.data.params["split_test_days"] == "10.5"
    assert r2.data.params["split_given"] == "none"

    predictor = Predictor.from_registry(settings, version="1")  # the profile-only version still serves
    assert predictor.meta["model_kind"] == "profile_only" and predictor.booster.num_trees() == 0
    assert predictor.ranks_hours_like_profile  # so a plan may score only each person's top hours


def test_profile_only_never_replaces_a_tested_champion(runs, monkeypatch):
    monkeypatch.setenv("SENDTIME_HOME", str(runs["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from sendtime.configs.settings import load_settings
    from sendtime.training import registry
    from sendtime.workflows.train import train

    settings = load_settings()
    registry.configure_mlflow(settings.training.experiment)
    name = settings.training.registered_model
    registry.promote(name, "2")  # the 8-week model (whatever its own gate said)
    result = train(runs[14]["world"], settings, progress=False, echo=lambda *_: None)
    assert result.model_kind == "profile_only" and not result.promoted
    assert "never replaces" in result.note
    # measured against the champion it did not replace: the same world's people, two weeks of it
    metrics = registry.client().get_run(result.run_id).data.metrics
    assert 0 <= metrics["drift_profile_tv_email"] < 0.5 and "drift_profile_distance" in metrics
    assert registry.champion_version(name) == "2"
    registry.promote(name, "1")  # a profile-only champion is replaced by a newer profile-only version
    again = train(runs[14]["world"], settings, progress=False, echo=lambda *_: None)
    assert again.promoted and registry.champion_version(name) == again.version


def _tiny_export(folder: Path) -> Path:
    """40 people e-mailed every other day for 25 days, clicking only in the first 12: the split chosen for
    25 days (1 snapshot, 3.5 + 3.5 days) has no click in its validation and test periods."""
    start = pd.Timestamp("2026-09-01", tz="UTC")
    rows = []
    for i in range(40):
        for day in range(0, 25, 2):
            at = start + pd.Timedelta(days=day, hours=8 + (i * 7 + day) % 12)
            rows.append((at, "email", "send", f"p{i}@example.com"))
            if day < 12 and i % 3 == 0:
                rows.append((at + pd.Timedelta(hours=2), "email", "click", f"p{i}@example.com"))
    events = pd.DataFrame(rows, columns=["timestamp", "channel", "event_type", "address"])
    folder.mkdir()
    events.to_csv(folder / "events.csv", index=False)
    return folder


def test_a_split_without_clicks_falls_back_to_profile_only_unless_the_config_chose_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SENDTIME_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from sendtime.configs.settings import load_settings
    from sendtime.training.examples import TooFewExamples
    from sendtime.workflows.train import train

    world = _tiny_export(tmp_path / "tiny")
    lines: list[str] = []
    result = train(world, load_settings(), progress=False, echo=lines.append)
    assert result.model_kind == "profile_only" and result.promoted
    assert any("no usable labelled examples" in line and "profile-only" in line for line in lines)
    with pytest.raises(TooFewExamples):
        train(world, load_settings(overrides={"training": {"snapshots": 1}}), progress=False, echo=print)


def test_the_profile_only_version_is_a_decision_model_in_mlflow(runs, monkeypatch):
    """MLflow tools get decisions from a profile-only version too (issue 14.2): the API's, row for row,
    and no LightGBM flavour, since there is no booster."""
    monkeypatch.setenv("SENDTIME_HOME", str(runs["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import mlflow.pyfunc
    from mlflow.models import get_model_info

    import sendtime
    from sendtime.configs.settings import load_settings
    from sendtime.training import registry

    settings = load_settings()
    registry.configure_mlflow(settings.training.experiment)
    uri = f"models:/{settings.training.registered_model}/1"
    assert set(get_model_info(uri).flavors) == {"python_function"}
    people = pd.read_parquet(runs[14]["world"] / "ground_truth" / "people.parquet")[["email", "phone"]].head(
        40
    )
    people = people.astype(object).where(people.notna(), None)
    window = ("2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z")
    got = mlflow.pyfunc.load_model(uri).predict(
        people.assign(window_start=window[0], window_end=window[1]), params={"seed": 0}
    )
    want = sendtime.load(version="1", config=settings).predict(people, window, seed=0)
    assert (got["model_version"] == "1").all() and got["channel"].notna().mean() > 0.9
    for column in ("subscriber_id", "channel", "send_at", "reason"):
        assert got[column].tolist() == want[column].tolist(), column
    np.testing.assert_allclose(got["expected_engagement"].astype(float), want["expected_engagement"])
