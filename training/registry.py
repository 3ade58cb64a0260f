"""MLflow store, model registry and the promotion gate.

The tracking store is SQLite under SENDTIME_HOME unless MLFLOW_TRACKING_URI points elsewhere; the
registry lives in the same place. Every training run registers a version; the alias `champion` moves
only when the new version passes the gate (`training.gate`), both models scored on the *same* held-out
cells, each with its own features (`workflows.champion`).
Serving loads the version the alias points to and pins it, reporting that number in every answer.

A version's profile snapshot starts as the `profiles` artifact of its training run; `sendtime refresh`
logs a newer one in a run of its own and points the version's tag `snapshot_run_id` at it, so the model
stays the same version while its evidence is today's. Everything that loads a version loads its newest
snapshot; the training run's stays in MLflow, untouched.

Our own store records artifact locations as absolute paths (MLflow's choice); a SENDTIME_HOME copied or
mounted elsewhere still loads because those paths are re-rooted under the current home when the
recorded one is gone (`relocated`). A store behind MLFLOW_TRACKING_URI is left to its server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb

from sendtime import home

CHAMPION = "champion"
SNAPSHOT_ARTIFACT = "profiles"
# version tags naming the newest snapshot (absent: the training run's): the run that logged it, its
# artifact URI and the instant its profiles are as of
SNAPSHOT_RUN_TAG, SNAPSHOT_URI_TAG, SNAPSHOT_AS_OF_TAG = "snapshot_run_id", "snapshot_uri", "snapshot_as_of"
KEEP_REFRESHED = 2  # local copies of a version's refreshed snapshots kept: the served one and the one before


def configure_mlflow(experiment: str) -> None:
    """Point MLflow at our store; called by entry points, never at import."""
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    # MLflow draws a download bar for every artifact it reads (the champion's snapshot, a logged model):
    # carriage-return frames in logs and CI, and noise on a terminal; our own bars say what is long
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    for noisy in ("mlflow", "alembic"):  # store migrations and registry chatter are not the user's business
        logging.getLogger(noisy).setLevel(logging.WARNING)
    external = bool(
        os.environ.get("MLFLOW_TRACKING_URI")
    )  # decided before set_tracking_uri sets that variable
    home.ensure_home()
    mlflow.set_tracking_uri(home.tracking_uri())
    mlflow.set_registry_uri(home.tracking_uri())
    if not external:  # set_tracking_uri exports the variable; a later SENDTIME_HOME must still win
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        # our own store keeps artifacts under SENDTIME_HOME; another server decides for itself
        mlflow.create_experiment(experiment, artifact_location=None if external else home.artifact_root())
    elif not external:
        _rehome_experiment(found)
    mlflow.set_experiment(experiment)


def _rehome_experiment(found) -> None:
    """A moved home: new runs (and their models) go under this home, not the path the store was made
    at. MLflow has no call to change an experiment's artifact location, so its row is updated; on a
    read-only store nothing is written (loading still works, through `relocated`)."""
    import sqlite3

    moved = relocated(found.artifact_location)
    if moved is None:
        return
    try:
        with contextlib.closing(sqlite3.connect(home.sendtime_home() / "mlflow.db")) as db, db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                (moved, int(found.experiment_id)),
            )
    except sqlite3.Error as exc:
        logging.getLogger(__name__).warning("store moved, but cannot record its new place: %s", exc)


def client():
    from mlflow import MlflowClient

    return MlflowClient()


@dataclass
class Champion:
    version: str
    run_id: str
    booster: lgb.Booster
    snapshot_dir: Path
    tags: dict
    snapshot_run_id: str = ""  # the run whose `profiles` artifact is loaded: run_id, or a refresh's run


def champion_version(model_name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def load_booster(model_name: str, version: str) -> lgb.Booster:
    """The version's model: a LightGBM booster, or for a profile-only version (tag `model_kind`) the
    `ProfileOnlyModel` with the same predict interface (training/profile_only.py)."""
    import mlflow.lightgbm

    from sendtime.training.profile_only import MODEL_KIND_TAG, PROFILE_ONLY, load_registered

    tags = client().get_model_version(model_name, version).tags or {}
    location = client().get_model_version_download_uri(model_name, version)
    uri = relocated(location) or f"models:/{model_name}/{version}"
    if tags.get(MODEL_KIND_TAG) == PROFILE_ONLY:
        try:  # the decision model's copy of the rule (serving/decision_model.py)
            return _profile_rule(uri if not uri.startswith("models:/") else location)
        except Exception:  # a version logged before: its own model from code
            return load_registered(uri)
    if uri.startswith("models:/"):
        uri = location
    try:
        return _booster_only(uri)
    except Exception:  # a model laid out otherwise: MLflow's own loader reads all of it
        return mlflow.lightgbm.load_model(uri)


def _profile_rule(location: str):
    """A profile-only version's rule, read from the decision model's booster file."""
    import mlflow

    from sendtime.training.profile_only import booster_from_string, is_profile_only

    with tempfile.TemporaryDirectory(prefix="sendtime-model-") as folder:
        data = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location}/artifacts/model.lgb", dst_path=folder
        )
        rule = booster_from_string(Path(data).read_text())
    if not is_profile_only(rule):
        raise ValueError("tagged profile-only, but its model file holds a LightGBM model")
    return rule


def _booster_only(location: str) -> lgb.Booster:
    """The native flavour's booster file alone: the model's directory also holds the decision flavour's
    copy of the profile snapshot (serving/decision_model.py), which sendtime loads from the run instead."""
    import mlflow
    import yaml

    with tempfile.TemporaryDirectory(prefix="sendtime-model-") as folder:
        spec = mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/MLmodel", dst_path=folder)
        flavour = (yaml.safe_load(Path(spec).read_text()).get("flavors") or {})["lightgbm"]
        if flavour.get("model_class", "lightgbm.basic.Booster") != "lightgbm.basic.Booster":
            raise ValueError(f"not a Booster: {flavour.get('model_class')}")
        data = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location}/{flavour['data']}", dst_path=folder
        )
        return lgb.Booster(model_file=data)


def run_artifact_uri(run_id: str, path: str) -> str:
    """Where a run's artifact is read from: `runs:/<run>/<path>`, or its relocated place."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return f"runs:/{run_id}/{path}"
    stored = client().get_run(run_id).info.artifact_uri
    return relocated(f"{stored}/{path}") or f"runs:/{run_id}/{path}"


def relocated(uri: str) -> str | None:
    """The artifact `uri` re-rooted under this SENDTIME_HOME's `mlruns`, when our own store recorded it
    under a home that is no longer there (the home was copied, moved or mounted elsewhere); None when
    the recorded location serves as it is (it exists, or it belongs to another tracking server)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(urllib.parse.unquote(parsed.path))
    if path.exists() or "mlruns" not in path.parts:
        return None
    parts = path.parts
    root = len(parts) - 1 - parts[::-1].index("mlruns")  # the last one: artifact paths below it have none
    moved = home.sendtime_home().joinpath("mlruns", *parts[root + 1 :])
    return moved.as_uri() if moved.exists() else None


def snapshot_run(model_name: str, version: str) -> str:
    """The run whose `profiles` artifact is the version's newest snapshot (its training run until a
    refresh): what the service's poll compares to notice a refresh of the version it serves."""
    mv = client().get_model_version(model_name, version)
    return (mv.tags or {}).get(SNAPSHOT_RUN_TAG) or mv.run_id


def register_snapshot(model_name: str, version: str, run_id: str, as_of: str) -> None:
    """Make the `profiles` artifact of `run_id` the version's newest snapshot. Called once the artifact
    is fully logged, and the run tag last: whoever reads the tag finds the whole snapshot behind it."""
    c = client()
    c.set_model_version_tag(model_name, version, SNAPSHOT_AS_OF_TAG, as_of)
    c.set_model_version_tag(model_name, version, SNAPSHOT_URI_TAG, f"runs:/{run_id}/{SNAPSHOT_ARTIFACT}")
    c.set_model_version_tag(model_name, version, SNAPSHOT_RUN_TAG, run_id)


def load_version(model_name: str, version: str | None = None) -> Champion:
    """Load a pinned version (default: the champion alias, resolved once) with its newest snapshot."""
    # MLflow draws a download bar per artifact: noise at every predict, schedule and serve start
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    version = version or champion_version(model_name)
    if version is None:
        raise LookupError(
            f"no '{CHAMPION}' alias on registered model '{model_name}' in {home.tracking_uri()}: run `sendtime train` first"
        )
    mv = client().get_model_version(model_name, version)
    snapshot_run_id = (mv.tags or {}).get(SNAPSHOT_RUN_TAG) or mv.run_id
    target = _snapshot_copy(model_name, str(version), mv.run_id, snapshot_run_id)
    booster = load_booster(model_name, version)
    release_artifact_threads()
    return Champion(
        str(version), mv.run_id, booster, target / SNAPSHOT_ARTIFACT, dict(mv.tags or {}), snapshot_run_id
    )


def _snapshot_copy(model_name: str, version: str, run_id: str, snapshot_run_id: str) -> Path:
    """The local copy of a snapshot, downloaded once: the training run's under `<model>-v<version>`, a
    refresh's under `<model>-v<version>-<run id>`. Downloaded beside it and renamed into place, so that a
    killed download never passes for a snapshot; older refreshed copies of the version are removed."""
    import mlflow

    name = f"{model_name}-v{version}" + ("" if snapshot_run_id == run_id else f"-{snapshot_run_id}")
    target = home.snapshots_dir() / name
    if (target / SNAPSHOT_ARTIFACT / "meta.json").exists():
        return target
    home.snapshots_dir().mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=home.snapshots_dir()))
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=run_artifact_uri(snapshot_run_id, SNAPSHOT_ARTIFACT), dst_path=str(partial)
        )
        shutil.rmtree(target, ignore_errors=True)  # a copy without meta.json: left by an older download
        try:
            partial.rename(target)
        except OSError:  # another process put the same copy in place first
            if not (target / SNAPSHOT_ARTIFACT / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if snapshot_run_id != run_id:
        _drop_old_refreshes(model_name, version, keep=target)
    return target


def _drop_old_refreshes(model_name: str, version: str, keep: Path) -> None:
    """A daily refresh would otherwise leave a snapshot a day behind (hundreds of MB for millions of
    people). The one before the newest stays: a process that started loading it may still be reading."""
    copies = sorted(
        (p for p in home.snapshots_dir().glob(f"{model_name}-v{version}-*") if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in copies[KEEP_REFRESHED - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def release_artifact_threads() -> None:
    """End the idle download threads MLflow leaves after a load.

    MLflow's artifact repositories each keep a thread pool, and some repositories stay referenced
    (cached, or held by the repository that wraps them) after a download, so their idle threads live
    on; while any other thread lives, forking workers is not safe (`forking.can_fork`), and the first
    `schedule` after a download resolved a large audience on one core. The pools are found by their
    thread names; each owner gets a fresh pool, which starts threads only if it is given work again.
    """
    import gc
    from concurrent.futures import ThreadPoolExecutor

    if not any(t.name.startswith("Mlflow") for t in threading.enumerate()):
        return
    pools = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, ThreadPoolExecutor)
        and obj._thread_name_prefix.startswith("Mlflow")
        and obj._threads
    ]
    for pool in pools:
        owners = [r for r in gc.get_referrers(pool) if getattr(r, "thread_pool", None) is pool]
        if owners and all(hasattr(o, "_create_thread_pool") for o in owners):
            for owner in owners:  # a fresh pool starts no thread until it is given work
                owner.thread_pool = owner._create_thread_pool()
            pool.shutdown(wait=True)


def gate(new_loss: float, champion_loss: float | None, margin: float) -> bool:
    """Promote when there is no champion or the new loss is lower by at least the relative margin."""
    return champion_loss is None or new_loss < champion_loss * (1.0 - margin)


def promote(model_name: str, version: str) -> None:
    client().set_registered_model_alias(model_name, CHAMPION, version)


SCRATCH_PREFIX = "sendtime-scratch-"  # then the owner's pid and "-": a later run can tell orphans apart


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A folder for files on their way into MLflow, removed once logged: a run's profile snapshot can
    be hundreds of MB, and every train or evaluate used to leave one behind in /tmp. Removed on SIGTERM
    too (the CLI turns it into an exception); one left by a killed process goes at the next start
    (`sweep_scratch`)."""
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as folder:
        yield Path(folder)


def sweep_scratch() -> list[Path]:
    """Remove the scratch folders of processes that are gone (killed before they could clean up)."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not process_alive(int(pid)) and _own(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _own(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.getuid()
    except (OSError, AttributeError):
        return False


# --- runs left RUNNING by a killed process ----------------------------------------------------------------
PID_TAG, HOST_TAG, STARTED_TAG = "sendtime.pid", "sendtime.host", "sendtime.process_started"


def _process_started(pid: int) -> str:
    """When the process started (clock ticks since boot, /proc on Linux): a pid is reused, this is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return ""


def process_alive(pid: int, started: str = "") -> bool:
    """Is process `pid` running (and, when `started` is known, the same process that was recorded)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    return not started or _process_started(pid) in ("", started)


def process_tags() -> dict[str, str]:
    """Tags a run starts with, so that a later start can tell whether the process behind it is gone."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), STARTED_TAG: _process_started(pid)}


def fail_orphaned_runs(experiment: str) -> list[str]:
    """Mark FAILED the experiment's runs still RUNNING whose process (same host, by the tags above) is
    gone: a `train` killed by SIGKILL (or a crash of the machine) never ended its run. Runs from other
    hosts, or without the tags, are left alone: nothing says their process is gone. Returns their ids."""
    import mlflow

    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    host = socket.gethostname()
    failed = []
    runs = client().search_runs([found.experiment_id], filter_string="attributes.status = 'RUNNING'")
    for run in runs:
        tags = run.data.tags
        pid = tags.get(PID_TAG, "")
        if tags.get(HOST_TAG) != host or not pid.isdigit():
            continue
        if int(pid) == os.getpid() or process_alive(int(pid), tags.get(STARTED_TAG, "")):
            continue
        client().set_tag(run.info.run_id, "sendtime.ended_by", "a later start: its process was gone")
        client().set_terminated(run.info.run_id, status="FAILED")
        failed.append(run.info.run_id)
    return failed


def recover_interrupted(experiment: str) -> list[str]:
    """What an earlier killed process left behind, cleaned up at start; one line per finding to print."""
    notes = []
    failed = fail_orphaned_runs(experiment)
    if failed:
        notes.append(
            f"marked {len(failed)} run(s) FAILED that a killed process left RUNNING: {', '.join(failed)}"
        )
    removed = sweep_scratch()
    if removed:
        notes.append(
            f"removed {len(removed)} scratch folder(s) a killed process left: {', '.join(map(str, removed))}"
        )
    return notes
