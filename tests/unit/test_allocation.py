"""Campaign-wide allocation: SMS budget, hourly caps (optimal vs an LP), joint plan, holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from sendtime.configs.settings import PolicySettings
from sendtime.serving.allocation import allocate_sms_budget, holdout_mask
from sendtime.serving.campaign import plan_campaign
from sendtime.serving.capacity import UNLIMITED, assign_hours, greedy_first_come
from sendtime.serving.reasons import REASON_BUDGET, REASON_CAP

INF = np.inf
EMAIL, SMS, NONE = 0, 1, -1

# 6 rows: best e-mail and SMS values (in 64ths, exact in binary so that ties are ties); rows 2 and 4
# are SMS-only, row 5 has no phone. SMS gain, no cost, in 64ths: 4, 1, 4 (SMS-only: vs not sending),
# 2, 1 (SMS-only), -inf
BEST_EMAIL = np.array([4, 2, -INF, 8, -INF, 6]) / 64
BEST_SMS = np.array([8, 3, 4, 10, 1, -INF]) / 64


def _lp_optimum(value: np.ndarray, capacity: np.ndarray) -> float:
    """max sum v x, sum_h x_ih <= 1, sum_i x_ih <= cap_h, 0 <= x <= 1 (HiGHS)."""
    m, n_hours = value.shape
    i, h = np.nonzero(np.isfinite(value))
    if not len(i):
        return 0.0
    k = np.arange(len(i))
    a = coo_matrix(
        (np.ones(2 * len(i)), (np.concatenate([i, m + h]), np.concatenate([k, k]))), (m + n_hours, len(i))
    )
    b = np.concatenate([np.ones(m), np.minimum(capacity, m).astype(float)])
    res = linprog(-value[i, h], A_ub=a, b_ub=b, bounds=(0, 1), method="highs")
    assert res.status == 0
    return -res.fun


def _check_feasible(value: np.ndarray, capacity: np.ndarray, hour: np.ndarray) -> None:
    placed = np.flatnonzero(hour >= 0)
    assert np.isfinite(value[placed, hour[placed]]).all(), "a row was placed at an infeasible hour"
    assert (np.bincount(hour[placed], minlength=value.shape[1]) <= capacity).all(), "a cap was exceeded"


# --- SMS budget --------------------------------------------------------------------------------


def test_budget_goes_to_the_largest_gains_sms_only_rows_included():
    channel = allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=3)
    # top 3 gains: rows 0 and 2 (4/64, row 2 is SMS-only), then row 3 (2/64); row 4 is not funded
    assert channel.tolist() == [SMS, EMAIL, SMS, SMS, NONE, EMAIL]
    assert channel.dtype == np.int8


def test_budget_is_never_exceeded_and_ties_go_to_earlier_rows():
    for budget in range(6):
        assert (allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=budget) == SMS).sum() <= budget
    # rows 0 and 2 tie at 4/64: the earlier row gets the one SMS; rows 1 and 4 tie at 1/64 for the 4th
    assert allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=1).tolist() == [
        SMS,
        EMAIL,
        NONE,
        EMAIL,
        NONE,
        EMAIL,
    ]
    assert allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=4).tolist() == [SMS, SMS, SMS, SMS, NONE, EMAIL]
    assert allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=0).tolist() == [
        EMAIL,
        EMAIL,
        NONE,
        EMAIL,
        NONE,
        EMAIL,
    ]


def test_no_budget_sends_sms_wherever_it_gains():
    assert allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=None).tolist() == [
        SMS,
        SMS,
        SMS,
        SMS,
        SMS,
        EMAIL,
    ]


def test_sms_cost_counts_against_the_gain():
    # cost 1/64: gains 3, 0, 3, 1, 0 (in 64ths): rows 1 and 4 gain nothing, row 4 is not worth a text
    channel = allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=None, sms_cost=1 / 64)
    assert channel.tolist() == [SMS, EMAIL, SMS, SMS, NONE, EMAIL]
    # a click worth 2: the gains double, the cost does not
    channel = allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=None, sms_cost=1 / 64, click_value=2.0)
    assert channel.tolist() == [SMS, SMS, SMS, SMS, SMS, EMAIL]


def test_budget_rejects_bad_input():
    with pytest.raises(ValueError, match="max_sms"):
        allocate_sms_budget(BEST_EMAIL, BEST_SMS, max_sms=-1)
    with pytest.raises(ValueError, match="NaN"):
        allocate_sms_budget(np.array([np.nan]), np.array([0.1]), max_sms=1)


# --- hourly capacity ---------------------------------------------------------------------------


def test_assignment_beats_first_come_when_one_row_is_flexible():
    # row 0 (first in the file) likes 09:00 and 10:00 almost equally; row 1 only responds at 09:00
    value = np.array([[0.10, 0.09], [0.10, -INF]])
    capacity = np.array([1, 1])
    assert greedy_first_come(value, capacity).tolist() == [0, NONE]  # row 1 is left out: 0.10 in all
    result = assign_hours(value, capacity)
    assert result.hour.tolist() == [1, 0]
    assert result.total_value == pytest.approx(0.19)
    assert result.unconstrained_value == pytest.approx(0.20)
    assert result.cost_of_cap == pytest.approx(0.01)
    assert result.n_unassigned == 0


def test_rows_that_lose_least_stay_unassigned():
    value = np.array([[0.3], [0.1], [0.2], [-INF]])
    result = assign_hours(value, np.array([2]))
    assert result.hour.tolist() == [0, NONE, 0, NONE]
    assert result.n_unassigned == 1  # row 3 has no feasible hour: not counted as squeezed out
    assert result.prices[0] == pytest.approx(0.1, abs=1e-12)  # one more slot would be worth 0.1


def test_infeasible_hours_are_never_used_even_when_full():
    value = np.array([[0.5, -INF, -INF], [0.4, -INF, 0.1], [0.3, 0.2, -INF]])
    result = assign_hours(value, np.array([1, 0, 5]))
    assert result.hour.tolist() == [0, 2, NONE]  # row 2's other hour has no room at all
    _check_feasible(value, np.array([1, 0, 5]), result.hour)


def test_unlimited_capacity_gives_every_row_its_best_hour():
    rng = np.random.default_rng(1)
    value = rng.random((50, 6))
    result = assign_hours(value, np.full(6, UNLIMITED))
    assert (result.hour == value.argmax(axis=1)).all()
    assert result.cost_of_cap == pytest.approx(0.0)
    assert (result.prices == 0).all()


@pytest.mark.parametrize("seed", range(20))
def test_assignment_is_optimal_against_linprog(seed):
    rng = np.random.default_rng(seed)
    m, n_hours = int(rng.integers(5, 40)), int(rng.integers(2, 7))
    if seed % 3 == 0:  # many ties: identical and rounded values
        value = np.round(rng.random((m, n_hours)), 1)
        value[: m // 2] = value[0]
    else:
        value = rng.random((m, n_hours)) * rng.lognormal(-3, 0.5, (m, 1))
    value[rng.random((m, n_hours)) < 0.3] = -INF
    capacity = rng.integers(0, max(2, m // n_hours + 2), n_hours)
    result = assign_hours(value, capacity)
    _check_feasible(value, capacity, result.hour)
    best = _lp_optimum(value, capacity)
    assert result.total_value == pytest.approx(best, rel=1e-9, abs=1e-12)
    assert abs(result.duality_gap) <= 1e-9
    greedy = greedy_first_come(value, capacity)
    _check_feasible(value, capacity, greedy)
    greedy_value = value[np.flatnonzero(greedy >= 0), greedy[greedy >= 0]].sum()
    assert greedy_value <= result.total_value + 1e-12


def test_capacity_holds_on_a_bigger_random_case():
    rng = np.random.default_rng(7)
    value = rng.lognormal(-3.5, 0.8, (3000, 1)) * np.exp(
        -0.5 * ((np.arange(24) - rng.normal(10, 2, (3000, 1))) / 2) ** 2
    )
    value[rng.random(value.shape) < 0.2] = -INF
    capacity = np.full(24, 150)
    result = assign_hours(value, capacity)
    _check_feasible(value, capacity, result.hour)
    assert abs(result.duality_gap) <= 1e-9 * result.total_value
    assert result.total_value == pytest.approx(_lp_optimum(value, capacity), rel=1e-7)


def test_identical_hours_share_their_rows_within_each_cap():
    rng = np.random.default_rng(3)
    day = rng.random((60, 4))
    value = np.concatenate([day, day], axis=1)  # the same four hours on two days
    capacity = np.array([5, 5, 3, 9, 5, 2, 3, 0])
    result = assign_hours(value, capacity)
    _check_feasible(value, capacity, result.hour)
    assert result.total_value == pytest.approx(_lp_optimum(value, capacity), rel=1e-9)


def test_assign_hours_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        assign_hours(np.array([[np.nan, 0.1]]), np.array([1, 1]))
    with pytest.raises(ValueError, match="capacity"):
        assign_hours(np.array([[0.2, 0.1]]), np.array([1]))


# --- channels and hours together (the production planner, `sendtime schedule`'s) ---------------

FREE = PolicySettings(sms_cost=0.0)  # a text costs nothing: the plan's values are the scores


def _plan(value: np.ndarray, policy: PolicySettings = FREE, **limits):
    """`plan_campaign` on a value grid whose -inf cells are infeasible."""
    feasible = np.isfinite(value)
    return plan_campaign(np.where(feasible, value, 0.0), feasible, policy, **limits)


def _grid() -> np.ndarray:
    """value[3, 2, 2]: row 0 has both channels, row 1 only e-mail at hour 0, row 2 mostly SMS."""
    return np.array(
        [
            [[0.05, 0.04], [0.06, -INF]],  # SMS gain 0.01
            [[0.05, -INF], [-INF, -INF]],  # e-mail only, hour 0 only
            [[0.03, -INF], [0.02, 0.02]],  # SMS worse than e-mail: gain -0.01
        ]
    )


def test_plan_budget_then_capacity_with_no_room_left():
    plan = _plan(_grid(), max_sms=1, max_per_hour={"email": 1})
    # row 0 gets the one SMS; rows 1 and 2 want e-mail at hour 0, one slot: row 1 is worth more;
    # row 2 cannot fall back to SMS, the budget is spent
    assert plan.channel.tolist() == [SMS, EMAIL, NONE]
    assert plan.hour.tolist() == [0, 0, NONE]
    assert plan.reason[2].endswith(REASON_CAP)
    assert plan.expected[:2] == pytest.approx([0.06, 0.05])
    assert np.isnan(plan.expected[2])
    assert plan.sms_used == 1 and plan.fallbacks == 0
    assert plan.cost["email cap"] == pytest.approx(0.03)
    assert (plan.sends_per_hour(2)[EMAIL] <= 1).all()


def test_plan_falls_back_to_the_other_channel_when_it_has_room():
    plan = _plan(_grid(), max_sms=2, max_per_hour={"email": 1})
    assert plan.channel.tolist() == [SMS, EMAIL, SMS]
    assert plan.sms_used == 2 and plan.fallbacks == 1
    assert plan.expected[2] == pytest.approx(0.02)


def test_plan_reasons_for_rows_without_a_send():
    value = np.array(
        [
            [[-INF, -INF], [-INF, -INF]],  # no contact
            [[-INF, -INF], [0.01, 0.02]],  # SMS-only, gain 0.02 - cost 0.03 < 0
            [[-INF, -INF], [0.09, 0.08]],  # SMS-only, worth it, but the budget goes to row 3
            [[-INF, -INF], [0.10, 0.01]],
        ]
    )
    plan = _plan(value, PolicySettings(sms_cost=0.03), max_sms=1)
    assert plan.channel.tolist() == [NONE, NONE, NONE, SMS]
    assert plan.reason[0] == "no contact"
    assert plan.reason[1].endswith(REASON_BUDGET) and plan.reason[2].endswith(REASON_BUDGET)
    assert plan.sms_used == 1 and plan.max_sms == 1


def test_plan_accepts_a_feasible_mask():
    value = np.full((2, 2, 3), 0.05)
    value[:, 0, 1] = 0.07
    feasible = np.ones(value.shape, dtype=bool)
    feasible[:, 1] = False  # no phones
    feasible[0, 0, 1] = False
    plan = plan_campaign(value, feasible, FREE)
    assert plan.channel.tolist() == [EMAIL, EMAIL]
    assert plan.hour[1] == 1 and plan.hour[0] != 1


@pytest.mark.parametrize("seed", range(6))
def test_plan_respects_budget_and_caps(seed):
    rng = np.random.default_rng(seed)
    value = rng.random((60, 2, 5)) * rng.lognormal(-3, 0.5, (60, 1, 1))
    value[rng.random(value.shape) < 0.3] = -INF
    plan = _plan(value, max_sms=15, max_per_hour={"email": 6, "sms": 4})
    assert plan.sms_used <= 15
    counts = plan.sends_per_hour(5)
    assert (counts[EMAIL] <= 6).all() and (counts[SMS] <= 4).all()
    sent = np.flatnonzero(plan.channel >= 0)
    assert np.isfinite(value[sent, plan.channel[sent], plan.hour[sent]]).all()


@pytest.mark.parametrize("seed", range(6))
def test_plan_under_a_cap_is_optimal_against_linprog(seed):
    rng = np.random.default_rng(seed)
    value = rng.random((40, 2, 5)) * rng.lognormal(-3, 0.5, (40, 1, 1))
    value[rng.random(value.shape) < 0.3] = -INF
    value[:, SMS] = -INF  # e-mail only: no fallback, the plan is one exact assignment
    plan = _plan(value, max_per_hour={"email": 4})
    sent = np.flatnonzero(plan.channel >= 0)
    _check_feasible(value[:, EMAIL], np.full(5, 4), np.where(plan.channel >= 0, plan.hour, NONE))
    total = value[sent, EMAIL, plan.hour[sent]].sum()
    assert total == pytest.approx(_lp_optimum(value[:, EMAIL], np.full(5, 4)), rel=1e-9)


# --- holdout -----------------------------------------------------------------------------------


def test_holdout_share_and_reproducibility():
    keys = pd.Series([f"subscriber-{i}" for i in range(100_000)])
    mask = holdout_mask(keys, share=0.1, seed=42)
    assert mask.dtype == bool and len(mask) == len(keys)
    assert abs(mask.mean() - 0.1) < 0.02
    shuffled = keys.sample(frac=1.0, random_state=0)
    again = holdout_mask(shuffled, share=0.1, seed=42)
    assert (again == mask[shuffled.index.to_numpy()]).all()  # same subscriber, same group
    part = holdout_mask(keys.iloc[:1000], share=0.1, seed=42)
    assert (part == mask[:1000]).all()  # whatever the audience's size
    assert (holdout_mask(keys, share=0.1, seed=43) != mask).any()
    assert not holdout_mask(keys, share=0.0, seed=42).any() and holdout_mask(keys, share=1.0, seed=42).all()


def test_holdout_rejects_a_bad_share():
    with pytest.raises(ValueError, match="share"):
        holdout_mask(pd.Series(["a"]), share=1.5, seed=0)
