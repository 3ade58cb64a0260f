"""The profile-only decision maker: the profile's click rate x response, behind the booster interface."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from sendtime.features.model_features import FEATURES, MONOTONE
from sendtime.training.profile_only import ProfileOnlyModel, booster_from_string, is_profile_only


def _X(**columns) -> np.ndarray:
    n = len(next(iter(columns.values())))
    X = np.zeros((n, len(FEATURES)), dtype=np.float32)
    for name, values in columns.items():
        X[:, FEATURES.index(name)] = values
    return X


def test_send_response_probability_is_rate_times_response():
    rate = np.array([0.02, 0.02, 0.1, 0.5])
    response = np.array([0.5, 2.0, 1.0, 3.0])  # mean 1 over a person's week
    X = _X(click_rate=rate, response=response, rate_x_response=rate * response)
    p = ProfileOnlyModel().predict(X)
    assert p == pytest.approx([0.01, 0.04, 0.1, 1 - 1e-6], rel=1e-5)  # capped below 1


def test_activity_probability_counts_engagements_per_week():
    X = _X(engagements_per_week=[168.0, 0.0, np.nan], response=[1.0, 1.0, 2.0])
    p = ProfileOnlyModel("activity").predict(X)
    assert p[0] == pytest.approx(1 - np.exp(-1.0))
    assert p[1] == pytest.approx(1 - np.exp(-1 / 168))  # at least one a week
    assert p[2] == pytest.approx(1 - np.exp(-2 / 168))


def test_round_trip_through_text_and_booster_interface():
    for kind in ("send_response", "activity"):
        m = booster_from_string(ProfileOnlyModel(kind).model_to_string())
        assert is_profile_only(m) and m.kind == kind
    m = ProfileOnlyModel()
    assert m.feature_name() == FEATURES and m.num_trees() == 0
    assert m.dump_model()["monotone_constraints"] == [MONOTONE.get(f, 0) for f in FEATURES]
    assert m.feature_importance("gain")[FEATURES.index("rate_x_response")] == 1.0


def test_lightgbm_text_still_gives_a_booster():
    rng = np.random.default_rng(0)
    X, y = rng.random((200, len(FEATURES))), rng.integers(0, 2, 200)
    data = lgb.Dataset(X, y, feature_name=FEATURES)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, data, num_boost_round=3)
    again = booster_from_string(booster.model_to_string())
    assert isinstance(again, lgb.Booster)
    np.testing.assert_allclose(again.predict(X), booster.predict(X))
