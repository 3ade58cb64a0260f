"""Planning on each row's top hours (`serving.top_hours`) gives the plan of the full score grid, row for
row, on a stand-in model whose scores rise with a per-person rank of the hours (as the champion's do),
with many identical rows (cold starts of one cohort), tight caps, holdout, exploration and wide windows."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import load_settings
from sendtime.serving import top_hours
from sendtime.serving.campaign_options import parse_window
from sendtime.serving.contacts import Audience
from sendtime.serving.planner import schedule_frame
from sendtime.serving.predictor import _top_cells
from sendtime.serving.top_hours import LazyScores, scoring_groups

START, END = "2026-11-03T12:00:00Z", "2026-11-04T12:00:00Z"
ZONES = {"212": "America/New_York", "415": "America/Los_Angeles", "312": "America/Chicago"}


class RankedStandIn:
    """Scores that rise strictly with a per-person permutation of the hours; a person is one of `groups`
    score patterns (so many rows are identical), keyed by the e-mail (or phone) text."""

    model_version = "ranked stand-in"
    ranks_hours_like_profile = True

    def __init__(self, groups: int = 40, window_hours: int = 1) -> None:
        self.settings = load_settings(overrides={"policy": {"window_hours": window_hours}})
        self.groups = groups
        self.cells_asked = 0

    def resolve(self, emails, phones) -> Audience:
        emails = [e if isinstance(e, str) and "@" in e else None for e in emails]
        phones = [p if isinstance(p, str) and p.startswith("+1") and len(p) == 12 else None for p in phones]
        n = len(emails)
        has = np.array(
            [[e is not None for e in emails], [p is not None for p in phones]], dtype=bool
        ).T.reshape(n, 2)
        ids = np.array([e or p for e, p in zip(emails, phones, strict=True)], dtype=object)
        group = np.array([zlib.crc32(str(i).encode()) % self.groups if i else -1 for i in ids])
        zone = np.array([ZONES.get(p[2:5], "America/New_York") if p else "America/New_York" for p in phones])
        return Audience(
            subscriber_id=ids,
            rows=np.stack([group, group], axis=1),
            has=has,
            invalid=np.zeros((n, 2), dtype=bool),
            opted_out=np.zeros((n, 2), dtype=bool),
            timezone=zone.astype(object),
            tz_source=np.full(n, "phone", dtype=object),
            state=np.full(n, None, dtype=object),
            cohort=np.full(n, -1),
            pattern=np.full((n, 2), "personal history", dtype=object),
        )

    def _rank(self, audience, n_hours: int) -> np.ndarray:
        out = np.zeros((len(audience), 2, n_hours))
        for i, g in enumerate(audience.rows[:, 0]):
            rng = np.random.default_rng([int(g) + 1, 7])
            out[i] = np.stack([rng.permutation(n_hours), rng.permutation(n_hours)]) / n_hours
        return out

    def score(self, audience, hour_starts, channels=None, progress=False) -> np.ndarray:
        n_hours = len(hour_starts)
        rank = self._rank(audience, n_hours)
        level = np.array([np.random.default_rng(int(g) + 1).gamma(2.0, 0.01, 2) for g in audience.rows[:, 0]])
        # a step function of the rank (as trees give), then the 1e-3 * rank tie-break
        steps = np.floor(rank * 4) / 4
        out = (level.reshape(-1, 2, 1) * (1 + steps) * (1 + 1e-3 * rank)).astype(np.float32)
        return out * audience.has[:, :, None]

    def score_top(self, audience, hour_starts, feasible, k, extra=None, progress=False):
        full, rank = self.score(audience, hour_starts), self._rank(audience, len(hour_starts))
        feasible = feasible & audience.has[:, :, None]
        top = _top_cells(np.where(feasible, rank, -1.0), feasible, k)
        want = top if extra is None else top | (feasible & extra)
        self.cells_asked += int(want.sum())
        scores = np.where(want, full, -np.inf).astype(np.float32)
        lowest = np.where(top, full, np.inf).min(axis=2)
        bound = np.where((feasible & ~want).any(axis=2), lowest, -np.inf).astype(np.float32)
        return scores, want, bound

    def score_cells(self, audience, hour_starts, row, channel, hour) -> np.ndarray:
        self.cells_asked += len(row)
        return self.score(audience, hour_starts)[row, channel, hour]


def _audience(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = rng.choice(list(ZONES), n)
    email = np.where(rng.random(n) < 0.8, [f"p{i}@example.com" for i in range(n)], None)
    phone = np.where(rng.random(n) < 0.6, [f"+1{a}555{i:04d}" for i, a in enumerate(area)], None)
    return pd.DataFrame({"ref": [f"R{i}" for i in range(n)], "email": email, "phone": phone})


def _both(frame, stand_in, top_k, **options):
    window = parse_window(START, END, options.pop("campaign_time", None))
    full = schedule_frame(frame, stand_in, window, top_k=None, progress=False, **options)
    asked = stand_in.cells_asked
    top = schedule_frame(frame, stand_in, window, top_k=top_k, top_hours=True, progress=False, **options)
    return full, top, stand_in.cells_asked - asked


OPTIONS = [
    {},
    {"max_sms": 40, "max_per_hour": {"email": 30, "sms": 8}},
    {"max_sms": 40, "max_per_hour": {"email": 12, "sms": 3}},  # caps hold far fewer than the audience
    {"max_sms": 60, "max_per_hour": {"email": 20}, "holdout": 0.2, "explore": 0.1, "seed": 3},
    {"max_per_hour": {"email": 25, "sms": 5}, "duplicates": "all", "dedupe_scoring": False},
    {"max_sms": 10, "max_per_hour": {"sms": 4}, "campaign_time": "2026-11-03T20:00:00Z", "holdout": 0.3},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "no-limits")
@pytest.mark.parametrize("top_k", [2, 4])
@pytest.mark.parametrize("window_hours", [1, 3])
def test_top_hours_plan_equals_the_full_grid_plan(options, top_k, window_hours):
    frame = _audience(400, seed=top_k + window_hours)
    full, top, _ = _both(frame, RankedStandIn(window_hours=window_hours), top_k, **dict(options))
    pd.testing.assert_frame_equal(top.frame, full.frame, check_exact=True)
    for name in ("baseline", "uncapped", "cost", "moved_by_cap", "fallbacks", "contactable"):
        assert getattr(top.plan, name) == getattr(full.plan, name), name
    assert top.scored_rows == full.scored_rows


def test_loose_limits_score_a_fraction_of_the_cells_and_plan_once():
    frame = _audience(600, seed=1)
    stand_in = RankedStandIn(groups=10_000)
    full, top, asked = _both(frame, stand_in, 3, max_sms=200, max_per_hour={"email": 400})
    pd.testing.assert_frame_equal(top.frame, full.frame, check_exact=True)
    assert top.plan_rounds == 1 and asked == top.scored_cells < full.scored_cells / 4


def test_tight_caps_ask_for_more_cells_and_plan_again():
    frame = _audience(600, seed=2)
    full, top, _ = _both(frame, RankedStandIn(groups=10_000), 2, max_per_hour={"email": 15, "sms": 4})
    pd.testing.assert_frame_equal(top.frame, full.frame, check_exact=True)
    assert top.plan_rounds > 1


def test_lazy_scores_fill_cells_on_demand_and_keep_identical_rows_in_step():
    stand_in = RankedStandIn(groups=3)
    window = parse_window(START, END)
    aud = stand_in.resolve([f"p{i}@x.com" for i in range(30)], [None] * 30)
    feasible = np.ones((30, 2, 24), dtype=bool) & aud.has[:, :, None]
    groups = scoring_groups(aud)
    lazy = LazyScores.build(
        stand_in, aud, window.hours, feasible, np.zeros_like(feasible), k=2, groups=groups
    )
    assert len(lazy.audience) == 3  # three score patterns: one scoring input each
    grid = lazy.grid()
    full = stand_in.score(aud, window.hours)
    assert ((grid == full) | np.isneginf(grid)).all() and (np.isfinite(grid).sum(axis=2)[:, 0] == 2).all()
    unscored = feasible & np.isneginf(grid)
    assert (full[:, 0][unscored[:, 0]] <= np.repeat(lazy.bound[lazy.codes, 0], 22)).all()
    assert lazy.ensure(np.array([0]), np.array([0]), np.array([5])) in (0, 1)
    assert lazy.grid()[0, 0, 5] == full[0, 0, 5]
    same = np.flatnonzero(lazy.codes == lazy.codes[0])
    assert (lazy.grid()[same, 0, 5] == full[0, 0, 5]).all()  # every row of the pattern sees the new cell
    lazy.ensure_all(np.array([0]), 0)
    assert (lazy.grid()[same, 0] == full[same, 0]).all() and np.isneginf(lazy.bound[lazy.codes[0], 0])


def test_top_hours_are_used_where_they_pay():
    window = parse_window(START, END)
    frame = _audience(2000, seed=4)
    few = RankedStandIn(groups=5)  # 2,000 rows, a handful of distinct inputs: a second plan would cost more
    auto, full = (schedule_frame(frame, few, window, progress=False, top_k=k) for k in (4, None))
    assert auto.scored_rows < 100 and auto.scored_cells == full.scored_cells
    many = RankedStandIn(groups=10_000)  # every row different: top hours save most of the model's work
    auto, full = (schedule_frame(frame, many, window, progress=False, top_k=k) for k in (4, None))
    assert auto.scored_cells < full.scored_cells / 3
    pd.testing.assert_frame_equal(auto.frame, full.frame, check_exact=True)


@pytest.mark.parametrize("crowded", [0.0, 10.0], ids=["every-capped-channel-up-front", "never-up-front"])
def test_crowded_channels_scored_up_front_or_on_demand_give_the_same_plan(monkeypatch, crowded):
    monkeypatch.setattr(top_hours, "CROWDED", crowded)
    frame = _audience(600, seed=7)
    options = {"max_sms": 50, "max_per_hour": {"email": 14, "sms": 4}, "holdout": 0.1, "seed": 1}
    full, top, _ = _both(frame, RankedStandIn(groups=10_000), 3, **options)
    pd.testing.assert_frame_equal(top.frame, full.frame, check_exact=True)
    if crowded > 1:
        assert top.plan_rounds > 1  # the caps' solver read rows beyond their top hours: planned again


def test_empty_and_single_row_audiences():
    window = parse_window(START, END)
    for frame in (_audience(0, seed=0), _audience(1, seed=0)):
        for mode in (None, True):
            result = schedule_frame(frame, RankedStandIn(), window, progress=False, top_hours=mode)
            assert len(result.frame) == len(frame)
