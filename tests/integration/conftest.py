"""The real `sendtime serve` for the modules that talk to it over HTTP: one server per module, on
loopback, on the session's champion, with an API key set and alias polling every 2 s."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from sendtime.experiments.bench_load import stop_server

SENDTIME = Path(sys.executable).with_name("sendtime")
API_KEY = "s3cret-test-key"


@pytest.fixture(scope="module")
def api_key() -> str:
    return API_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def config(tmp_path_factory, test_settings) -> Path:
    raw = test_settings.model_dump(mode="json")
    raw["serving"]["reload_poll_seconds"] = 2
    path = tmp_path_factory.mktemp("serve") / "serve.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def env(session_home) -> dict[str, str]:
    out = {**os.environ, "SENDTIME_HOME": str(session_home), "SENDTIME_API_KEY": API_KEY}
    out.pop("MLFLOW_TRACKING_URI", None)
    return out


@pytest.fixture(scope="module")
def server(trained_champion, config, env, tmp_path_factory):
    """`sendtime serve --port P --config C` on 127.0.0.1; yields its base URL once /readyz says 200."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(SENDTIME), "serve", "--port", str(port), "--config", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"sendtime serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"sendtime serve not ready after 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_server(process)
