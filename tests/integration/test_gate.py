"""The promotion gate in a real MLflow store: like with like, and the regressions it must refuse.

Each test gives the session's champion (trained once, in conftest) a registered model of its own, so
what is promoted here never moves the alias the other tests rely on.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.configs.settings import load_settings

SMALL = {"snapshots": 3, "num_boost_round": 120}
pytestmark = pytest.mark.integration


def _champion_under(name: str, trained_champion, test_settings) -> None:
    """The session champion's model, registered under `name` with its tags and the champion alias."""
    from sendtime.training import registry

    registry.configure_mlflow(test_settings.training.experiment)
    client = registry.client()
    mv = client.get_model_version(test_settings.training.registered_model, trained_champion.version)
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    new = client.create_model_version(name, mv.source, run_id=mv.run_id, tags=dict(mv.tags))
    client.set_registered_model_alias(name, registry.CHAMPION, new.version)


def _settings(name: str, **training):
    return load_settings(overrides={"training": {**SMALL, "registered_model": name, **training}})


def _train(world, settings):
    from sendtime.workflows.train import train

    return train(world, settings, progress=False, echo=lambda *_: None)


def _tags(result, name):
    from sendtime.training import registry

    run = registry.client().get_run(result.run_id)
    version = registry.client().get_model_version(name, result.version)
    return run.data.tags, dict(version.tags), run.data.metrics


def _copy(world, dst, keep_ground_truth: bool = True):
    ignore = None if keep_ground_truth else shutil.ignore_patterns(S.GROUND_TRUTH_DIR)
    shutil.copytree(world, dst, ignore=ignore)
    return dst


def test_the_champion_is_scored_with_its_own_profile_settings(trained_champion, small_world, test_settings):
    """A challenger made with other profile settings: the champion keeps the score it has alone."""
    from sendtime.training import registry

    name = "gate-own-recipe"
    _champion_under(name, trained_champion, test_settings)
    other = load_settings(
        overrides={"training": {**SMALL, "registered_model": name}, "profiles": {"half_life_days": 15}}
    )
    result = _train(small_world, other)

    assert result.champion_log_loss == pytest.approx(trained_champion.metrics["log_loss"], abs=1e-9)
    run_tags, version_tags, metrics = _tags(result, name)
    assert metrics["champion_log_loss"] == pytest.approx(trained_champion.metrics["log_loss"], abs=1e-9)
    # the decision measure too: the champion's capture on this folder is the one its own run reported
    assert metrics["champion_capture"] == pytest.approx(trained_champion.metrics["model_capture"], abs=1e-9)
    assert run_tags["champion_version"] == "1"
    assert run_tags["gate"] == version_tags["gate"] == result.gate
    promoted = str(registry.champion_version(name)) == result.version
    assert promoted is result.promoted


def test_a_model_worse_than_the_best_baseline_is_not_promoted_even_without_a_champion(small_world):
    from sendtime.training import registry

    name = "gate-first-bad"
    lgbm = dict(load_settings().training.lgbm, learning_rate=0.001)
    result = _train(small_world, _settings(name, num_boost_round=1, lgbm=lgbm))

    best = min(result.metrics[f"{b}_log_loss"] for b in ("population_best_hour", "smoothed_histogram"))
    assert result.metrics["log_loss"] > best
    assert result.promoted is False and result.gate_refused_by == ["worse_than_baseline"]
    assert "worse than the best baseline's" in result.gate
    assert registry.champion_version(name) is None
    run_tags, version_tags, _ = _tags(result, name)
    assert run_tags["promoted"] == "False" and version_tags["gate_refused_by"] == "worse_than_baseline"


def test_an_opens_only_model_replaces_a_send_response_champion_only_with_the_flag(
    trained_champion, small_world, test_settings, tmp_path
):
    from sendtime.training import registry

    name = "gate-kind"
    _champion_under(name, trained_champion, test_settings)
    world = _copy(small_world, tmp_path / "opens-only", keep_ground_truth=False)
    events = pd.read_parquet(world / "events.parquet")
    events = events[~events[S.EVENT_TYPE].isin([S.SEND, "delivered"])]
    events.to_parquet(world / "events.parquet", index=False)

    refused = _train(world, _settings(name))
    assert refused.kind == "activity"
    assert refused.promoted is False and refused.gate_refused_by == ["kind_change"]
    assert "--allow-kind-change" in refused.gate
    assert str(registry.champion_version(name)) == "1"
    assert "window_share" in refused.metrics or "window_share" in _tags(refused, name)[2]

    allowed = _train(world, _settings(name, allow_kind_change=True))
    assert "kind_change" not in allowed.gate_refused_by
    assert "allowed by training.allow_kind_change" in allowed.gate
    assert allowed.promoted is True
    assert str(registry.champion_version(name)) == allowed.version
    _, version_tags, _ = _tags(allowed, name)
    assert version_tags["data_kind"] == "activity"


def test_a_model_trained_after_a_whole_channel_was_rejected_is_not_promoted(
    trained_champion, small_world, test_settings, tmp_path
):
    from sendtime.training import registry

    name = "gate-lost-sms"
    _champion_under(name, trained_champion, test_settings)
    world = _copy(small_world, tmp_path / "broken-phones")
    events = pd.read_parquet(world / "events.parquet")
    sms = events[S.CHANNEL].astype(str).str.lower() == "sms"
    events[S.ADDRESS] = events[S.ADDRESS].astype(str).where(~sms, "phone unknown")  # every SMS row unusable
    events.to_parquet(world / "events.parquet", index=False)

    result = _train(world, _settings(name))
    assert result.promoted is False
    assert {"rejects", "lost_channel"} <= set(result.gate_refused_by)
    assert "sms carried" in result.gate and "of the event rows were rejected" in result.gate
    assert str(registry.champion_version(name)) == "1"
