"""`sendtime train` end to end: no leakage, the promotion gate, what a run logs, where it logs it."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.configs.settings import load_settings
from sendtime.features.load import load_folder
from sendtime.features.model_features import feature_matrix, gather_rows
from sendtime.features.prepare import build_feature_base
from sendtime.features.profiles import build_profiles
from sendtime.training import examples

SMALL = {"snapshots": 3, "num_boost_round": 120}


# ------------------------------------------------------------------------------------------ leakage
def _snapshot_examples(base, as_of: pd.Timestamp, end: pd.Timestamp, settings):
    """The cells of one training snapshot, labelled and featurised exactly as build_examples does."""
    profiles = build_profiles(base, as_of, settings.profiles)  # shrinkage chosen as of the snapshot too
    cells = examples.label_sends(base, as_of, end, settings.training.label_hours, base.span[1])
    rows = gather_rows(profiles, np.arange(len(profiles)))
    X = feature_matrix(
        rows, profiles, cells["sub"].to_numpy(), cells["channel"].to_numpy(), cells["how"].to_numpy()
    )
    return profiles, cells, X


def _copy_world(src, dst, all_timezones_known: bool):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(S.GROUND_TRUTH_DIR))
    if (
        all_timezones_known
    ):  # every person's own row in the subscribers table: nothing is inferred from activity
        people = pd.read_parquet(src / S.GROUND_TRUTH_DIR / "people.parquet")
        rows = [
            people[[col, "timezone"]].dropna().rename(columns={col: S.ADDRESS}).assign(**{S.CHANNEL: channel})
            for col, channel in (("email", S.EMAIL), ("phone", S.SMS))
        ]
        pd.concat(rows, ignore_index=True).to_parquet(dst / "subscribers.parquet", index=False)
    return dst


def _check_no_leakage(world, tmp_path):
    """Build the last training snapshot's examples; add a click 12 h after each of its sends (all after the
    snapshot) and build them again: the labels may change, the features may not."""
    settings = load_settings(overrides={"training": SMALL})
    base = build_feature_base(load_folder(world, settings.data), settings)
    week_end = examples.boundaries(base, settings)["validation"]
    snapshot = week_end - pd.Timedelta(days=7)

    future = tmp_path / "future"
    shutil.copytree(world, future)
    events = pd.read_parquet(world / "events.parquet")
    sent = events[
        (events[S.EVENT_TYPE] == S.SEND)
        & (events[S.TIMESTAMP] >= snapshot)
        & (events[S.TIMESTAMP] < week_end)
    ]
    clicks = sent.assign(**{S.EVENT_TYPE: S.CLICK, S.TIMESTAMP: sent[S.TIMESTAMP] + pd.Timedelta(hours=12)})
    pd.concat([events, clicks], ignore_index=True).to_parquet(future / "events.parquet", index=False)
    later = build_feature_base(load_folder(future, settings.data), settings)
    assert len(later.engagements) > len(base.engagements)
    assert later.subscribers[S.SUBSCRIBER_ID].equals(
        base.subscribers[S.SUBSCRIBER_ID]
    )  # same people, same rows
    pd.testing.assert_frame_equal(base.subscribers, later.subscribers)  # timezones included

    p1, cells1, X1 = _snapshot_examples(base, snapshot, week_end, settings)
    p2, cells2, X2 = _snapshot_examples(later, snapshot, week_end, settings)
    keys = ["sub", "channel", "at", "how"]
    pd.testing.assert_frame_equal(cells1[keys], cells2[keys])
    assert (cells2["label"].to_numpy() > cells1["label"].to_numpy()).sum() > 0  # the labels may change...
    assert p1.shrinkage == p2.shrinkage
    np.testing.assert_array_equal(X1, X2)  # ...the features may not


def test_a_future_event_cannot_change_a_training_feature(small_world, tmp_path):
    _check_no_leakage(_copy_world(small_world, tmp_path / "known", all_timezones_known=True), tmp_path)


def test_a_future_event_cannot_move_an_inferred_timezone(small_world, tmp_path):
    _check_no_leakage(_copy_world(small_world, tmp_path / "as-is", all_timezones_known=False), tmp_path)


# --------------------------------------------------------------------------------------------- gate
@pytest.mark.integration
def test_a_worse_model_is_registered_but_not_promoted(trained_champion, small_world, test_settings):
    from sendtime.training import registry
    from sendtime.workflows.train import train

    lgbm = dict(test_settings.training.lgbm, learning_rate=0.001)
    worse = load_settings(overrides={"training": {**SMALL, "num_boost_round": 1, "lgbm": lgbm}})
    result = train(small_world, worse, progress=False, echo=lambda *_: None)

    assert result.promoted is False
    assert result.version != trained_champion.version
    # the champion was scored on the same test cells: it reproduces its own training number
    assert result.champion_log_loss == pytest.approx(trained_champion.metrics["log_loss"], abs=1e-9)
    assert result.metrics["log_loss"] > result.champion_log_loss
    name = worse.training.registered_model
    assert str(registry.champion_version(name)) == trained_champion.version
    run = registry.client().get_run(result.run_id)
    assert run.data.tags["promoted"] == "False"


# -------------------------------------------------------------------------------------- run content
BASELINES = (
    "campaign_time",
    "population_best_hour",
    "most_frequent_hour",
    "smoothed_histogram",
    "exposure_corrected_histogram",
)
ARTIFACTS = (
    "plots/calibration.png",
    "plots/feature_importance.png",
    "plots/hour_of_week.png",
    "profiles/meta.json",
    "rejects.csv",
    "data.json",
)
TEXT_SUFFIXES = {".json", ".csv", ".txt", ".yaml", ".yml", ".md", ""}


@pytest.mark.integration
def test_the_training_run_logs_params_metrics_artifacts_and_a_signed_model(
    trained_champion, small_world, test_settings, tmp_path
):
    import mlflow
    from mlflow.models import get_model_info

    from sendtime.training import registry

    registry.configure_mlflow(test_settings.training.experiment)
    client = registry.client()
    run = client.get_run(trained_champion.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["kind"] == trained_champion.kind
    assert params["lgbm_learning_rate"] == str(test_settings.training.lgbm["learning_rate"])
    assert {f"lgbm_{k}" for k in test_settings.training.lgbm} <= set(params)
    for prefix in ("", *(f"{b}_" for b in BASELINES)):
        for metric in ("log_loss", "auc", "calibration_error"):
            assert np.isfinite(metrics[f"{prefix}{metric}"]), f"{prefix}{metric}"
    for method in ("model", *BASELINES):  # the folder has ground truth: capture, also under the SMS budget
        assert f"{method}_capture" in metrics and f"budget30_{method}_capture" in metrics

    local = tmp_path / "artifacts"
    mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(local))
    for path in ARTIFACTS:
        assert (local / path).is_file(), path

    name, version = test_settings.training.registered_model, trained_champion.version
    assert get_model_info(f"models:/{name}/{version}").signature is not None
    assert "champion" in client.get_model_version(name, version).aliases
    model_dir = tmp_path / "model"
    mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(model_dir))

    # no raw address anywhere: no '@' in any text file, no e-mail or phone number of the world in any file
    people = pd.read_parquet(small_world / S.GROUND_TRUTH_DIR / "people.parquet")
    needles = [a.lower().encode() for a in pd.concat([people["email"], people["phone"]]).dropna()]
    needles += [p[1:].encode() for p in people["phone"].dropna()]  # without the '+'
    files = [p for p in [*local.rglob("*"), *model_dir.rglob("*")] if p.is_file()]
    assert len(files) > len(ARTIFACTS)
    for path in files:
        raw = path.read_bytes().lower()
        if path.suffix in TEXT_SUFFIXES:
            assert b"@" not in raw, path
        leaked = [n.decode() for n in needles if n in raw]
        assert not leaked, f"{path} contains {leaked[:3]}"


# ------------------------------------------------------------------------------------- tracking URI
@pytest.mark.integration
def test_mlflow_tracking_uri_is_honoured(trained_champion, small_world, test_settings, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from sendtime import home
    from sendtime.training import registry
    from sendtime.workflows.train import train

    session_store = home.tracking_uri()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    monkeypatch.chdir(tmp_path)  # a store without an artifact root writes ./mlruns
    settings = load_settings(overrides={"training": {**SMALL, "num_boost_round": 30}})
    result = train(small_world, settings, progress=False, echo=lambda *_: None)

    name = settings.training.registered_model
    there = MlflowClient(tracking_uri=other, registry_uri=other)
    assert result.promoted  # a fresh registry: no champion to beat
    assert str(there.get_model_version_by_alias(name, registry.CHAMPION).version) == result.version
    assert there.get_run(result.run_id).info.run_id == result.run_id
    here = MlflowClient(tracking_uri=session_store, registry_uri=session_store)
    assert str(here.get_model_version_by_alias(name, registry.CHAMPION).version) == trained_champion.version
    assert {mv.run_id for mv in here.search_model_versions(f"name='{name}'")}.isdisjoint({result.run_id})
