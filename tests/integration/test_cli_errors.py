"""The real `sendtime` command on unusable input: exit code 2 and a clear one-line error, never a traceback.

Each case runs `.venv/bin/sendtime train --data DIR` as a subprocess with its own SENDTIME_HOME. The
runs are slow to start (the training stack is imported), so they are launched together once per module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")
HEADER = "timestamp,channel,event_type,address"
GOOD = "2026-03-02T09:00:00Z,email,send,ana@example.com"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _cases(root: Path) -> dict[str, tuple[list[str], dict[str, Path]]]:
    """name -> (arguments after `sendtime`, paths the error must name). The first case runs first."""
    cases = {}
    data = root / "missing_column"
    path = _write(
        data, "events.csv", "timestamp,channel,address\n2026-03-02T09:00:00Z,email,ana@example.com\n"
    )
    cases["missing_column"] = (["train", "--data", str(data)], {"file": path})

    data = root / "bad_timestamps"
    rows = (
        [GOOD] * 6
        + ["03-02-2026 nine o'clock,email,send,ana@example.com"] * 3
        + ["2026-03-02T09:00:00Z,fax,send,x"]
    )
    path = _write(data, "events.csv", "\n".join([HEADER, *rows]) + "\n")
    cases["bad_timestamps"] = (["train", "--data", str(data)], {"file": path})

    data = root / "empty_events"
    path = _write(data, "events.csv", HEADER + "\n")
    cases["empty_events"] = (["train", "--data", str(data)], {"file": path})

    missing = root / "does_not_exist"
    cases["missing_folder"] = (["train", "--data", str(missing)], {"folder": missing})

    data = root / "fine"
    _write(data, "events.csv", "\n".join([HEADER, GOOD]) + "\n")
    config = root / "nope.yaml"
    cases["missing_config"] = (["train", "--data", str(data), "--config", str(config)], {"config": config})

    typo = _write(root, "typo.yaml", "signals:\n  atribution_hours: 48\n")
    cases["unknown_config_key"] = (["train", "--data", str(data), "--config", str(typo)], {"config": typo})
    return cases


def _run(args: list[str], root: Path, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SENDTIME_HOME=str(home), MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="true")
    return subprocess.run(
        [str(SENDTIME), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-errors-home") / "home"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, home):
    """The first case alone on a fresh SENDTIME_HOME, then the rest together on the same home."""
    if not SENDTIME.exists():
        pytest.skip(f"{SENDTIME} is not installed (pip install -e . into the venv)")
    root = tmp_path_factory.mktemp("cli-errors")
    cases = _cases(root)
    first, *rest = cases
    results = {first: _run(cases[first][0], root, home)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(_run, cases[name][0], root, home) for name in rest}
        results.update({name: future.result() for name, future in futures.items()})
    return {name: (results[name], cases[name][1]) for name in cases}


def _error_line(proc: subprocess.CompletedProcess) -> str:
    """The error, checked to be a clean one-liner: exit 2, no traceback, last stderr line."""
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, "no error message on stderr"
    errors = [line for line in lines if line.startswith("sendtime train: error: ")]
    assert errors == [lines[-1]], proc.stderr
    return lines[-1]


def test_missing_column_names_the_file_and_the_column(runs):
    proc, named = runs["missing_column"]
    line = _error_line(proc)
    assert str(named["file"]) in line
    assert "missing required column 'event_type'" in line


def test_bad_timestamps_over_the_limit_report_the_counts(runs):
    proc, named = runs["bad_timestamps"]
    line = _error_line(proc)
    assert str(named["file"]) in line
    assert "4 of 10 rows" in line and "bad_share_limit" in line
    assert "events: unparseable timestamp: 3" in line and "events: unknown channel: 1" in line


def test_empty_events_file_fails_clearly(runs):
    proc, named = runs["empty_events"]
    line = _error_line(proc)
    assert str(named["file"]) in line and "no rows" in line


def test_missing_folder_is_named(runs):
    proc, named = runs["missing_folder"]
    line = _error_line(proc)
    assert str(named["folder"]) in line and "not a folder" in line


def test_missing_config_file_is_named(runs):
    proc, named = runs["missing_config"]
    line = _error_line(proc)
    assert str(named["config"]) in line and "does not exist" in line


def test_unknown_config_key_is_named(runs):
    proc, _ = runs["unknown_config_key"]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "atribution_hours" in proc.stderr


def test_a_data_error_on_a_fresh_home_is_the_only_output_and_leaves_no_state(runs, home):
    proc, _ = runs["missing_column"]  # ran first, on a fresh SENDTIME_HOME
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [_error_line(proc)]
    assert not (home / "mlflow.db").exists()


@pytest.mark.parametrize("args", [["--help"], ["schedule", "--help"], ["train", "--help"]])
def test_help_exits_zero(args, tmp_path):
    if not SENDTIME.exists():
        pytest.skip(f"{SENDTIME} is not installed")
    env = {**os.environ, "SENDTIME_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [str(SENDTIME), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: sendtime" in proc.stdout
    assert proc.stderr == ""
    assert not (tmp_path / "home").exists()  # help touches no state
