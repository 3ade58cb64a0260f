"""`sendtime train --engine spark` computes the feature base on Spark and trains exactly the model the
local engine trains: the same metrics, to the last bit, as the session's champion (trained locally on
the same folder and settings), and the same data fingerprint; `refresh --engine spark` counts the same."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.spark

SENDTIME = Path(sys.executable).with_name("sendtime")


@pytest.fixture(scope="module")
def spark_home(small_world, test_settings, tmp_path_factory):
    """A fresh SENDTIME_HOME with `train --engine spark` run in it: (home, environment, config, stderr, stdout)."""
    pytest.importorskip("pyspark", reason="the Spark tests need the spark extra")
    if shutil.which("java") is None:
        pytest.skip("the Spark tests need Java (17)")
    root = tmp_path_factory.mktemp("spark-train")
    home, config = root / "home", root / "settings.yaml"
    config.write_text(yaml.safe_dump(test_settings.model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SENDTIME_HOME=str(home), MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="true")
    command = [
        "train",
        "--engine",
        "spark",
        "--data",
        str(small_world),
        "--config",
        str(config),
        "--log-level",
        "INFO",
    ]
    done = subprocess.run([str(SENDTIME), *command], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return home, env, config, done


def _client(home: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")


def test_train_on_spark_equals_the_local_run(spark_home, trained_champion, session_home):
    home, _, _, done = spark_home
    assert "spark feature base:" in done.stderr  # the feature base came from the Spark engine
    (run_id,) = [line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("run id: ")]
    run = _client(home).get_run(run_id)
    local = _client(session_home).get_run(trained_champion.run_id)
    assert run.data.tags["data_sha256"] == local.data.tags["data_sha256"]
    finite = {k: v for k, v in trained_champion.metrics.items() if np.isfinite(v)}
    assert "model_capture" in finite and "log_loss" in finite
    assert {k: run.data.metrics[k] for k in finite} == finite


@pytest.mark.slow
def test_refresh_on_spark_counts_what_the_local_run_counted(
    spark_home, small_world, trained_champion, session_home, tmp_path
):
    home, env, config, _ = spark_home
    command = ["refresh", "--engine", "spark", "--data", str(small_world), "--config", str(config)]
    done = subprocess.run([str(SENDTIME), *command], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("snapshot: ")]
    refresh_id = line.split("(run ", 1)[1].split(")", 1)[0]
    stats = [
        json.loads(Path(_client(h).download_artifacts(r, "data.json", str(tmp_path / r))).read_text())[
            "stats"
        ]
        for h, r in ((home, refresh_id), (session_home, trained_champion.run_id))
    ]
    assert stats[0] == stats[1]
