"""`sendtime refresh` on a simulated world split at a cut-off: train on the weeks before it, then refresh
the same version with the whole export (two more weeks, and an unsubscribe in them).

The model is its own registered name in the session's store, so the other modules' champion is untouched.
The served refresh is checked over real HTTP: `sendtime serve` is started on the stale snapshot, its poll
notices a refresh one week on, and `POST /reload` swaps in a second at once, the version unchanged.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from sendtime import schema as S
from sendtime.experiments.bench_load import stop_server
from sendtime.experiments.bench_refresh import capture_over_days, cut

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")
MODEL = "sendtime-refresh-test"
WEEK = pd.Timedelta(days=7)


@pytest.fixture(scope="module")
def settings(test_settings):
    from sendtime.configs.settings import Settings

    raw = test_settings.model_dump(mode="json")
    raw["training"]["registered_model"] = MODEL
    raw["serving"]["reload_poll_seconds"] = 2
    return Settings.model_validate(raw)


@pytest.fixture(scope="module")
def exports(small_world, tmp_path_factory) -> dict:
    """Three exports of one world: two weeks short (trained on), one week short, and whole, the whole
    one with an unsubscribe a day before its end from a person who engaged by e-mail before the cut."""
    folder = tmp_path_factory.mktemp("refresh-exports")
    events = pd.read_parquet(small_world / "events.parquet")
    at = pd.to_datetime(events[S.TIMESTAMP], utc=True)
    end = at.max() + pd.Timedelta(seconds=1)
    stale_end = (end - 2 * WEEK).floor("D")
    clicks = events[(events[S.EVENT_TYPE] == S.CLICK) & (events[S.CHANNEL].str.lower() == S.EMAIL)]
    clicks = clicks[pd.to_datetime(clicks[S.TIMESTAMP], utc=True) < stale_end]
    ended = events.loc[events[S.EVENT_TYPE].isin([S.UNSUBSCRIBE, S.BOUNCE]), S.ADDRESS]
    clicks = clicks[~clicks[S.ADDRESS].isin(ended)]
    unsubscribed = clicks[S.ADDRESS].iloc[0]
    gone = events[events[S.ADDRESS] == unsubscribed].iloc[[0]].copy()
    gone[S.EVENT_TYPE] = S.UNSUBSCRIBE
    gone[S.TIMESTAMP] = end - pd.Timedelta(days=1)
    gone[S.MESSAGE_ID] = None
    return {
        "stale": cut(small_world, folder / "stale", stale_end),
        "week": cut(small_world, folder / "week", stale_end + WEEK),
        "whole": cut(small_world, folder / "whole", end + pd.Timedelta(days=1), extra=gone),
        "unsubscribed": unsubscribed.strip().lower(),
    }


@pytest.fixture(scope="module")
def stale_version(session_home, settings, exports) -> str:
    from sendtime.workflows.train import train

    result = train(exports["stale"], settings, progress=False, echo=lambda *_: None)
    assert result.promoted
    return result.version


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def config(settings, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("refresh-config") / "settings.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    return path


@pytest.fixture(scope="module")
def env(settings, session_home) -> dict[str, str]:
    out = {**os.environ, "SENDTIME_HOME": str(session_home)}
    out.pop("MLFLOW_TRACKING_URI", None)
    out.pop(settings.serving.api_key_env, None)
    return out


@pytest.fixture(scope="module")
def server(stale_version, config, env, tmp_path_factory):
    """`sendtime serve` on the stale snapshot, polling the registry every 2 s."""
    folder = tmp_path_factory.mktemp("refresh-serve")
    port = _free_port()
    log = folder / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(SENDTIME), "serve", "--port", str(port), "--config", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"sendtime serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"sendtime serve not ready after 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client
    finally:
        stop_server(process)


def _window(as_of: str) -> dict:
    start = pd.Timestamp(as_of).ceil("D") + pd.Timedelta(hours=12)
    return {"start": start.isoformat(), "end": (start + pd.Timedelta(days=1)).isoformat()}


# ------------------------------------------------------------------------------------------ tests
def test_refresh_keeps_the_version_and_is_served_without_a_restart(
    server, stale_version, settings, exports, config, env
):
    from sendtime.serving.predictor import Predictor
    from sendtime.training import registry
    from sendtime.workflows.capture import GroundTruth
    from sendtime.workflows.refresh import REFRESH_OF_TAG, refresh

    before = server.get("/model").json()
    assert before["version"] == stale_version
    ask = {"subscribers": [{"email": exports["unsubscribed"]}], "window": _window(before["profiles_as_of"])}
    answer = server.post("/predict", json=ask).json()
    assert answer["decisions"][0]["channel"] == S.EMAIL  # not yet unsubscribed as far as the model knows
    stale = Predictor.from_registry(settings)

    # a week on, by the command: the service's poll notices the new snapshot of the same version by itself
    command = [str(SENDTIME), "refresh", "--data", str(exports["week"]), "--config", str(config)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"refreshed model version {stale_version} (lightgbm)" in done.stdout, done.stdout
    week_as_of = registry.client().get_model_version(MODEL, stale_version).tags[registry.SNAPSHOT_AS_OF_TAG]
    assert pd.Timestamp(week_as_of) > stale.profiles.as_of
    deadline = time.time() + 60
    while server.get("/model").json()["profiles_as_of"] != week_as_of:
        assert time.time() < deadline, "the poll did not pick up the refreshed snapshot"
        time.sleep(0.5)

    # two weeks on, with the unsubscribe: POST /reload swaps it in at once, the version unchanged
    whole = refresh(exports["whole"], settings, progress=False, echo=lambda *_: None)
    reload = server.post("/reload")
    assert reload.status_code == 200, reload.text
    body = reload.json()
    assert body["changed"] and body["model_version"] == body["previous_version"] == stale_version
    assert body["profiles_as_of"] == whole.profiles_as_of != body["previous_profiles_as_of"]
    meta = server.get("/model").json()
    assert meta["version"] == stale_version and meta["profiles_as_of"] == whole.profiles_as_of
    answer = server.post("/predict", json={**ask, "window": _window(whole.profiles_as_of)}).json()
    assert answer["model_version"] == stale_version
    assert answer["model"]["data_span"][1] > before["data_span"][1]  # every answer shows the newer evidence
    decision = answer["decisions"][0]
    assert decision["channel"] is None and "unsubscribed" in decision["reason"], decision
    assert whole.opted_out[S.EMAIL] >= 1

    # MLflow: a refresh run linked to the version, which points at the newest snapshot
    mv = registry.client().get_model_version(MODEL, stale_version)
    assert mv.tags[registry.SNAPSHOT_RUN_TAG] == whole.run_id != mv.run_id
    assert mv.tags[registry.SNAPSHOT_URI_TAG] == whole.snapshot_uri
    run = registry.client().get_run(whole.run_id)
    assert run.data.tags[REFRESH_OF_TAG] == f"{MODEL}/{stale_version}"
    assert run.data.params["model_run_id"] == mv.run_id

    # predict and schedule load the newest snapshot; the refreshed one captures more of the oracle's gain
    fresh = Predictor.from_registry(settings)
    assert (
        fresh.model_version == stale.model_version
        and fresh.profiles.as_of.isoformat() == whole.profiles_as_of
    )
    assert len(fresh.profiles) > len(stale.profiles)  # people who joined in the two weeks
    gt = GroundTruth.load(exports["whole"])
    captured = capture_over_days(stale, fresh, gt, fresh.profiles.as_of.ceil("D"))
    print(f"capture over 7 daily campaigns: stale {captured['stale']:.3f}, refreshed {captured['fresh']:.3f}")
    assert captured["fresh"] > captured["stale"], captured
    hours = pd.date_range(fresh.profiles.as_of.ceil("D") + pd.Timedelta(hours=12), periods=24, freq="h")
    people = gt.people
    best = [
        p.score(p.resolve(people["email"].tolist(), people["phone"].tolist()), hours).reshape(len(people), -1)
        for p in (stale, fresh)
    ]
    changed = np.mean(best[0].argmax(axis=1) != best[1].argmax(axis=1))
    assert 0.0 < changed < 1.0  # the decisions move where the evidence changed, not everywhere


def test_a_refresh_never_moves_profiles_back_in_time(stale_version, settings, small_world, tmp_path):
    from sendtime.serving.predictor import Predictor
    from sendtime.workflows.refresh import refresh

    serving = Predictor.from_registry(settings).profiles.as_of
    older = cut(small_world, tmp_path / "older", serving - WEEK)
    with pytest.raises(ValueError, match="never moves profiles back"):
        refresh(older, settings, progress=False, echo=lambda *_: None)
    assert Predictor.from_registry(settings).profiles.as_of == serving
