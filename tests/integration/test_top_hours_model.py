"""The trained champion ranks one person's hours as their profile does, so a plan that scores only each
row's top hours is the plan of the full score grid; and a model without that property is never trusted
with it."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import load_settings
from sendtime.features.model_features import FEATURES
from sendtime.serving.campaign_options import parse_window
from sendtime.serving.plan_io import contacts
from sendtime.serving.planner import load_predictor, schedule_frame
from sendtime.serving.policy import feasible_mask
from sendtime.serving.predictor import Predictor
from sendtime.serving.quiet_hours import load_rules, sms_allowed

pytestmark = pytest.mark.integration

WINDOW = ("2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z")


@pytest.fixture(scope="module")
def predictor(trained_champion, test_settings) -> Predictor:
    return load_predictor(test_settings)


@pytest.fixture(scope="module")
def audience(small_world) -> pd.DataFrame:
    """Known people (some listed twice), new contacts of a few cohorts, national formats, broken rows."""
    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet")
    known = people.sample(400, random_state=5)[["email", "phone"]].reset_index(drop=True)
    national = (
        known["phone"].dropna().head(4).str.replace(r"^\+1(\d{3})(\d{3})(\d{4})$", r"(\1) \2-\3", regex=True)
    )
    new = pd.DataFrame(
        {
            "email": [f"new{i}@example.com" if i % 4 else None for i in range(60)],
            "phone": [f"+1{('212', '312', '415')[i % 3]}555{1000 + i}" if i % 2 else None for i in range(60)],
        }
    )
    odd = pd.DataFrame({"email": [None, "broken@", None, None, None, None], "phone": [None, "12", *national]})
    frame = pd.concat([known, new, odd, known.head(10)], ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=6).reset_index(drop=True)
    frame.insert(0, "ref", [f"R{i}" for i in range(len(frame))])
    return frame.astype(object).where(frame.notna(), None)


def test_the_champion_orders_each_persons_hours_by_the_profile_rank(predictor, audience):
    assert predictor.ranks_hours_like_profile
    window = parse_window(*WINDOW)
    aud = predictor.resolve(list(audience["email"]), list(audience["phone"]))
    scores = predictor.score(aud, window.hours)
    how = predictor.local_hours(aud, window.hours)
    rank = predictor.gather(aud).rank[
        np.arange(len(aud))[:, None, None], np.arange(2)[None, :, None], how[:, None]
    ]
    allowed = sms_allowed(window.hours, aud.timezone, aud.state, load_rules(predictor.settings.policy))
    feasible = feasible_mask(aud.has, allowed, window.hours, None, predictor.settings.policy)
    checked = 0
    for i, c in zip(*np.nonzero(feasible.any(axis=2)), strict=True):
        hours = np.flatnonzero(feasible[i, c])
        order = hours[np.argsort(rank[i, c, hours], kind="stable")]
        # strictly rising with the rank: the model's monotone hour features plus the 1e-3 * rank tie-break
        assert (np.diff(scores[i, c, order]) > 0).all(), (i, c)
        assert scores[i, c, hours].argmax() == rank[i, c, hours].argmax()
        checked += 1
    assert checked > 400


def test_top_scores_are_the_full_grids_and_the_rest_stays_below_the_bound(predictor, audience):
    window = parse_window(*WINDOW)
    aud = predictor.resolve(list(audience["email"]), list(audience["phone"]))
    full = predictor.score(aud, window.hours)
    feasible = np.ones(full.shape, dtype=bool)
    extra = np.zeros(full.shape, dtype=bool)
    extra[:, 0, 0] = True
    scores, scored, bound = predictor.score_top(aud, window.hours, feasible, 3, extra)
    eligible = feasible & aud.has[:, :, None]
    assert (scored <= eligible).all() and (scored.sum(axis=2) >= np.minimum(3, eligible.sum(axis=2))).all()
    np.testing.assert_array_equal(scores[scored], full[scored])
    assert scored[aud.has[:, 0], 0, 0].all()
    unscored = eligible & ~scored
    assert (full[unscored] <= np.broadcast_to(bound[:, :, None], full.shape)[unscored]).all()
    i, c, h = np.nonzero(eligible)
    np.testing.assert_array_equal(predictor.score_cells(aud, window.hours, i, c, h), full[i, c, h])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"max_sms": 15, "max_per_hour": {"email": 12, "sms": 2}},
        {"max_sms": 40, "max_per_hour": {"email": 30}, "holdout": 0.15, "explore": 0.1, "seed": 4},
        {"max_per_hour": {"email": 25, "sms": 6}, "duplicates": "all", "dedupe_scoring": False},
    ],
    ids=["no-limits", "tight-caps", "holdout-exploration", "every-row"],
)
@pytest.mark.parametrize("window_hours", [1, 3])
def test_plan_on_top_hours_equals_the_full_scoring_plan(
    predictor, test_settings, audience, options, window_hours
):
    if window_hours != 1:
        settings = load_settings(
            overrides={"training": {"snapshots": 3}, "policy": {"window_hours": window_hours}}
        )
        predictor = Predictor(predictor.booster, predictor.profiles, settings, predictor.model_version)
    window = parse_window(*WINDOW)
    full = schedule_frame(audience, predictor, window, top_k=None, **options)
    top = schedule_frame(audience, predictor, window, top_k=4, top_hours=True, **options)
    pd.testing.assert_frame_equal(top.frame, full.frame, check_exact=True)  # every row, hour, score, reason
    for name in ("baseline", "uncapped", "cost", "moved_by_cap", "fallbacks"):
        assert getattr(top.plan, name) == getattr(full.plan, name), name
    assert top.scored_cells < full.scored_cells


def test_a_model_that_may_rank_hours_otherwise_scores_every_cell(predictor, audience):
    rng = np.random.default_rng(0)
    X = rng.random((600, len(FEATURES)))
    y = (rng.random(600) < X[:, FEATURES.index("response")]).astype(int)
    free = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(X, y, feature_name=list(FEATURES)),
        num_boost_round=5,
    )
    unconstrained = Predictor(free, predictor.profiles, predictor.settings, "unconstrained")
    assert not unconstrained.ranks_hours_like_profile
    window = parse_window(*WINDOW)
    options = {"max_per_hour": {"email": 20}, "dedupe_scoring": False}
    result = schedule_frame(audience, unconstrained, window, top_k=4, top_hours=True, **options)
    aud = unconstrained.resolve(list(contacts(audience, "email")), list(contacts(audience, "phone")))
    assert result.scored_cells == int(aud.has.sum()) * len(window.hours)  # the full grid, as before
    reference = schedule_frame(audience, unconstrained, window, top_k=None, **options)
    pd.testing.assert_frame_equal(result.frame, reference.frame, check_exact=True)
