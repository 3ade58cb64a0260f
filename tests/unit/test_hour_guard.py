"""The hour guard (training/hour_guard.py) on constructed held-out data: a model whose hours hold less of
the held-out engagement than the profile's loses the hour choice on that channel, and the served scores
then rank the hours as the profile does while keeping the model's level at the best hour."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from sendtime.features.model_features import FEATURES, hour_ranks
from sendtime.training import decision, hour_guard

H = 168
COL = {name: i for i, name in enumerate(FEATURES)}
EVENING, MORNING = 19, 9


@dataclass
class FakeRows:
    response: np.ndarray  # [n, 2, H]
    rank: np.ndarray
    best: np.ndarray  # [n, 2]


def curve() -> np.ndarray:
    """A profile peaking at 19:00 every day, 09:00 second."""
    day = np.full(24, 0.1)
    day[EVENING], day[MORNING] = 1.0, 0.5
    return np.tile(day, 7)


@pytest.fixture
def fake_features(monkeypatch):
    """Every person has the same profile on both channels; features are the hour columns a real
    feature matrix would hold (response, its rank, relative to the best, times the click rate)."""
    one = np.stack([curve(), curve()])

    def gather(profiles, rows):
        response = np.repeat(one[None], len(rows), axis=0).astype(np.float32)
        rank, best = hour_ranks(response)
        return FakeRows(response, rank, best)

    def matrix(g, profiles, idx, channel, how):
        X = np.zeros((len(idx), len(FEATURES)), dtype=np.float32)
        X[:, COL["channel"]] = channel
        resp = g.response[idx, channel, how]
        X[:, COL["click_rate"]] = 0.05
        X[:, COL["response"]] = resp
        X[:, COL["response_rank"]] = g.rank[idx, channel, how]
        X[:, COL["response_vs_best"]] = resp / g.best[idx, channel]
        X[:, COL["rate_x_response"]] = 0.05 * resp
        return X

    monkeypatch.setattr(decision, "gather_rows", gather)
    monkeypatch.setattr(decision, "feature_matrix", matrix)


def mid_loving_model(X: np.ndarray) -> np.ndarray:
    """A model that does not rank hours as the profile does: it likes a middling response (09:00)."""
    return 0.1 - 0.1 * np.abs(X[:, COL["response"]] - 0.5)


def held_out() -> pd.DataFrame:
    """Six e-mail people engage at 19:00-20:00 (the profile's hours); four SMS people at 09:00."""
    rows = []
    for sub in range(6):
        for day in range(3):
            rows.append((sub, 0, 24 * day + EVENING + day % 2))
    for sub in range(6, 10):
        for day in range(2):
            rows.append((sub, 1, 24 * (day + 2) + MORNING))
    return pd.DataFrame(rows, columns=["sub", "channel", "how"])


def test_the_profile_places_the_hours_where_the_models_hours_hold_less(fake_features):
    verdicts = hour_guard.judge(mid_loving_model, None, held_out(), window_hours=3)
    email, sms = verdicts["email"], verdicts["sms"]
    # e-mail: the model's windows (09:00-11:59) miss every engagement; the profile's (19:00-21:59) hold all
    assert (email.model_share, email.profile_share) == (0.0, 1.0)
    assert email.people == 6 and email.engagements == 18 and email.source == "profile"
    # SMS: the model's windows hold the engagements, the profile's do not: the model keeps the hours
    assert (sms.model_share, sms.profile_share) == (1.0, 0.0) and sms.source == "model"
    source, _ = hour_guard.decide("auto", mid_loving_model, None, held_out(), 3, 0.0)
    assert source == {"email": "profile", "sms": "model"}
    forced, _ = hour_guard.decide("model", mid_loving_model, None, held_out(), 3, 0.0)
    assert forced == {"email": "model", "sms": "model"}
    flat = hour_guard.metrics(verdicts, source)
    assert flat["hour_guard_email_profile"] == 1.0 and flat["hour_guard_sms_profile"] == 0.0
    assert flat["hour_guard_email_diff"] == pytest.approx(-1.0)


def test_a_model_that_ranks_hours_as_the_profile_keeps_them(fake_features):
    def monotone(X: np.ndarray) -> np.ndarray:
        return np.minimum(X[:, COL["rate_x_response"]], 0.02)  # flat on top: the tie-break decides

    verdicts = hour_guard.judge(monotone, None, held_out(), window_hours=3)
    assert all(v.diff == 0.0 and v.se == 0.0 and v.source == "model" for v in verdicts.values())


def test_the_rule_and_its_tolerance():
    assert hour_guard.rule(0.30, 0.31, 0.0) == "profile"
    assert hour_guard.rule(0.30, 0.31, 0.02) == "model"
    assert hour_guard.rule(0.31, 0.31, 0.0) == "model"
    assert hour_guard.rule(float("nan"), float("nan"), 0.0) == "model"  # nothing held out: not judged


def test_paired_standard_error_is_the_ratio_estimators():
    a, b, counts = np.array([2, 1, 0]), np.array([1, 1, 1]), np.array([2, 2, 2])
    share_a, share_b, se = hour_guard.paired(a, b, counts)
    assert (share_a, share_b) == (pytest.approx(0.5), pytest.approx(0.5))
    z = np.array([1, 0, -1]) - 0.0 * counts
    assert se == pytest.approx(np.sqrt((z**2).sum() * 3 / 2) / 6)


def test_served_scores_rank_a_guarded_channels_hours_by_the_profile_at_the_models_level():
    resp = curve().astype(np.float32)
    rank, best = hour_ranks(resp[None])
    X = np.zeros((H, len(FEATURES)), dtype=np.float32)
    X[:, COL["click_rate"]] = 0.05
    X[:, COL["response"]] = resp
    X[:, COL["response_rank"]] = rank[0]
    X[:, COL["response_vs_best"]] = resp / best[0]
    X[:, COL["rate_x_response"]] = 0.05 * resp
    best_col = np.full(H, best[0])

    plain = hour_guard.served_scores(mid_loving_model, X, best_col)
    assert plain.reshape(7, 24).argmax(axis=1).tolist() == [MORNING] * 7  # the model's own hours
    guarded = hour_guard.served_scores(mid_loving_model, X, best_col, np.ones(H, bool))
    assert guarded.reshape(7, 24).argmax(axis=1).tolist() == [EVENING] * 7  # the profile's hours
    # hours in the profile's order, and at the best hour the model's own probability there
    order = np.argsort(rank[0], kind="stable")
    assert np.all(np.diff(guarded[order]) > 0)
    assert guarded[EVENING] == pytest.approx(plain[EVENING])
    # rows not guarded are scored exactly as before the guard existed
    mixed = hour_guard.served_scores(mid_loving_model, X, best_col, np.arange(H) >= 24)
    np.testing.assert_array_equal(mixed[:24], plain[:24])


def plateau_model(X: np.ndarray) -> np.ndarray:
    """Flat on top, as trees are: every hour with at least the morning's response scores alike, so a raw
    argmax picks 09:00 (the plateau's first hour) where serving's tie-break picks the profile's 19:00."""
    return np.where(X[:, COL["response"]] >= 0.5, 0.02, 0.01)


def served_picks(model, channel: int, guarded: bool) -> set[int]:
    """The hours-of-week serving picks (each day's argmax of `served_scores`) for anyone on `channel`."""
    g = decision.gather_rows(None, np.array([0]))
    idx = np.zeros(H, dtype=np.int64)
    X = decision.feature_matrix(g, None, idx, np.full(H, channel), np.arange(H))
    scores = hour_guard.served_scores(model, X, g.best[idx, channel], np.full(H, guarded))
    return set((scores.reshape(7, 24).argmax(axis=1) + 24 * np.arange(7)).tolist())


@pytest.mark.parametrize("model, source", [(plateau_model, None), (mid_loving_model, {"sms": "profile"})])
def test_window_share_judges_the_hours_serving_picks(fake_features, model, source):
    held = held_out()
    guarded = hour_guard.guarded_channels(source)
    picks = {c: served_picks(model, c, guarded[c]) for c in (0, 1)}
    expected = np.mean([how in picks[c] for c, how in zip(held["channel"], held["how"], strict=True)])
    served = hour_guard.served_predict(model, source)
    assert decision.window_share(served, None, held, 1, with_best=True) == pytest.approx(expected)
    if model is plateau_model:  # the raw argmax sits at the plateau's first hour, not where serving sends
        assert picks[0] == {24 * d + EVENING for d in range(7)}
        assert expected == pytest.approx(12 / 26)  # e-mail's 19:00 engagements, none of SMS's 09:00
        assert decision.window_share(model, None, held, 1) == pytest.approx(8 / 26)


def test_the_tag_reads_back_and_defaults_to_the_model():
    assert hour_guard.parse(None) == {"email": "model", "sms": "model"}
    assert hour_guard.parse('{"email": "profile", "sms": "model"}') == {"email": "profile", "sms": "model"}
    assert hour_guard.guarded_channels({"sms": "profile"}).tolist() == [False, True]
