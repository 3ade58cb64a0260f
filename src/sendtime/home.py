"""Where local state lives: SENDTIME_HOME (default ./.sendtime) and the MLflow URIs under it.

Functions, not module constants, so that nothing is created or read at import time.
"""

from __future__ import annotations

import os
from pathlib import Path


def sendtime_home() -> Path:
    return Path(os.environ.get("SENDTIME_HOME", ".sendtime")).resolve()


def ensure_home() -> Path:
    home = sendtime_home()
    (home / "mlruns").mkdir(parents=True, exist_ok=True)
    return home


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite store under SENDTIME_HOME."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{sendtime_home() / 'mlflow.db'}"


def artifact_root() -> str:
    return (sendtime_home() / "mlruns").as_uri()


def bentoml_home() -> Path:
    return sendtime_home() / "bentoml"


def snapshots_dir() -> Path:
    return sendtime_home() / "snapshots"


def optuna_storage() -> str:
    return f"sqlite:///{sendtime_home() / 'optuna.db'}"
