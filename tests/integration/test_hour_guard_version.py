"""The hour guard end to end: `sendtime train` records who ranks each channel's hours in the run and on
the registered version, and `sendtime predict` (a fresh process loading the version) follows it.

Two stores trained on the session's small world: the default (`hour_source: auto`, the guard judges on
the test period's held-out engagement) and `hour_source: profile` (the decision forced, so that serving
the profile-placed hours is checked on a real model and snapshot).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")
WEEK = 168


def _run(args: list[str], home: Path, stdin: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SENDTIME_HOME=str(home), MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="true")
    done = subprocess.run(
        [str(SENDTIME), *args], input=stdin, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def stores(small_world, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hour-guard")
    out = {}
    for source in ("auto", "profile"):
        training = {"snapshots": 3, "num_boost_round": 120, "hour_source": source}
        config = root / f"{source}.yaml"
        config.write_text(yaml.safe_dump({"training": training}))
        home = root / source
        stdout = _run(["train", "--data", str(small_world), "--config", str(config)], home)
        out[source] = {"home": home, "config": config, "stdout": stdout}
    return out


def _open(store: dict, monkeypatch):
    """The store's settings, registry client and version 1 (its champion)."""
    monkeypatch.setenv("SENDTIME_HOME", str(store["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from sendtime.configs.settings import load_settings
    from sendtime.training import registry

    settings = load_settings(store["config"])
    registry.configure_mlflow(settings.training.experiment)
    client = registry.client()
    return settings, client, client.get_model_version(settings.training.registered_model, "1")


def test_a_trained_version_carries_the_guards_decision(stores, monkeypatch):
    from sendtime.serving.predictor import Predictor
    from sendtime.training import hour_guard

    settings, client, version = _open(stores["auto"], monkeypatch)
    source = json.loads(version.tags["hour_source"])
    run = client.get_run(version.run_id).data
    assert json.loads(run.tags["hour_source"]) == source
    for channel in ("email", "sms"):
        m = run.metrics
        model, profile = m[f"hour_guard_{channel}_model_share"], m[f"hour_guard_{channel}_profile_share"]
        assert m[f"hour_guard_{channel}_people"] > 0 and m[f"hour_guard_{channel}_se"] >= 0
        assert source[channel] == hour_guard.rule(model, profile, settings.training.hour_guard_tolerance)
        assert run.params[f"hour_source_{channel}"] == source[channel]
        assert m[f"hour_guard_{channel}_profile"] == float(source[channel] == "profile")
    assert "hours placed by: email" in stores["auto"]["stdout"]
    # the champion's monotone hour features rank hours as the profile does: its picks are the profile's
    assert source == {"email": "model", "sms": "model"}
    assert Predictor.from_registry(settings).meta["hour_source"] == source


def test_predict_ranks_hours_by_the_profile_where_the_version_says_so(stores, small_world, monkeypatch):
    from sendtime.serving import api
    from sendtime.serving.predictor import Predictor
    from sendtime.training import hour_guard

    settings, client, version = _open(stores["profile"], monkeypatch)
    assert json.loads(version.tags["hour_source"]) == {"email": "profile", "sms": "profile"}
    served = Predictor.from_registry(settings)
    assert served.meta["hour_source"] == {"email": "profile", "sms": "profile"}
    assert api.model_metadata(served).hour_source == {"email": "profile", "sms": "profile"}  # GET /model
    unguarded = Predictor(served.booster, served.profiles, settings)  # the same model, hours by the model

    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet").head(30)
    emails = people["email"].where(people["email"].notna(), None).tolist()
    phones = people["phone"].where(people["phone"].notna(), None).tolist()
    start = pd.Timestamp("2026-11-09T00:00:00Z")
    hours = pd.date_range(start, periods=WEEK, freq="h")
    audience = served.resolve(emails, phones)
    scores, plain = served.score(audience, hours), unguarded.score(audience, hours)
    g, how = served.gather(audience), served.local_hours(audience, hours)
    checked = 0
    for c in range(2):
        for i in np.flatnonzero(audience.has[:, c]):
            response = g.response[i, c, how[i]].astype(np.float64)
            tie = 1.0 + hour_guard.TIE_BREAK * g.rank[i, c, how[i]]
            level = scores[i, c] / (response * tie)
            # one level a person-channel: the profile's response shape, scaled to the model's level
            assert level == pytest.approx(np.full(WEEK, level[0]), rel=1e-5)
            best = int(np.argmax(g.rank[i, c, how[i]]))
            assert scores[i, c, best] == pytest.approx(plain[i, c, best], rel=1e-2)  # the model's own there
            checked += 1
    assert checked >= 30
    assert not np.allclose(scores, plain)  # the guard changed how hours are scored

    # `sendtime predict`, a fresh process loading the champion, answers with these scores
    request = {
        "subscribers": [{"email": e, "phone": p} for e, p in zip(emails[:5], phones[:5], strict=True)],
        "window": {"start": hours[0].isoformat(), "end": (hours[-1] + pd.Timedelta(hours=1)).isoformat()},
        "include_scores": True,
    }
    answer = json.loads(
        _run(
            ["predict", "--config", str(stores["profile"]["config"])],
            stores["profile"]["home"],
            json.dumps(request),
        )
    )
    for i, decision in enumerate(answer["decisions"]):
        for c, name in enumerate(("email", "sms")):
            if name not in (decision.get("scores") or {}):
                continue
            got = np.array([s["probability"] for s in decision["scores"][name]])
            allowed = got > 0
            assert got[allowed] == pytest.approx(scores[i, c][allowed], abs=2e-6)
