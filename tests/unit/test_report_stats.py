"""The report's statistics on data small enough to check by hand: bootstrap over people, lift, IPS,
calibration tables, and the plan reader's errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.features.load import DataError
from sendtime.workflows import report_stats as st
from sendtime.workflows.report_join import read_plan


def test_bootstrap_of_a_constant_is_the_constant():
    reps = st.bootstrap_ratios(np.ones(5), np.ones(5), 200, np.random.default_rng(0))
    assert np.all(reps == 1.0)


def test_multinomial_bootstrap_matches_resampling_people():
    """Drawing counts of distinct (clicks, sends) pairs is the same distribution as drawing people."""
    num = np.array([0, 0, 1, 2, 0, 1], float)
    den = np.array([1, 2, 1, 2, 1, 1], float)
    rng = np.random.default_rng(1)
    fast = st.bootstrap_ratios(num, den, 20_000, rng)
    idx = rng.integers(0, len(num), (20_000, len(num)))
    slow = num[idx].sum(1) / den[idx].sum(1)
    assert fast.mean() == pytest.approx(slow.mean(), abs=0.005)
    assert fast.std() == pytest.approx(slow.std(), abs=0.005)
    assert st.ratio(num, den) == pytest.approx(4 / 8)


def test_rate_interval_brackets_the_rate():
    clicks = np.array([1] * 20 + [0] * 80, float)
    iv = st.rate_interval(clicks, np.ones(100), 2000, seed=0)
    assert iv.estimate == pytest.approx(0.2)
    # binomial standard error sqrt(.2 * .8 / 100) = 0.04: a 95% interval about +-0.08
    assert iv.low == pytest.approx(0.12, abs=0.02) and iv.high == pytest.approx(0.28, abs=0.02)
    assert iv.n == 100 and iv.covers(0.2) and not iv.covers(0.5)


def test_lift_difference_relative_and_p_value():
    treat = (np.array([1] * 30 + [0] * 70, float), np.ones(100))
    control = (np.array([1] * 10 + [0] * 90, float), np.ones(100))
    lift = st.lift(treat, control, 4000, seed=0)
    assert lift.absolute.estimate == pytest.approx(0.2)
    assert lift.relative.estimate == pytest.approx(2.0)
    assert lift.absolute.low > 0.05 and lift.absolute.high < 0.35
    # z = 0.2 / sqrt(.3 * .7 / 100 + .1 * .9 / 100) = 3.65: p about 0.0003
    assert lift.p_value == pytest.approx(0.00026, abs=0.0003)
    same = st.lift(treat, treat, 2000, seed=0)
    assert same.absolute.estimate == 0.0 and same.p_value > 0.5


def test_ips_by_hand():
    """Four logged rows: the policy's cell was logged on rows 0 and 2 with propensities 0.5 and 0.25."""
    reward = np.array([1.0, 1.0, 1.0, 0.0])
    propensity = np.array([0.5, 0.9, 0.25, 0.5])
    match = np.array([True, False, True, False])
    iv = st.ips_value(reward, propensity, match, 500, seed=0)
    assert iv.estimate == pytest.approx((1 / 0.5 + 1 / 0.25) / 4)
    assert iv.low <= iv.estimate <= iv.high


def test_ips_is_unbiased_for_a_uniform_logging_policy():
    """Cells drawn uniformly from 4 with known click rates: IPS of "always cell 2" averages to its rate."""
    rates = np.array([0.1, 0.2, 0.5, 0.3])
    rng = np.random.default_rng(3)
    estimates = []
    for _ in range(400):
        cell = rng.integers(0, 4, 500)
        reward = (rng.random(500) < rates[cell]).astype(float)
        estimates.append(st.ips_value(reward, np.full(500, 0.25), cell == 2, 50, seed=0).estimate)
    assert np.mean(estimates) == pytest.approx(0.5, abs=0.01)


def test_ips_refuses_a_matched_row_without_propensity():
    with pytest.raises(ValueError, match="propensity"):
        st.ips_value(np.ones(2), np.array([0.0, 1.0]), np.array([True, True]))


def test_calibration_table_and_error():
    pred = np.array([0.1, 0.1, 0.5, 0.5])
    obs = np.array([0.0, 0.0, 1.0, 0.0])
    table = st.calibration_table(pred, obs, np.array([1, 1, 2, 2]))
    assert table["sends"].tolist() == [2, 2]
    assert table["observed"].tolist() == [0.0, 0.5]
    assert st.calibration_error(table) == pytest.approx((2 * 0.1 + 2 * 0.0) / 4)
    assert (table["low"] <= table["observed"] + 1e-12).all() and (table["high"] >= table["observed"]).all()
    assert sorted(set(st.deciles(np.arange(20.0)))) == list(range(1, 11))


PLAN = {
    "email": ["a@example.com", "b@example.com", ""],
    "phone": ["", "", "+12125550123"],
    "subscriber_id": ["s1", "s2", "s3"],
    "channel": ["email", "email", ""],
    "send_at": ["2026-11-10T12:00:00Z", "2026-11-10T15:00:00Z", ""],
    "expected_engagement": ["0.02", "0.05", "0"],
    "reason": ["holdout: campaign time", "personal history", "no contact"],
    "holdout": ["True", "False", "False"],
    "explored": ["False", "True", "False"],
    "propensity": ["1.0", "0.01", ""],
}


def test_read_plan_types_and_arms(tmp_path):
    path = tmp_path / "plan.csv"
    pd.DataFrame(PLAN).to_csv(path, index=False)
    plan = read_plan(path)
    assert plan["arm"].tolist() == ["holdout", "explored", "optimised"]
    assert plan["planned"].tolist() == [True, True, False]
    assert plan["send_at"].iloc[1] == pd.Timestamp("2026-11-10T15:00:00Z")
    assert plan["propensity"].iloc[1] == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("send_at", "next tuesday", "column send_at: 1 row"),
        ("channel", "fax", "column channel"),
        ("holdout", "maybe", "column holdout"),
        ("propensity", "high", "column propensity"),
    ],
)
def test_read_plan_errors_name_file_and_column(tmp_path, column, value, message):
    frame = pd.DataFrame(PLAN)
    frame.loc[1, column] = value
    path = tmp_path / "plan.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=message) as info:
        read_plan(path)
    assert str(path) in str(info.value)


def test_read_plan_missing_columns(tmp_path):
    path = tmp_path / "plan.parquet"
    pd.DataFrame(PLAN).drop(columns=["propensity", "explored"]).to_parquet(path)
    with pytest.raises(DataError, match="missing column.*explored.*propensity|missing column.*propensity"):
        read_plan(path)
    with pytest.raises(FileNotFoundError):
        read_plan(tmp_path / "none.csv")


def test_poisson_interval_matches_garwoods_bounds():
    assert st.poisson_interval(0) == pytest.approx((0.0, 3.689), abs=1e-3)
    low, high = st.poisson_interval(1)
    assert 0.0 < low <= 0.0253 and high == pytest.approx(5.572, rel=2e-3)
    assert st.poisson_interval(5) == pytest.approx((1.623, 11.668), rel=1e-2)
    assert st.poisson_interval(20) == pytest.approx((12.217, 30.889), rel=1e-2)


def test_ips_interval_stays_open_when_few_matched_rows_clicked():
    # 400 people, 10 explored onto the policy's cell at propensity 0.025, none clicked: the estimate is 0,
    # every bootstrap resample is 0, yet a true value of 2% is entirely plausible after 10 sends
    match = np.zeros(400, bool)
    match[:10] = True
    iv = st.ips_value(np.zeros(400), np.full(400, 0.025), match, 500, seed=0)
    assert iv.estimate == 0.0 and iv.low == 0.0
    assert iv.high == pytest.approx(3.689 * 40 / 400, rel=1e-3)  # 3.69 clicks at weight 40, over 400 people
    assert iv.covers(0.02)


def test_weighted_poisson_interval_is_garwoods_when_weights_are_equal_and_widens_with_a_heavy_row():
    equal = st.weighted_poisson_interval(
        np.r_[np.full(3, 2.0), np.zeros(7)], np.full(10, 2.0)
    )  # 3 of 10 clicked
    low, high = st.poisson_interval(3)
    assert equal == pytest.approx((2 * low, 2 * high), rel=1e-9)
    # one click at weight 1.25 among rows that could have counted at weight 100: far more is plausible
    heavy = st.weighted_poisson_interval(np.array([1.25, 0.0]), np.array([1.25, 100.0]))
    assert heavy[1] > 100.0
