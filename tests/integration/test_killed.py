"""A killed `sendtime` leaves nothing behind: no worker processes, no hidden temporary files, no MLflow
run stuck in RUNNING, no scratch folders (issue 11, point 5).

Real processes, real signals: `sendtime schedule` on an audience large enough to resolve its contacts
in forked workers, killed (SIGTERM, SIGKILL) while they run; `sendtime train` killed while its MLflow run
is open, then a real `train` start on the same store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sendtime.training import registry

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")
START, END = "2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z"


def _tmp(home: Path) -> Path:
    """The child's own temporary folder: another `sendtime train` on this machine sweeps the scratch
    folders of dead processes in the shared one, which would race these tests' look at them."""
    folder = home.parent / f"{home.name}-tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SENDTIME_HOME=str(home), MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="true")
    env["TMPDIR"] = str(_tmp(home))
    return env


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _wait_until(check, timeout: float, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    return check()


@pytest.fixture(scope="module")
def big_audience(tmp_path_factory) -> Path:
    """300,000 new contacts: resolved in forked workers (predictor.PARALLEL_CONTACTS is 50,000)."""
    rng = np.random.default_rng(0)
    n = 300_000
    area = rng.integers(201, 990, n)
    line = rng.integers(2_000_000, 9_999_999, n)
    frame = pd.DataFrame(
        {
            "email": [f"person{i}@example.com" for i in range(n)],
            "phone": [f"+1{a}{x}" for a, x in zip(area, line, strict=True)],
        }
    )
    path = tmp_path_factory.mktemp("big-audience") / "audience.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_schedule_leaves_no_workers_and_no_temporary_files(
    trained_champion, session_home, big_audience, tmp_path, sig
):
    out_dir = tmp_path / "plans"
    out_dir.mkdir()
    args = ["schedule", "--audience", str(big_audience), "--start", START, "--end", END]
    err_file = tmp_path / "stderr.txt"
    with open(err_file, "w") as err_out:  # a file, not a pipe: a surviving worker would hold a pipe open
        proc = subprocess.Popen(
            [str(SENDTIME), *args, "--out", str(out_dir / "plan.csv")],
            env=_env(session_home),
            stdout=subprocess.DEVNULL,
            stderr=err_out,
        )
    workers: set[int] = set()
    try:
        workers = _wait_until(lambda: _children(proc.pid) if proc.poll() is None else {-1}, timeout=300)
        assert workers and workers != {-1}, (
            "the schedule never started worker processes: " + err_file.read_text()[-2000:]
        )
        time.sleep(0.3)  # let the workers get busy with their chunks
        workers |= _children(proc.pid)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        _wait_until(lambda: not any(_running(p) for p in workers), timeout=10)
        survivors = [p for p in workers if _running(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in workers - {-1}:  # a failing run must not leave them to the rest of the suite
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    err = err_file.read_text()
    assert not survivors, f"worker processes survived their parent: {survivors}"
    assert proc.returncode == (143 if sig == signal.SIGTERM else -signal.SIGKILL), err
    if sig == signal.SIGTERM:
        assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert sorted(os.listdir(out_dir)) == []  # no plan (killed before writing) and no hidden temporary


_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import pandas as pd
    from sendtime.cli import _on_sigterm, _terminate
    from sendtime.serving.plan_io import atomic_path

    _on_sigterm(_terminate)
    target = sys.argv[1]
    with atomic_path(__import__("pathlib").Path(target)) as tmp:
        with open(tmp, "w") as f:
            f.write("half a plan\\n" * 1000)
            f.flush()
            print("writing", flush=True)
            os.kill(os.getpid(), int(sys.argv[2]))
            signal.pause()
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_plan_killed_mid_write_leaves_no_file(tmp_path, sig):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "plan.csv").write_text("the previous plan\n")
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(folder / "plan.csv"), str(int(sig))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "writing" in proc.stdout, proc.stderr
    assert proc.returncode != 0
    assert sorted(os.listdir(folder)) == ["plan.csv"]  # nothing hidden left beside it
    assert (folder / "plan.csv").read_text() == "the previous plan\n"  # and the old plan untouched


def _runs(home: Path) -> pd.DataFrame:
    code = (
        "import os, mlflow, sys; from sendtime.training import registry;"
        "registry.configure_mlflow('sendtime');"
        "df = mlflow.search_runs(experiment_names=['sendtime']);"
        "cols = [c for c in ('run_id', 'status', 'tags.sendtime.pid') if c in df.columns];"
        "sys.stdout.write(df[cols].to_json(orient='records'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(home), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return pd.read_json(__import__("io").StringIO(proc.stdout or "[]"), orient="records", dtype=False)


def _scratch_of(pid: int, home: Path) -> list[Path]:
    return list(_tmp(home).glob(f"{registry.SCRATCH_PREFIX}{pid}-*"))


def _train_until_its_run_is_open(home: Path, data: Path, config: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(SENDTIME), "train", "--data", str(data), "--config", str(config)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    opened = _wait_until(
        lambda: _scratch_of(proc.pid, home) or proc.poll() is not None, timeout=400, every=0.05
    )
    assert opened and proc.poll() is None, "train ended before its run was open"
    return proc


@pytest.fixture
def train_config(tmp_path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text("training:\n  snapshots: 3\n  num_boost_round: 120\n")
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_train_is_marked_failed_and_its_scratch_removed_on_the_next_start(
    small_world, tmp_path, train_config
):
    home = tmp_path / "home"
    proc = _train_until_its_run_is_open(home, small_world, train_config)
    pid = proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    runs = _runs(home)
    assert runs["status"].tolist() == ["RUNNING"] and runs["tags.sendtime.pid"].tolist() == [str(pid)]
    assert _scratch_of(pid, home), "SIGKILL leaves the scratch folder (nothing can clean up)"

    # the next start, on data too short for a model (a profile-only version): it still cleans up first
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    rows = [f"2026-03-02T09:{i:02d}:00Z,email,send,p{i}@example.com" for i in range(20)]
    (tiny / "events.csv").write_text("timestamp,channel,event_type,address\n" + "\n".join(rows) + "\n")
    again = subprocess.run(
        [str(SENDTIME), "train", "--data", str(tiny)],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert f"marked 1 run(s) FAILED that a killed process left RUNNING: {runs['run_id'][0]}" in again.stdout
    assert "removed 1 scratch folder(s)" in again.stdout
    after = _runs(home).set_index("run_id")["status"]
    assert after[runs["run_id"][0]] == "FAILED"
    assert not _scratch_of(pid, home)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_train_stopped_by_sigterm_ends_its_run_and_removes_its_scratch(small_world, tmp_path, train_config):
    home = tmp_path / "home"
    proc = _train_until_its_run_is_open(home, small_world, train_config)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err, err
    assert _runs(home)["status"].tolist() == ["FAILED"]
    assert not _scratch_of(proc.pid, home)


def test_a_run_of_a_live_process_or_another_host_is_left_running(session_home, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("SENDTIME_HOME", str(tmp_path / "home"))
    registry.configure_mlflow("orphans-check")
    parent = os.getppid()  # a live process other than this one
    live_tags = {registry.PID_TAG: str(parent), registry.STARTED_TAG: registry._process_started(parent)}
    live = mlflow.start_run(tags={**registry.process_tags(), **live_tags})
    mlflow.end_run(status="RUNNING")  # leave it open in the store, as a running process would
    other = mlflow.start_run(tags={**registry.process_tags(), registry.HOST_TAG: "some-other-host"})
    mlflow.end_run(status="RUNNING")
    dead = mlflow.start_run(tags={**registry.process_tags(), registry.PID_TAG: "999999999"})
    mlflow.end_run(status="RUNNING")
    assert registry.fail_orphaned_runs("orphans-check") == [dead.info.run_id]
    status = {r.info.run_id: r.info.status for r in registry.client().search_runs([live.info.experiment_id])}
    assert status == {live.info.run_id: "RUNNING", other.info.run_id: "RUNNING", dead.info.run_id: "FAILED"}
