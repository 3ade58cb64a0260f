"""Normal operations are logged at INFO on standard error: `--log-level INFO` (or SENDTIME_LOG_LEVEL)
shows each step of train and schedule; the default (WARNING) shows none, and the printed results are
the same either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")
TRAIN_STEPS = ("data loaded from", "features built:", "examples (", "model trained:", "registered")
SCHEDULE_STEPS = ("audience read from", "model version", "plan written:")


def _run(args: list[str], home: Path, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "SENDTIME_LOG_LEVEL", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    }
    env.update(SENDTIME_HOME=str(home), MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="true", **extra)
    done = subprocess.run(
        [str(SENDTIME), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _steps(stderr: str, steps: tuple[str, ...]) -> list[str]:
    info = [line for line in stderr.splitlines() if " INFO sendtime." in line]
    return [step for step in steps if any(step in line for line in info)]


def test_info_shows_the_steps_and_warning_does_not(small_world, test_settings, tmp_path):
    home = tmp_path / "home"
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(test_settings.model_dump(mode="json")))
    train = _run(
        ["train", "--data", str(small_world), "--config", str(config), "--log-level", "info"], home, tmp_path
    )
    assert _steps(train.stderr, TRAIN_STEPS) == list(TRAIN_STEPS), train.stderr[-3000:]
    assert "registered version:" in train.stdout  # the printed result lines stay
    assert "Downloading artifacts" not in train.stderr and "\r" not in train.stderr  # no MLflow bars in a log
    assert " INFO mlflow" not in train.stderr and " INFO alembic" not in train.stderr  # sendtime's steps only

    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet").head(50)
    people[["email", "phone"]].to_csv(tmp_path / "audience.csv", index=False)
    schedule = ["schedule", "--audience", "audience.csv", "--start", "2026-11-10T12:00:00Z"]
    schedule += ["--end", "2026-11-11T12:00:00Z", "--config", str(config)]
    by_env = _run([*schedule, "--out", "a.csv"], home, tmp_path, SENDTIME_LOG_LEVEL="INFO")
    assert _steps(by_env.stderr, SCHEDULE_STEPS) == list(SCHEDULE_STEPS), by_env.stderr[-3000:]
    quiet = _run(
        [*schedule, "--out", "b.csv", "--log-level", "WARNING"], home, tmp_path, SENDTIME_LOG_LEVEL="INFO"
    )
    assert " INFO " not in quiet.stderr, quiet.stderr[-3000:]
    assert quiet.stdout.startswith("sendtime schedule: 50 audience rows planned")
