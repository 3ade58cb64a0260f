"""What ships: sendtime's wheel and the Bento built from it, used outside the checkout.

The code lives in top-level folders that pyproject.toml maps onto the `sendtime` package, so only a
build puts the package back together. These tests build the wheel, import it from a folder that holds
nothing else, then build the Bento from a clean build context (bentofile.yaml, the wheel, the lock, the
YAML configs) and serve that Bento with `bentoml serve` over real HTTP, its code taken from the wheel
packed inside it rather than from this checkout.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from sendtime.experiments.bench_load import stop_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEY = "packaging-test-key"


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _install(wheel: Path, target: Path) -> None:
    """The wheel alone (no dependencies: the test's environment has them) into a folder of its own."""
    _run([str(BIN / "uv"), "pip", "install", "--python", sys.executable, "--no-deps", "--quiet",
          "--target", str(target), str(wheel)])  # fmt: skip


def _outside_env(site: Path) -> dict[str, str]:
    """The installed wheel first on the path, so it wins over the checkout's editable install."""
    return {**os.environ, "PYTHONPATH": str(site)}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([str(BIN / "uv"), "build", "--wheel", "--out-dir", str(out), "--quiet", str(ROOT)])
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' scratch copy in the checkout
    (found,) = out.glob("sendtime-*-py3-none-any.whl")
    return found


def test_the_wheel_holds_every_stage_and_works_outside_the_checkout(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("cli.py", "schema.py", "features/profiles.py", "training/model.py", "serving/service.py",
                   "experiments/simulate.py", "experiments/zoo/__init__.py", "configs/settings.py",
                   "configs/us_state_quiet_hours.csv", "configs/default.yaml"):  # fmt: skip
        assert f"sendtime/{module}" in names, f"{module} missing from {wheel.name}"
    site = tmp_path / "site"
    _install(wheel, site)
    probe = (
        "import sendtime, sendtime.features.profiles as p, sendtime.serving.service, sendtime.training.model;"
        "from sendtime.serving import quiet_hours as q; from sendtime.configs.settings import load_settings;"
        "q.load_rules(load_settings().policy); print(p.__file__)"
    )
    done = _run([sys.executable, "-c", probe], cwd=tmp_path, env=_outside_env(site))
    assert done.stdout.strip().startswith(str(site)), done.stdout
    world = tmp_path / "world"
    _run([sys.executable, "-m", "sendtime.cli", "simulate", "--out", str(world), "--subscribers", "50",
          "--days", "14", "--seed", "1"], cwd=tmp_path, env=_outside_env(site))  # fmt: skip
    assert (world / "events.parquet").is_file() or (world / "events.csv").is_file()


@pytest.fixture(scope="module")
def bento(wheel, tmp_path_factory) -> tuple[str, Path]:
    """`bentoml build` in a build context holding only what bentofile.yaml names."""
    ctx = tmp_path_factory.mktemp("bento-context")
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    (wheel_path,) = bentofile["python"]["wheels"]
    (ctx / wheel_path).parent.mkdir(parents=True)
    shutil.copy(wheel, ctx / wheel_path)
    shutil.copy(ROOT / "bentofile.yaml", ctx)
    shutil.copy(ROOT / bentofile["python"]["requirements_txt"], ctx)
    (ctx / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "default.yaml", ctx / "configs")
    bentoml_home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}
    done = _run([str(BIN / "bentoml"), "build", "--output", "tag", str(ctx)], cwd=ctx, env=env)
    tag = done.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("sendtime:"), done.stdout
    return tag, bentoml_home


def test_the_built_bento_serves_decisions_over_http(bento, trained_champion, session_home, test_settings,
                                                    small_world, tmp_path):  # fmt: skip
    tag, bentoml_home = bento
    name, version = tag.split(":")
    packed = bentoml_home / "bentos" / name / version
    (packed_wheel,) = (packed / "env" / "python" / "wheels").glob("sendtime-*.whl")
    site = tmp_path / "site"
    _install(packed_wheel, site)  # serve the Bento's own copy of sendtime, not the checkout's
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(test_settings.model_dump(mode="json")))
    env = {**_outside_env(site), "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true",
           "SENDTIME_HOME": str(session_home), "SENDTIME_CONFIG": str(config), "SENDTIME_API_KEY": KEY}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    port = _free_port()
    with (tmp_path / "bento.log").open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "bentoml"), "serve", tag, "--port", str(port), "--host", "127.0.0.1"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"bentoml serve exited with {process.returncode}:\n{_tail(tmp_path / 'bento.log')}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"the built Bento was not ready after 120 s:\n{_tail(tmp_path / 'bento.log')}")
            time.sleep(0.5)
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as client:
            assert client.get("/model").json()["version"] == trained_champion.version
            body = {"subscribers": [{"email": "someone.new@example.com"}],
                    "window": {"start": "2026-11-03T05:00:00Z", "end": "2026-11-04T05:00:00Z"}}  # fmt: skip
            answer = client.post("/predict", json=body)
            assert answer.status_code == 200, answer.text
            decision = answer.json()["decisions"][0]
            assert decision["channel"] == "email" and decision["send_at"], decision
            bad = client.post("/predict", json={"subscribers": []})
            assert 400 <= bad.status_code < 500, bad.text
    finally:
        stop_server(process)
    assert _served_from(site, tmp_path, env)


def _served_from(site: Path, cwd: Path, env: dict[str, str]) -> bool:
    """The environment the Bento ran in resolves sendtime to the Bento's wheel (checked afterwards)."""
    done = _run(
        [sys.executable, "-c", "import sendtime.serving.service as s; print(s.__file__)"], cwd=cwd, env=env
    )
    return done.stdout.strip().startswith(str(site))


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
