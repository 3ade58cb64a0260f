"""The real prediction service over real HTTP: `sendtime serve` as a subprocess on the session's champion.

One server for the module (tests/integration/conftest.py: started once, stopped in the fixture's
finalizer), with an API key set, so every request but the probes carries `X-API-Key`. Alias polling runs every 2 s. The last test trains a
second version, swaps it in under a stream of requests, and gives the `champion` alias back afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")
TEXAS = "+12145550123"
WINDOW = {"start": "2026-11-03T05:00:00Z", "end": "2026-11-06T05:00:00Z"}


@pytest.fixture(scope="module")
def client(server, api_key):
    with httpx.Client(base_url=server, headers={"X-API-Key": api_key}, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def people(small_world) -> list[dict[str, str]]:
    """Known people with an e-mail and a phone (from the world's identity links)."""
    links = pd.read_parquet(small_world / "identity_links.parquet")
    pairs = links[links["address_a"].str.contains("@") & links["address_b"].str.startswith("+1")]
    return [{"email": a, "phone": b} for a, b in zip(pairs["address_a"], pairs["address_b"], strict=True)][
        :30
    ]


@pytest.fixture(scope="module")
def predictor(trained_champion, test_settings):
    """The champion in process, to look up each person's timezone and state as the service sees them."""
    from sendtime.serving.predictor import Predictor

    return Predictor.from_registry(test_settings, version=trained_champion.version)


def _lawful(predictor, settings, person: dict, at: pd.Timestamp) -> bool:
    from sendtime.serving import quiet_hours

    audience = predictor.resolve([person.get("email")], [person.get("phone")])
    rules = quiet_hours.load_rules(settings.policy)
    return bool(
        quiet_hours.sms_allowed(pd.DatetimeIndex([at]), audience.timezone, audience.state, rules)[0, 0]
    )


# ------------------------------------------------------------------------------------------ tests
def test_probes_and_model_metadata(server, client, trained_champion):
    assert httpx.get(f"{server}/readyz").status_code == 200  # probes need no key
    assert httpx.get(f"{server}/livez").status_code == 200
    meta = client.get("/model").json()
    assert meta["version"] == trained_champion.version
    assert meta["kind"] == trained_champion.kind
    assert set(meta) >= {"version", "kind", "trained_at", "data_span", "profiles_as_of"}
    assert len(meta["data_span"]) == 2 and meta["profiles_as_of"]


def test_openapi_documents_the_request_bodies_and_the_api_key(server):
    doc = httpx.get(f"{server}/openapi.json").json()  # the document itself needs no key
    schemas = doc["components"]["schemas"]

    def body_schema(path: str) -> dict:
        operation = doc["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.startswith("#/components/schemas/")
        return schemas[ref.rsplit("/", 1)[1]]

    predict = body_schema("/predict")
    assert predict["required"] == ["subscribers"]
    assert set(predict["properties"]) == {"subscribers", "window", "channels", "include_scores"}
    followup = body_schema("/followup")
    assert set(followup["required"]) == {"subscriber", "email_sent_at"}
    assert {"subscriber", "email_sent_at", "engaged"} <= set(followup["properties"])
    refs = json.dumps(doc).split('"$ref": "#/components/schemas/')[1:]
    assert all(r.split('"', 1)[0] in schemas for r in refs)  # every reference resolves

    schemes = doc["components"]["securitySchemes"]
    header = [s for s in schemes.values() if s["type"] == "apiKey"]
    assert header == [{**header[0], "in": "header", "name": "X-API-Key"}]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    for path, method in (("/predict", "post"), ("/followup", "post"), ("/model", "get"), ("/reload", "post")):
        operation = doc["paths"][path][method]
        assert {name for option in operation["security"] for name in option} == set(schemes)
        assert "401" in operation["responses"]


def test_known_subscribers_get_sends_inside_the_window_and_quiet_hours(
    client, people, predictor, test_settings
):
    for channels in (None, ["sms"]):
        body = {"subscribers": people, "window": WINDOW, **({"channels": channels} if channels else {})}
        response = client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model_version"] == predictor.model_version
        assert len(answer["decisions"]) == len(people)
        assert sum(d["channel"] is not None for d in answer["decisions"]) >= len(people) * 0.8
        for person, d in zip(people, answer["decisions"], strict=True):
            if " suppressed: " in d["reason"]:  # the world has unsubscribes and hard bounces
                assert d["channel"] is None and d["send_at"] is None
                continue
            assert d["channel"] in ("email", "sms"), d
            at = pd.Timestamp(d["send_at"])
            assert pd.Timestamp(WINDOW["start"]) <= at < pd.Timestamp(WINDOW["end"])
            assert pd.Timestamp(d["window_start"]) <= at < pd.Timestamp(d["window_end"])
            if d["channel"] == "sms":
                zone = predictor.resolve([person["email"]], [person["phone"]]).timezone[0]
                assert 8 <= at.tz_convert(zone).hour < 21, (person, d)
                assert _lawful(predictor, test_settings, person, at)
        if channels == ["sms"]:
            assert all(
                d["channel"] == "sms" for d in answer["decisions"] if " suppressed: " not in d["reason"]
            )


def test_a_texas_text_on_sunday_waits_until_noon(client):
    body = {
        "subscribers": [{"phone": TEXAS}],
        "channels": ["sms"],
        "window": {"start": "2026-11-29T08:00:00-06:00", "end": "2026-11-30T08:00:00-06:00"},  # Sunday, CST
        "include_scores": True,
    }
    answer = client.post("/predict", json=body).json()
    decision = answer["decisions"][0]
    assert decision["channel"] == "sms"
    local = pd.Timestamp(decision["send_at"]).tz_convert("America/Chicago")
    assert local.day_name() == "Sunday" and 12 <= local.hour < 21
    scores = decision["scores"]["sms"]
    assert len(scores) == 24
    morning = [
        s["probability"] for s in scores if pd.Timestamp(s["start"]).tz_convert("America/Chicago").hour < 12
    ]
    assert morning and not any(morning)  # 08:00-11:59 on a Texas Sunday: no text


def test_followup_comes_4_to_8_hours_after_the_email_inside_quiet_hours(
    client, people, predictor, test_settings
):
    sent = pd.Timestamp("2026-11-03T14:00:00Z")
    sends = 0
    for person in people[:12]:
        body = {"subscriber": person, "email_sent_at": sent.isoformat(), "engaged": False}
        response = client.post("/followup", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model_version"] == predictor.model_version
        if answer["send"]:
            sends += 1
            at = pd.Timestamp(answer["send_at"])
            assert sent + pd.Timedelta(hours=4) <= at <= sent + pd.Timedelta(hours=8)
            assert _lawful(predictor, test_settings, person, at)
    assert sends > 0
    engaged = client.post(
        "/followup", json={"subscriber": people[0], "email_sent_at": sent.isoformat(), "engaged": True}
    )
    assert engaged.json()["send"] is False and engaged.json()["reason"] == "already engaged"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"", 400, "body"),
        ({"subscribers": [{"email": "a@b.co"}], "channels": ["fax"]}, 422, "channels[0]"),
        ({"subscribers": [{"email": "a@b.co"}], "window": {"start": "2026-11-03T05:00:00", "end": WINDOW["end"]}},
         422, "window.start"),
        ({"subscribers": [{"email": "a@b.co"}], "window": {"start": WINDOW["end"], "end": WINDOW["start"]}}, 422,
         "window"),
        ({"subscribers": [{"email": "a@b.co"}], "window": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}},
         422, "window"),
        ({"subscribers": [{"email": "a@b.co"}] * 5001}, 422, "subscribers"),
        ({"subscribers": [{"email": "a@b.co"}, {}, {}, {"phone": ""}]}, 422, "subscribers[3]"),
        ({"subscribers": [{"email": "a@b.co"}, {"phone": "12345"}]}, 422, "subscribers[1].phone"),
        ({"subscribers": [{"email": "@nope"}]}, 422, "subscribers[0].email"),
    ],
)  # fmt: skip
def test_bad_requests_get_4xx_naming_the_field_and_the_server_keeps_serving(client, body, status, field):
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()
    assert field in {d["field"] for d in error["details"]}
    assert f"{field}: " in error["error"]
    good = client.post("/predict", json={"subscribers": [{"email": "a@b.co"}], "window": WINDOW})
    assert good.status_code == 200


_DEEP = 100_000  # levels: far past the JSON parser's recursion limit


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/predict", b'{"subscribers": ' + b"[" * _DEEP + b"]" * _DEEP + b"}", 400, "body"),
        ("/followup", b'{"subscriber": {"email": ' + b"[" * _DEEP + b"]" * _DEEP + b"}}", 400, "body"),
        ("/predict", b'{"subscribers": [{"email": "\\ud800@x.com"}]}', 422, "subscribers[0].email"),
        ("/predict", b'{"subscribers": [{"email": "a@b.co", "timezone": "Europe/\\udfff"}]}', 422,
         "subscribers[0].timezone"),
        ("/predict", b'{"subscribers": [{"email": "a@b.co"}], "channels": ["\\ud800"]}', 422, "channels[0]"),
        ("/predict", b'{"subscribers": [{"email": "a@b.co", "\\ud800": 1}]}', 422, "subscribers[0].\\ud800"),
        ("/followup", b'{"subscriber": {"phone": "\\udc00"}, "email_sent_at": "2026-11-03T05:00:00Z"}', 422,
         "subscriber.phone"),
        ("/followup", {"subscriber": {"email": "a@b.co"}, "email_sent_at": "9999-12-31T23:00:00Z"}, 422,
         "email_sent_at"),
        ("/predict", {"subscribers": [{"email": "a@b.co", "last_sent": {"sms": "9999-01-01T00:00:00Z"}}]}, 422,
         "subscribers[0].last_sent.sms"),
        ("/predict", {"subscribers": [{"email": "a@b.co"}], "window": {"start": "0001-01-01T00:00:00Z",
                                                                       "end": WINDOW["end"]}}, 422, "window.start"),
        ("/predict", b'{"subscribers": [{"phone": ' + b"9" * 5000 + b"}]}", 400, "body"),
    ],
)  # fmt: skip
def test_malformed_requests_that_once_got_500_get_4xx_naming_the_field(client, path, body, status, field):
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()
    assert field in {d["field"] for d in error["details"]}, error
    assert f"{field}: " in error["error"]
    good = client.post("/predict", json={"subscribers": [{"email": "a@b.co"}], "window": WINDOW})
    assert good.status_code == 200


def test_requests_without_the_api_key_get_401(server, client, api_key):
    body = {"subscribers": [{"email": "a@b.co"}], "window": WINDOW}
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(f"{server}/predict", json=body, headers=headers)
        assert response.status_code == 401
        assert "API key" in response.json()["error"]
    assert httpx.get(f"{server}/model").status_code == 401
    assert httpx.post(f"{server}/reload").status_code == 401
    assert (
        httpx.post(f"{server}/predict", json=body, headers={"Authorization": f"Bearer {api_key}"}).status_code
        == 200
    )


def test_sendtime_predict_answers_exactly_as_http(client, people, config, env, tmp_path):
    body = {"subscribers": people[:8] + [{"phone": TEXAS}, {"email": "someone.new@example.org"}], "window": WINDOW,
            "include_scores": True}  # fmt: skip
    request = tmp_path / "request.json"
    request.write_text(json.dumps(body))
    run = subprocess.run(
        [str(SENDTIME), "predict", "--request", str(request), "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    over_http = client.post("/predict", json=body).json()
    assert json.loads(run.stdout) == over_http

    bad = subprocess.run(
        [str(SENDTIME), "predict", "--config", str(config)],
        input=json.dumps({"subscribers": [{"email": "a@b.co"}], "channels": ["fax"]}),
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["error"] == "channels[0]: unknown channel 'fax' (expected email or sms)"


def test_a_new_champion_is_swapped_in_without_failed_requests(
    client, api_key, trained_champion, small_world, test_settings, people
):
    from sendtime.training import registry
    from sendtime.workflows.train import train

    name, old = test_settings.training.registered_model, trained_champion.version
    seen: list[tuple[int | str, str | None]] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=str(client.base_url), headers={"X-API-Key": api_key}, timeout=60) as c:
            k = 0
            while not stop.is_set():
                body = {"subscribers": [people[k % len(people)]], "window": WINDOW}
                k += 1
                try:
                    response = c.post("/predict", json=body)
                    version = response.json().get("model_version") if response.status_code == 200 else None
                    seen.append((response.status_code, version))
                except Exception as exc:  # recorded: the test asserts there are none
                    seen.append((type(exc).__name__, None))
                time.sleep(0.01)

    worker = threading.Thread(target=stream, daemon=True)
    worker.start()
    try:
        result = train(small_world, test_settings, progress=False, echo=lambda *_: None)
        new = result.version
        assert new != old
        registry.promote(name, new)  # forced: the same data may not beat the champion
        reload = client.post("/reload")
        assert reload.status_code == 200, reload.text
        assert reload.json()["model_version"] == new
        assert reload.json()["previous_version"] in (old, new)  # the 2 s poll may have been first
        deadline = time.time() + 30
        while time.time() < deadline and [v for _, v in seen[-5:]] != [new] * 5:
            time.sleep(0.1)
        stop.set()
        worker.join(timeout=60)
        assert client.get("/model").json()["version"] == new
        answer = client.post("/predict", json={"subscribers": people[:2], "window": WINDOW}).json()
        assert answer["model_version"] == new == answer["model"]["version"]
    finally:
        stop.set()
        registry.promote(name, old)  # give the session's champion back to the other modules

    statuses = {status for status, _ in seen}
    assert statuses == {200}, [s for s in seen if s[0] != 200][:5]
    versions = [v for _, v in seen]
    assert set(versions) <= {old, new} and old in versions and versions[-1] == new
    first_new = versions.index(new)
    assert all(v == new for v in versions[first_new:])  # once swapped, never back
    assert len(seen) > 20, np.unique(versions, return_counts=True)


def test_serve_without_a_champion_fails_fast_with_a_clear_message(tmp_path, free_port):
    env = {**os.environ, "SENDTIME_HOME": str(tmp_path / "empty")}
    env.pop("MLFLOW_TRACKING_URI", None)
    run = subprocess.run(
        [str(SENDTIME), "serve", "--port", str(free_port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "no 'sendtime-engagement' model with a 'champion' alias" in run.stderr
    assert "sendtime train" in run.stderr and "Traceback" not in run.stderr
