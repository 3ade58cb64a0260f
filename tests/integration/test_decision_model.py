"""The registered model as MLflow tools use it, on a real store of its own: `mlflow.pyfunc.load_model`
of the champion answers with the HTTP API's decisions, `mlflow models serve` answers the same over HTTP,
the native LightGBM flavour is still there, and a SENDTIME_HOME copied elsewhere (the original gone)
still predicts and schedules.

The store is this module's own (not the session's): other modules refresh the session's champion,
which moves `sendtime serve` to a newer snapshot while the MLflow model keeps the one it was registered
with, and the copied-store test moves the original away.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import sendtime
from sendtime.experiments.bench_load import stop_server

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
START, END = "2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z"
LATER = ("2026-11-12T00:00:00Z", "2026-11-13T00:00:00Z")


@pytest.fixture(scope="module")
def store(session_home, small_world, tmp_path_factory):
    """A champion trained into a SENDTIME_HOME of this module's own; the session's home comes back after."""
    from sendtime.configs.settings import load_settings
    from sendtime.training import registry
    from sendtime.workflows.train import train

    settings = load_settings(overrides={"training": {"snapshots": 3, "num_boost_round": 60}})
    own = tmp_path_factory.mktemp("decision-home") / "home"
    before = os.environ["SENDTIME_HOME"]
    os.environ["SENDTIME_HOME"] = str(own)
    try:
        result = train(small_world, settings, progress=False, echo=lambda *_: None)
        assert result.promoted
        yield own, settings, result
    finally:
        os.environ["SENDTIME_HOME"] = before
        registry.configure_mlflow(settings.training.experiment)  # MLflow's URIs back on the session's store


@pytest.fixture(scope="module")
def rows(small_world) -> pd.DataFrame:
    """Known people (some without their e-mail, some with a zone), new contacts, two windows, channels."""
    known = pd.read_parquet(small_world / "ground_truth" / "people.parquet").sample(30, random_state=4)
    frame = known[["email", "phone"]].reset_index(drop=True).astype(object)
    frame.loc[frame.index[::6].intersection(frame.index[frame["phone"].notna()]), "email"] = None
    frame["timezone"] = None
    frame.loc[::5, "timezone"] = "America/Chicago"
    new = pd.DataFrame({"email": ["new.person@example.com", None], "phone": [None, "+13125550177"]})
    frame = pd.concat([frame, new], ignore_index=True).astype(object)
    frame["window_start"], frame["window_end"], frame["channels"] = START, END, None
    frame.loc[1::4, ["window_start", "window_end"]] = LATER
    frame.loc[2::7, "channels"] = "email"
    return frame.where(frame.notna(), None)


def _api_answers(settings, rows: pd.DataFrame, include_scores: bool = False) -> pd.DataFrame:
    """`sendtime.load().predict` (the HTTP API's handler) per window and channels, back in row order."""
    model = sendtime.load(config=settings)
    parts = []
    for (start, end, channels), group in rows.groupby(
        ["window_start", "window_end", "channels"], dropna=False
    ):
        people = group[["email", "phone", "timezone"]]
        channels = None if pd.isna(channels) else channels
        got = model.predict(people, (start, end), channels, include_scores=include_scores, seed=0)
        parts.append(got.set_axis(group.index).assign(model_version=got.attrs["model_version"]))
    return pd.concat(parts).sort_index()


def _pyfunc():
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model("models:/sendtime-engagement@champion")


def _as_frame(got: pd.DataFrame) -> pd.DataFrame:
    """The pyfunc's columns hold the API's nulls as None; `Model.predict`'s numbers are floats."""
    return got.astype({"expected_engagement": float, "propensity": float, "explored": bool})


def test_the_pyfunc_gives_the_apis_decisions(store, rows):
    _, settings, result = store
    got = _pyfunc().predict(rows)
    want = _api_answers(settings, rows)
    pd.testing.assert_frame_equal(_as_frame(got), want.reset_index(drop=True))
    assert (got["model_version"] == result.version).all()
    assert got["channel"].isin(["email", "sms"]).mean() > 0.8 and (got["channel"] == "sms").any()
    assert set(got.loc[rows["channels"] == "email", "channel"]) <= {"email", None}

    scored = _pyfunc().predict(rows, params={"include_scores": True, "seed": 0})
    want = _api_answers(settings, rows, include_scores=True).reset_index(drop=True)
    pd.testing.assert_frame_equal(_as_frame(scored), want)
    assert len(scored["scores"][0][scored["channel"][0]]) == 24


def test_the_model_keeps_its_native_lightgbm_flavour_signature_and_example(store, tmp_path):
    import mlflow.lightgbm
    from mlflow.models import Model, get_model_info

    from sendtime.features.model_features import FEATURES
    from sendtime.training import registry

    _, settings, result = store
    uri = f"models:/{settings.training.registered_model}/{result.version}"
    booster = mlflow.lightgbm.load_model(uri)
    assert booster.feature_name() == FEATURES
    X = np.random.default_rng(0).random((20, len(FEATURES)))
    np.testing.assert_array_equal(
        booster.predict(X), registry.load_booster("sendtime-engagement", result.version).predict(X)
    )

    info = get_model_info(uri)
    assert set(info.flavors) == {"lightgbm", "python_function"}
    assert [c.name for c in info.signature.inputs.inputs] == [
        "email", "phone", "timezone", "window_start", "window_end", "channels",
    ]  # fmt: skip
    assert {p.name for p in info.signature.params.params} == {"include_scores", "seed"}
    local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path))
    example = Model.load(local).load_input_example(local)
    assert len(_pyfunc().predict(example)) == len(example)


def test_refusals_name_the_row_and_field(store, rows):
    from mlflow.exceptions import MlflowException

    bad = rows.head(3).copy()
    bad.loc[2, ["email", "phone"]] = [None, "12"]
    with pytest.raises(MlflowException, match=r"row 2, phone: cannot read phone number '12'"):
        _pyfunc().predict(bad)
    with pytest.raises(MlflowException, match=r"row 0.*window"):
        _pyfunc().predict(rows.head(2).assign(window_end="2026-11-10T00:00:00Z"))


def test_mlflow_models_serve_answers_like_the_api(store, rows, free_port):
    """`mlflow models serve --env-manager local`: the environment sendtime is installed in, no network."""
    home, settings, _ = store
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    url = f"http://127.0.0.1:{free_port}"
    command = [str(BIN / "mlflow"), "models", "serve", "-m", "models:/sendtime-engagement@champion"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(free_port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "mlflow models serve not ready after 120 s"
            time.sleep(0.5)
        records = [{k: v for k, v in r.items() if v is not None} for r in rows.to_dict("records")]
        answer = httpx.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=60)
        assert answer.status_code == 200, answer.text
        want = json.loads(_api_answers(settings, rows).to_json(orient="records"))
        assert answer.json()["predictions"] == want

        refused = httpx.post(f"{url}/invocations", json={"dataframe_records": [{"phone": "12"}]}, timeout=60)
        assert refused.status_code == 400 and "row 0, phone" in refused.json()["message"]
    finally:
        stop_server(server)


def test_a_copied_store_still_predicts_schedules_and_refreshes(store, rows, small_world, tmp_path):
    """`cp -r` of the home, the original renamed away and the copy's local snapshot copies removed: the
    artifacts MLflow recorded under the old path are found under the new one, and a refresh's new run
    lands in the copy."""
    home, settings, _ = store
    request = {"subscribers": [{"phone": "+13125550177"}, {"email": "new.person@example.com"}]}
    request["window"] = {"start": START, "end": END}
    copy = tmp_path / "moved" / "home"
    shutil.copytree(home, copy)
    shutil.rmtree(copy / "snapshots", ignore_errors=True)
    (tmp_path / "request.json").write_text(json.dumps(request))
    pd.DataFrame({"email": ["new.person@example.com", ""], "phone": ["", "+13125550177"]}).to_csv(
        tmp_path / "audience.csv", index=False
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["SENDTIME_HOME"] = str(copy)
    gone = home.with_name("home.gone")
    home.rename(gone)
    try:
        predicted = subprocess.run(
            [str(BIN / "sendtime"), "predict", "--request", str(tmp_path / "request.json")],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        planned = subprocess.run(
            [str(BIN / "sendtime"), "schedule", "--audience", str(tmp_path / "audience.csv"),
             "--start", START, "--end", END, "--out", str(tmp_path / "plan.csv")],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        refreshed = subprocess.run(
            [str(BIN / "sendtime"), "refresh", "--data", str(small_world)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        gone.rename(home)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert refreshed.returncode == 0, refreshed.stderr[-3000:]
    run_id = re.search(r"\(run (\w+)\)", refreshed.stdout).group(1)  # the refresh's own run: in the copy
    assert list((copy / "mlruns").glob(f"**/{run_id}/artifacts/profiles/meta.json"))
    answer = json.loads(predicted.stdout)
    model = sendtime.load(config=settings)
    expected = model.predict(request["subscribers"], (START, END), seed=0)
    pd.testing.assert_frame_equal(pd.DataFrame(answer["decisions"]).drop(columns="scores"), expected)
    plan = pd.read_csv(tmp_path / "plan.csv")
    assert len(plan) == 2 and plan["channel"].notna().all()
    assert list((copy / "snapshots").glob("*/profiles/meta.json"))  # downloaded again, from the copy
