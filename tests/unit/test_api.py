"""The prediction API's requests and answers (sendtime.serving.api and its models and errors), in process.

Validation needs no model: every refused request gets a 4xx whose message names the field. Answers need
the session's trained champion (marked `integration`): defaults, score lengths, the JSON shape, follow-up
timing, and that the predictor's latency memos give exactly the numbers of its plain vectorised path.
"""

from __future__ import annotations

import json
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import load_settings
from sendtime.features import local_time
from sendtime.serving import api, api_errors, api_models

WINDOW = {"start": "2026-11-03T05:00:00Z", "end": "2026-11-04T05:00:00Z"}
TEXAS = "+12145550123"


def _refused(body, settings=None) -> api_errors.RequestError:
    text = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(api_errors.RequestError) as caught:
        api_errors.parse(text, api_models.PredictRequest, settings or load_settings())
    return caught.value


def _one(**fields) -> dict:
    return {"subscribers": [{"email": "ana@example.com"}], **fields}


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (_one(channels=["email", "fax"]), "channels[1]", "unknown channel 'fax' (expected email or sms)"),
        (_one(channels=[]), "channels", "must not be empty"),
        (_one(window={"start": "2026-11-03T05:00:00", "end": WINDOW["end"]}), "window.start", "no UTC offset"),
        (_one(window={"start": WINDOW["start"], "end": "tomorrow"}), "window.end", "cannot read timestamp 'tomorrow'"),
        (_one(window={"start": WINDOW["end"], "end": WINDOW["start"]}), "window", "must be after start"),
        (_one(window={"start": WINDOW["start"], "end": WINDOW["start"]}), "window", "must be after start"),
        (_one(window={"start": WINDOW["start"], "end": "2026-11-18T05:00:01Z"}), "window", "at most 14 days"),
        (_one(window={"start": "2026-11-03T05:10:00Z", "end": "2026-11-03T05:50:00Z"}), "window", "no clock-hour"),
        (_one(window={"start": WINDOW["start"]}), "window.end", "field required"),
        ({"subscribers": [{"email": "a@b.co"}, {}, {"email": "", "phone": " "}, {"phone": None}]}, "subscribers[1]",
         "needs an email or a phone"),
        ({"subscribers": []}, "subscribers", "must not be empty"),
        ({"subscribers": [{"email": "a@b.co", "emial": "x"}]}, "subscribers[0].emial", "unknown field"),
        ({"subscribers": [{"email": ["a@b.co"]}]}, "subscribers[0].email", "expected a string"),
        ({"subscribers": [{"email": "a@b.co", "last_sent": {"sms": "2026-11-01T10:00"}}]},
         "subscribers[0].last_sent.sms", "no UTC offset"),
        (_one(include_scores="maybe"), "include_scores", "boolean"),
        ({"subscriber": [{"email": "a@b.co"}]}, "subscribers", "field required"),
        ([{"email": "a@b.co"}], "body", "must be a JSON object"),
    ],
)  # fmt: skip
def test_invalid_requests_get_422_naming_the_field(body, field, words):
    error = _refused(body)
    assert error.status == api_errors.INVALID
    assert any(d["field"] == field and words in d["message"] for d in error.details), error.details
    assert error.message.startswith(f"{field}: ") or f"; {field}: " in error.message
    assert error.body() == {"error": error.message, "details": error.details}


def test_every_subscriber_without_contact_is_named():
    error = _refused({"subscribers": [{"email": "a@b.co"}, {}, {"email": "", "phone": " "}, {"phone": None}]})
    assert [d["field"] for d in error.details] == ["subscribers[1]", "subscribers[2]", "subscribers[3]"]
    assert "subscribers[3]: needs an email or a phone" in error.message


def test_too_many_subscribers_is_refused_before_reading_them():
    settings = load_settings(overrides={"serving": {"max_subscribers_per_request": 3}})
    error = _refused({"subscribers": [{}] * 4}, settings)  # the empty ones are never looked at
    assert error.details == [
        {
            "field": "subscribers",
            "message": "4 subscribers; at most 3 per request (serving.max_subscribers_per_request)",
        }
    ]


@pytest.mark.parametrize("text", ["", "   ", "{nope", '{"subscribers": [}'])
def test_a_body_that_is_not_json_gets_400(text):
    error = _refused(text)
    assert error.status == api_errors.BAD_JSON
    assert error.message.startswith("body: ")
    assert error.details[0]["field"] == "body"


def test_a_good_request_is_read_with_its_defaults():
    request = api_errors.parse(json.dumps(_one()), api_models.PredictRequest, load_settings())
    assert request.window is None and request.channels is None and request.include_scores is False
    request = api_errors.parse(
        json.dumps(
            {
                "subscribers": [
                    {"email": " Ana@Example.com ", "phone": 12125550123, "last_sent": {"email": None}}
                ],
                "window": {"start": "2026-11-03T00:00:00-05:00", "end": "2026-11-04T05:00:00+00:00"},
                "channels": ["SMS", " email"],
            }
        ),
        api_models.PredictRequest,
        load_settings(),
    )
    assert request.subscribers[0].email == "Ana@Example.com"  # stripped; normalised later, as in training
    assert request.subscribers[0].phone == "12125550123"
    assert request.channels == ["sms", "email"]
    assert list(local_time.window_hours(request.window.start, request.window.end)) == list(
        pd.date_range("2026-11-03T05:00Z", periods=24, freq="h")
    )


def test_the_default_window_is_the_next_24_clock_hours():
    hours = local_time.window_hours(now=pd.Timestamp("2026-11-03T05:20:11Z"))
    assert len(hours) == 24
    assert hours[0] == pd.Timestamp("2026-11-03T06:00Z") and hours[-1] == pd.Timestamp("2026-11-04T05:00Z")
    assert len(local_time.window_hours(now=pd.Timestamp("2026-11-03T05:00Z"))) == 24


def test_followup_requests_are_validated_too():
    settings = load_settings()
    with pytest.raises(api_errors.RequestError) as caught:
        api_errors.parse(
            json.dumps({"subscriber": {}, "email_sent_at": "2026-11-03T05:00:00"}),
            api_models.FollowupRequest,
            settings,
        )
    fields = {d["field"] for d in caught.value.details}
    assert fields == {"subscriber", "email_sent_at"}
    with pytest.raises(api_errors.RequestError) as caught:
        api_errors.parse(json.dumps({"subscriber": {"phone": TEXAS}}), api_models.FollowupRequest, settings)
    assert caught.value.details == [{"field": "email_sent_at", "message": "field required"}]


def test_a_declared_timezone_must_be_an_iana_name():
    settings = load_settings()
    body = {"subscribers": [{"email": "a@b.co", "timezone": "Europe/London"}, {"phone": TEXAS, "timezone": " "},
                            {"email": "c@d.co", "timezone": "Mars/Base"}, {"phone": TEXAS, "timezone": 5}]}  # fmt: skip
    error = _refused(body, settings)
    assert error.status == api_errors.INVALID
    assert [d["field"] for d in error.details] == ["subscribers[2].timezone", "subscribers[3].timezone"]
    assert "unknown timezone 'Mars/Base' (expected an IANA name" in error.details[0]["message"]
    request = api_errors.parse(
        json.dumps({"subscribers": body["subscribers"][:2]}), api_models.PredictRequest, settings
    )
    assert [s.timezone for s in request.subscribers] == ["Europe/London", None]  # blank means absent
    with pytest.raises(api_errors.RequestError) as caught:
        api_errors.parse(
            json.dumps(
                {"subscriber": {"phone": TEXAS, "timezone": "EST5EDT-ish"}, "email_sent_at": WINDOW["start"]}
            ),
            api_models.FollowupRequest,
            settings,
        )
    assert [d["field"] for d in caught.value.details] == ["subscriber.timezone"]


# ------------------------------------------------------------------------- answers (real champion)
@pytest.fixture(scope="module")
def served(trained_champion, test_settings, small_world):
    """(predictor, settings, known contacts): the session's champion loaded as the service loads it."""
    from sendtime.serving.predictor import Predictor

    predictor = Predictor.from_registry(test_settings, version=trained_champion.version)
    table = pd.read_parquet(small_world / "subscribers.parquet")
    channel = table["channel"].str.lower()
    known = {
        "emails": table.loc[channel == "email", "address"].tolist()[:40],
        "phones": table.loc[channel == "sms", "address"].tolist()[:40],
    }
    return predictor, test_settings, known


def _answer(served, body: dict, now=None) -> tuple[int, dict]:
    predictor, settings, _ = served
    if now is None:
        status, answer = api.handle(
            "predict", json.dumps(body), predictor, settings, np.random.default_rng(0)
        )
    else:  # the default window depends on the clock
        answer = api.answer(api_errors.parse(json.dumps(body), api_models.PredictRequest, settings), predictor, settings,
                            np.random.default_rng(0), now=now)  # fmt: skip
        status = api_errors.OK
    return status, api.as_json(answer)


@pytest.mark.integration
def test_the_answer_has_the_contract_shape(served):
    predictor, _, known = served
    subscribers = [{"email": e} for e in known["emails"][:3]] + [
        {"phone": TEXAS},
        {"email": "new.one@example.org"},
    ]
    status, body = _answer(served, {"subscribers": subscribers, "window": WINDOW})
    assert status == 200
    assert set(body) == {"model_version", "model", "decisions"}
    assert body["model_version"] == predictor.model_version == body["model"]["version"]
    assert set(body["model"]) == {"version", "kind", "trained_at", "data_span"}
    assert len(body["decisions"]) == len(subscribers)
    keys = {"subscriber_id", "channel", "send_at", "window_start", "window_end", "expected_engagement", "reason",
            "explored", "propensity", "scores"}  # fmt: skip
    start, end = pd.Timestamp(WINDOW["start"]), pd.Timestamp(WINDOW["end"])
    for d in body["decisions"]:
        assert set(d) == keys
        assert d["scores"] is None  # only with include_scores
        assert d["channel"] in ("email", "sms")
        sent = pd.Timestamp(d["send_at"])
        assert d["send_at"].endswith("Z") and sent.minute == 0 and start <= sent < end
        assert pd.Timestamp(d["window_start"]) <= sent < pd.Timestamp(d["window_end"])
        assert 0 < d["expected_engagement"] < 1 and d["propensity"] == 1.0 and d["explored"] is False
        assert isinstance(d["subscriber_id"], str) and d["reason"]
    assert body["decisions"][3]["channel"] == "sms"  # phone only
    assert body["decisions"][4]["reason"].startswith("new subscriber")
    json.dumps(body)  # plain JSON types throughout


@pytest.mark.integration
def test_decisions_come_in_request_order_and_repeat(served):
    _, _, known = served
    subscribers = [{"email": e} for e in known["emails"][:12]]
    _, forward = _answer(served, {"subscribers": subscribers, "window": WINDOW})
    _, backward = _answer(served, {"subscribers": subscribers[::-1], "window": WINDOW})
    assert forward["decisions"] == backward["decisions"][::-1]
    _, alone = _answer(served, {"subscribers": subscribers[5:6], "window": WINDOW})
    assert alone["decisions"][0] == forward["decisions"][5]


@pytest.mark.integration
def test_channels_default_to_the_contacts_given(served):
    _, _, known = served
    body = {"subscribers": [{"email": known["emails"][0]}, {"phone": known["phones"][0]}], "window": WINDOW,
            "include_scores": True}  # fmt: skip
    _, answer = _answer(served, body)
    email_only, phone_only = answer["decisions"]
    assert email_only["channel"] == "email" and set(email_only["scores"]) == {"email"}
    assert phone_only["channel"] == "sms" and set(phone_only["scores"]) == {"sms"}

    _, answer = _answer(served, {**body, "channels": ["sms"]})
    unsent = answer["decisions"][0]
    assert unsent["channel"] is None and unsent["send_at"] is None and unsent["expected_engagement"] is None
    assert unsent["reason"] == "no contact on the requested channels" and unsent["scores"] == {}


@pytest.mark.integration
@pytest.mark.parametrize("days", [1, 7])
def test_scores_hold_one_entry_per_clock_hour(served, days):
    _, _, known = served
    start = pd.Timestamp("2026-11-02T05:00Z")
    window = {"start": start.isoformat(), "end": (start + pd.Timedelta(days=days)).isoformat()}
    body = {
        "subscribers": [{"email": known["emails"][1], "phone": TEXAS}],
        "window": window,
        "include_scores": True,
    }
    _, answer = _answer(served, body)
    decision = answer["decisions"][0]
    assert set(decision["scores"]) == {"email", "sms"}
    for channel, hours in decision["scores"].items():
        assert len(hours) == 24 * days, channel
        assert [h["start"] for h in hours] == list(
            pd.date_range(start, periods=24 * days, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        assert all(0 <= h["probability"] < 1 for h in hours)
    # quiet hours hold in the person's zone and in the Texas number's own (Central): both must allow a text
    zones = {served[0].resolve([known["emails"][1]], [TEXAS]).timezone[0], "America/Chicago"}
    starts = pd.DatetimeIndex([h["start"] for h in decision["scores"]["sms"]])
    texted = np.array([h["probability"] for h in decision["scores"]["sms"]]) > 0
    quiet = np.zeros(len(starts), dtype=bool)
    for zone in zones:
        local = starts.tz_convert(zone)
        sunday = local.dayofweek == 6
        quiet |= (
            (local.hour < 9) | (local.hour >= 21) | (sunday & (local.hour < 12))
        )  # Texas rules, local time
    assert not texted[quiet].any() and texted[~quiet].all()
    assert all(h["probability"] > 0 for h in decision["scores"]["email"])
    best = decision["scores"][decision["channel"]]
    chosen = next(h for h in best if h["start"] == decision["send_at"])
    assert chosen["probability"] == pytest.approx(decision["expected_engagement"], abs=1e-6)


@pytest.mark.integration
def test_the_default_window_starts_at_the_next_clock_hour(served):
    _, _, known = served
    now = pd.Timestamp("2026-11-03T05:20:00Z")
    _, answer = _answer(served, {"subscribers": [{"email": e} for e in known["emails"][:5]]}, now=now)
    sent = [pd.Timestamp(d["send_at"]) for d in answer["decisions"] if " suppressed: " not in d["reason"]]
    assert sent and all(
        pd.Timestamp("2026-11-03T06:00Z") <= at < pd.Timestamp("2026-11-04T06:00Z") for at in sent
    )


@pytest.mark.integration
def test_fatigue_keeps_a_channel_closed_after_its_last_send(served):
    _, _, known = served
    last = {"email": "2026-11-03T04:00:00Z", "sms": "2026-11-03T15:30:00+00:00"}
    body = {"subscribers": [{"email": known["emails"][2], "phone": TEXAS, "last_sent": last}], "window": WINDOW,
            "include_scores": True}  # fmt: skip
    _, answer = _answer(served, body)
    scores = answer["decisions"][0]["scores"]
    for channel, reopens in (("email", "2026-11-03T16:00:00Z"), ("sms", "2026-11-04T15:30:00Z")):
        for h in scores[channel]:
            if h["start"] < reopens:
                assert h["probability"] == 0, (channel, h)


@pytest.mark.integration
def test_unreadable_contacts_get_422_naming_index_and_field(served):
    body = {"subscribers": [{"email": "ok@example.com"}, {"email": "ok@example.com", "phone": "12"},
                            {"email": "not-an-address"}], "window": WINDOW}  # fmt: skip
    status, answer = _answer(served, body)
    assert status == 422
    assert [d["field"] for d in answer["details"]] == ["subscribers[1].phone", "subscribers[2].email"]
    assert answer["error"].startswith("subscribers[1].phone: cannot read phone number '12'")


@pytest.mark.integration
def test_followup_comes_4_to_8_hours_after_the_email_inside_quiet_hours(served):
    predictor, settings, known = served
    sent = "2026-11-03T13:00:00Z"  # 08:00 in New York: follow-up candidates 12:00 to 16:00 local
    checked = 0
    for email, phone in zip(known["emails"][:15], known["phones"][:15], strict=True):
        body = {"subscriber": {"email": email, "phone": phone}, "email_sent_at": sent, "engaged": False}
        status, answer = api.handle(
            "followup", json.dumps(body), predictor, settings, np.random.default_rng(0)
        )
        answer = api.as_json(answer)
        assert status == 200 and answer["model_version"] == predictor.model_version
        assert 0 <= answer["email_expected"] < 1
        if not answer["send"]:
            assert answer["send_at"] is None and answer["reason"]
            continue
        checked += 1
        at = pd.Timestamp(answer["send_at"])
        assert pd.Timestamp(sent) + pd.Timedelta(hours=4) <= at <= pd.Timestamp(sent) + pd.Timedelta(hours=8)
        zone = predictor.resolve([email], [phone]).timezone[0]
        assert 8 <= at.tz_convert(zone).hour < 21
        assert answer["gain"] >= settings.policy.followup_min_gain
    assert checked > 0

    engaged = {"subscriber": {"email": known["emails"][0], "phone": known["phones"][0]}, "email_sent_at": sent,
               "engaged": True}  # fmt: skip
    _, answer = api.handle("followup", json.dumps(engaged), predictor, settings, np.random.default_rng(0))
    assert answer.send is False and answer.reason == "already engaged"
    no_phone = {"subscriber": {"email": known["emails"][0]}, "email_sent_at": sent}
    _, answer = api.handle("followup", json.dumps(no_phone), predictor, settings, np.random.default_rng(0))
    assert answer.send is False and answer.reason == "no sms contact"


@pytest.mark.integration
def test_predict_once_answers_as_handle_does(served):
    predictor, settings, known = served
    from sendtime.training import registry

    body = json.dumps(
        {"subscribers": [{"email": known["emails"][3], "phone": known["phones"][3]}], "window": WINDOW}
    )
    status, answer = api.predict_once(body, settings)
    champion = str(registry.champion_version(settings.training.registered_model))
    assert status == 200 and answer["model_version"] == champion
    if champion == predictor.model_version:
        _, direct = api.handle("predict", body, predictor, settings, np.random.default_rng(0))
        assert answer == api.as_json(direct)
    assert api.predict_once('{"subscribers": [{}]}', settings)[0] == 422


def test_predict_once_without_a_champion_is_503(tmp_path, monkeypatch):
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    monkeypatch.setenv("SENDTIME_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        status, body = api.predict_once(json.dumps(_one(window=WINDOW)), load_settings())
    finally:  # MLflow's URIs are process-wide: give the session's store back
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    assert status == 503
    assert "sendtime train" in body["error"] and body["details"] == []


# --------------------------------------------------------------- the predictor's fast paths are exact
@pytest.mark.integration
def test_latency_memos_give_exactly_the_vectorised_numbers(served, monkeypatch):
    """Memoised contacts, memoised timezone grids and one-thread predictions change no number."""
    import sendtime.serving.contacts as contacts_module
    import sendtime.serving.predictor as module
    from sendtime.features import local_time
    from sendtime.serving.contacts import Audience
    from sendtime.serving.predictor import Predictor

    predictor, settings, known = served
    rng = np.random.default_rng(5)
    odd = [None, "", " ", "nan", float("nan"), "not-an-address", "New.Person@Example.ORG ", 5]
    odd_phones = [
        None,
        "",
        "12",
        TEXAS,
        "(212) 555-0199",
        12125550123.0,
        "+491702429069",
        "+18005550123",
        "x",
    ]
    emails = [known["emails"][i % 40] if rng.random() < 0.8 else odd[i % len(odd)] for i in range(300)]
    phones = [
        known["phones"][i % 40] if rng.random() < 0.5 else odd_phones[i % len(odd_phones)] for i in range(300)
    ]
    hours = local_time.candidate_hours(pd.Timestamp("2026-11-02T05:30Z"), pd.Timestamp("2026-11-09T05:30Z"))

    fast = Predictor(predictor.booster, predictor.profiles, settings, predictor.model_version)
    fast.resolve(emails[:50], phones[:50])  # half warm, half cold memo
    got = fast.resolve(emails, phones)
    got_scores = fast.score(got, hours)
    monkeypatch.setattr(contacts_module, "SMALL_AUDIENCE", -1)  # every call takes the plain vectorised path
    monkeypatch.setattr(module, "PARALLEL_ROWS", 0)  # and predicts on the configured threads
    plain = Predictor(predictor.booster, predictor.profiles, settings, predictor.model_version)
    want = plain.resolve(emails, phones)
    for name in Audience.__dataclass_fields__:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert pd.Series(a.reshape(-1)).equals(pd.Series(b.reshape(-1))), name
    assert np.array_equal(got_scores, plain.score(want, hours))


def test_threads_scoring_at_once_each_predict_on_their_own_booster(served):
    """LightGBM's predict writes per-call state into its booster, so overlapping threads must not
    share one: each takes a copy, and the copies score exactly what the original does."""
    from concurrent.futures import ThreadPoolExecutor

    from sendtime.features import local_time
    from sendtime.serving.predictor import Predictor

    predictor, settings, known = served
    fresh = Predictor(predictor.booster, predictor.profiles, settings, predictor.model_version)
    audience = fresh.resolve(known["emails"], known["phones"])
    hours = local_time.candidate_hours(pd.Timestamp("2026-11-02T05:30Z"), pd.Timestamp("2026-11-04T05:30Z"))
    alone = fresh.score(audience, hours)
    seen: set[int] = set()
    real_predict = lgb.Booster.predict

    def tracking_predict(self, *args, **kwargs):
        seen.add(id(self))
        time.sleep(0.05)  # hold the booster long enough for the calls to overlap
        return real_predict(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lgb.Booster, "predict", tracking_predict)
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda _: fresh.score(audience, hours), range(4)))
    assert len(seen) > 1 and id(predictor.booster) in seen
    for scores in together:
        assert np.array_equal(scores, alone)


@pytest.mark.integration
def test_an_answer_off_its_declared_model_is_never_sent(served, monkeypatch):
    """Answers are validated against the models /openapi.json declares: a value off the schema (here a
    probability that is not a number) becomes a 500 naming the server log, not a malformed 200."""
    predictor, settings, known = served
    body = json.dumps({"subscribers": [{"email": known["emails"][0]}], "window": WINDOW})
    assert api.handle("predict", body, predictor, settings, np.random.default_rng(0))[0] == api_errors.OK
    monkeypatch.setattr(api, "_round", lambda values: ["not a number"] * len(values))
    status, answer = api.handle("predict", body, predictor, settings, np.random.default_rng(0))
    assert status == api_errors.SERVER_ERROR and "server log" in answer["error"]
