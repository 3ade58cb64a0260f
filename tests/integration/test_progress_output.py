"""Progress bars only on a terminal: piped into a log file or CI, a command's output holds no
carriage-return frames of a progress bar, only its result lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")


def test_piped_output_has_no_progress_frames(tmp_path):
    done = subprocess.run(
        [str(SENDTIME), "simulate", "--out", str(tmp_path / "world"), "--subscribers", "60", "--days", "14"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout and "\r" not in done.stderr, done.stderr[-500:]
    assert "it/s" not in done.stderr  # no tqdm frame, even a final one
    assert done.stdout.strip()  # the summary is still printed


def test_predict_draws_no_artifact_download_bars(trained_champion, session_home, tmp_path):
    import os

    env = {**os.environ, "SENDTIME_HOME": str(session_home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
    body = '{"subscribers": [{"email": "someone@example.com"}]}'
    done = subprocess.run(
        [str(SENDTIME), "predict"], input=body, capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert '"decisions"' in done.stdout
    assert "Downloading artifacts" not in done.stderr and "\r" not in done.stderr, done.stderr[-500:]


def test_a_training_run_records_its_data_and_code(trained_champion, session_home):
    from mlflow import MlflowClient

    from sendtime.training import recipe

    # the session's own store, named outright: an earlier test may have pointed MLflow elsewhere
    run = MlflowClient(tracking_uri=f"sqlite:///{session_home / 'mlflow.db'}").get_run(
        trained_champion.run_id
    )
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
    assert dataset.digest == run.data.tags["data_sha256"]  # the export's fingerprint
    assert run.data.params["data"] in dataset.source
    assert run.data.tags["git_commit"] == recipe.code_commit() and run.data.tags["git_commit"]
