"""`import sendtime` used as a notebook would, on the session's trained champion: `load().predict` gives
the HTTP API's decisions, `.plan` the rows `sendtime schedule` writes, `train` and `evaluate` return
run objects, and bad arguments raise ValueError naming the argument."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

import sendtime

pytestmark = pytest.mark.integration

START, END = "2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z"


@pytest.fixture(scope="module")
def model(trained_champion, test_settings):
    return sendtime.load(config=test_settings)


@pytest.fixture(scope="module")
def people(small_world) -> pd.DataFrame:
    """Known people, some without their e-mail or with a zone the sending system knows, and new ones."""
    known = pd.read_parquet(small_world / "ground_truth" / "people.parquet").sample(40, random_state=2)
    frame = known[["email", "phone"]].reset_index(drop=True).astype(object)
    frame.loc[frame.index[::7].intersection(frame.index[frame["phone"].notna()]), "email"] = None
    frame["timezone"] = None
    frame.loc[::5, "timezone"] = "America/Chicago"
    new = pd.DataFrame({"email": ["new.person@example.com", None], "phone": [None, "+13125550177"]})
    return pd.concat([frame, new], ignore_index=True).astype(object).where(lambda f: f.notna(), None)


def _api_decisions(settings, request: dict) -> pd.DataFrame:
    """What `POST /predict` answers for the same JSON (the handler the service and `sendtime predict`
    share), with its own freshly loaded champion."""
    from sendtime.serving import api
    from sendtime.serving.predictor import Predictor

    predictor = Predictor.from_registry(settings)
    status, body = api.handle("predict", json.dumps(request), predictor, settings, np.random.default_rng(0))
    assert status == 200, api.as_json(body)
    body = api.as_json(body)
    frame = pd.DataFrame(body["decisions"])
    return frame if request.get("include_scores") else frame.drop(columns="scores")


def test_load_pins_the_champion(model, trained_champion):
    assert model.version == str(trained_champion.version)
    assert model.info["version"] == model.version and model.info["run_id"] == trained_champion.run_id
    assert f"v{model.version}" in repr(model)
    pinned = sendtime.load(version=int(trained_champion.version), config=model.settings)
    assert pinned.version == model.version


def test_predict_gives_the_http_apis_decisions(model, people, test_settings):
    rows = [{k: v for k, v in row.items() if v is not None} for row in people.to_dict("records")]
    got = model.predict(rows, (START, END), seed=0)
    want = _api_decisions(test_settings, {"subscribers": rows, "window": {"start": START, "end": END}})
    pd.testing.assert_frame_equal(got, want)
    assert got.attrs["model_version"] == model.version
    assert len(got) == len(people) and got["channel"].isin(["email", "sms"]).any()


def test_predict_takes_a_dataframe_datetimes_and_channels(model, people, test_settings):
    frame = people.assign(customer_ref=range(len(people)))  # other columns are not the API's business
    start = datetime(2026, 11, 10, 12, tzinfo=UTC)
    window = {"start": start, "end": pd.Timestamp(END)}
    got = model.predict(frame, window, channels="email", include_scores=True, seed=0)
    rows = [{k: v for k, v in row.items() if v is not None} for row in people.to_dict("records")]
    request = {"subscribers": rows, "window": {"start": START, "end": END}, "channels": ["email"]}
    want = _api_decisions(test_settings, {**request, "include_scores": True})
    pd.testing.assert_frame_equal(got, want)
    assert set(got["channel"].dropna()) <= {"email"}
    assert sum("email" in s for s in got["scores"]) > len(got) / 2 and all(
        set(s) <= {"email"} for s in got["scores"]
    )
    assert all(len(hours) == 24 for s in got["scores"] for hours in s.values())  # one per hour of the window


def test_plan_gives_the_rows_sendtime_schedule_writes(model, people, session_home, tmp_path):
    from sendtime.cli import main

    audience = people.fillna("").astype(str).assign(segment=["vip", "regular"] * (len(people) // 2))
    audience.to_csv(tmp_path / "audience.csv", index=False)
    options = ["--max-sms", "6", "--max-per-hour", "email=5", "--holdout", "0.1", "--explore", "0.1"]
    options += ["--seed", "4", "--campaign-time", "2026-11-10T15:30:00Z"]
    out = tmp_path / "plan.csv"
    code = main(["schedule", "--audience", str(tmp_path / "audience.csv"), "--start", START, "--end", END,
                 "--out", str(out), *options])  # fmt: skip
    assert code == 0

    plan = model.plan(
        audience,
        START,
        END,
        max_sms=6,
        max_per_hour={"email": 5},
        holdout=0.1,
        explore=0.1,
        seed=4,
        campaign_time="2026-11-10T15:30:00Z",
    )
    assert plan.to_csv(index=False) == out.read_text()  # the same file, byte for byte
    assert (plan["channel"] == "sms").sum() <= 6 and plan["holdout"].any()
    assert plan.attrs["model_version"] == model.version

    from_file = model.plan(tmp_path / "audience.csv", START, END)  # a path works too
    assert len(from_file) == len(audience)
    shuffled = audience.set_axis([f"row{i}" for i in range(len(audience))])  # the caller's index is kept
    assert model.plan(shuffled, START, END).index.tolist() == shuffled.index.tolist()


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda m: m.predict([{"email": None}], (START, END)), "subscribers[0]: needs an email or a phone"),
        (lambda m: m.predict("ana@example.com", (START, END)), "subscribers: expected a list of dicts"),
        (lambda m: m.predict(pd.DataFrame({"name": ["ana"]}), (START, END)), "subscribers: needs a column"),
        (lambda m: m.predict([{"phone": "12"}], (START, END)), "subscribers[0].phone: cannot read phone"),
        (lambda m: m.predict([{"email": "a@b.co"}], ("2026-11-10T12:00:00", END)), "window.start:"),
        (lambda m: m.predict([{"email": "a@b.co"}], (END, START)), "window: end"),
        (lambda m: m.predict([{"email": "a@b.co"}], (START,)), "window: expected (start, end)"),
        (lambda m: m.predict([{"email": "a@b.co"}], (START, END), ["fax"]), "channels[0]: unknown channel"),
        (lambda m: m.plan(pd.DataFrame({"email": ["a@b.co"]}), "2026-11-10T12:00", END), "start '"),
        (lambda m: m.plan(pd.DataFrame({"email": ["a@b.co"]}), END, START), "end ("),
        (lambda m: m.plan(pd.DataFrame({"email": ["a@b.co"]}), START, END, -1), "max_sms:"),
        (
            lambda m: m.plan(pd.DataFrame({"email": ["a@b.co"]}), START, END, None, {"fax": 1}),
            "max_per_hour:",
        ),
        (lambda m: m.plan(pd.DataFrame({"email": ["a@b.co"]}), START, END, holdout=2), "holdout must be"),
        (lambda m: m.plan(pd.DataFrame({"name": ["ana"]}), START, END), "audience: needs a column"),
        (lambda m: m.plan(pd.DataFrame({"email": ["a@b.co"]}), 20261110, END), "start: expected ISO-8601"),
    ],
)
def test_bad_arguments_raise_valueerror_naming_them(model, call, named):
    with pytest.raises(ValueError) as error:
        call(model)
    assert str(error.value).startswith(named), str(error.value)
    assert "--" not in str(error.value)  # Python arguments, not the CLI's options


def test_load_and_config_errors_are_clear(trained_champion, test_settings):
    with pytest.raises(LookupError, match="has no version '999'"):
        sendtime.load(version="999", config=test_settings)
    with pytest.raises(ValueError, match="config: expected a YAML path"):
        sendtime.load(config=42)


def test_train_and_evaluate_return_run_objects(small_world, tmp_path, monkeypatch):
    """In a store of its own (the session's champion stays as it is), settings given as a dict."""
    from mlflow import MlflowClient

    monkeypatch.setenv("SENDTIME_HOME", str(tmp_path / "home"))
    config = {"training": {"snapshots": 3, "num_boost_round": 120}}
    run = sendtime.train(small_world, config)
    assert run.version == "1" and run.promoted and run.gate  # the gate's line says why
    assert run.metrics["log_loss"] > 0 and "auc" in run.metrics
    from sendtime import home

    assert MlflowClient(home.tracking_uri()).get_run(run.run_id).info.status == "FINISHED"

    report = sendtime.evaluate(small_world, config=config)
    assert report.version == run.version and report.model_run_id == run.run_id and report.same_data
    assert report.metrics["log_loss"] == pytest.approx(run.metrics["log_loss"], rel=1e-6)
    assert sendtime.load(config=config).version == run.version
