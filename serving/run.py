"""`sendtime serve`: check there is a model to serve, then run `bentoml serve` on the service.

The service reads its settings from SENDTIME_CONFIG and its state from SENDTIME_HOME (or
MLFLOW_TRACKING_URI), both passed on in the environment; BentoML's own store goes under
SENDTIME_HOME/bentoml unless BENTOML_HOME is set. One worker (see `service.py`); stop with Ctrl-C or
SIGTERM, which are passed on to BentoML so that no server is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sendtime import home
from sendtime.configs.settings import load_settings

SERVICE = "sendtime.serving.service:SendTime"


def serve(port: int = 3000, host: str = "127.0.0.1", config: str | None = None) -> int:
    """Run the prediction service in the foreground; returns BentoML's exit status (2: nothing to serve)."""
    config = config or os.environ.get("SENDTIME_CONFIG") or None
    settings = load_settings(config)  # a bad config fails here, not in the worker
    version = _champion(settings)
    if version is None:
        print(
            f"sendtime serve: error: no '{settings.training.registered_model}' model with a 'champion' alias in "
            f"{home.tracking_uri()}: run `sendtime train --data DIR` first",
            file=sys.stderr,
        )
        return 2

    env = dict(os.environ)
    env["SENDTIME_HOME"] = str(home.sendtime_home())
    env.setdefault("BENTOML_HOME", str(home.bentoml_home()))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    env.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # LightGBM's idle threads sleep instead of spinning
    env.setdefault("DO_NOT_TRACK", "true")
    if config:
        env["SENDTIME_CONFIG"] = str(Path(config).resolve())
    else:
        env.pop("SENDTIME_CONFIG", None)
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--port", str(port), "--host", host]
    print(f"sendtime serve: model version {version} on http://{host}:{port} (Ctrl-C stops)", file=sys.stderr)
    child = subprocess.Popen(command, env=env)
    stopped: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
        return 0 if stopped and code in (0, -signal.SIGINT, -signal.SIGTERM) else code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _champion(settings) -> str | None:
    from sendtime.training import registry

    registry.configure_mlflow(settings.training.experiment)
    return registry.champion_version(settings.training.registered_model)
