"""The split design adapts to the data span; settings given in a config win; below 21 days: profile-only."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import load_settings
from sendtime.training import examples, split_design
from sendtime.training.split_design import MIN_MODEL_DAYS, choose


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (21.0, (1, 3.5, 3.5)),  # the least a model is trained on
        (20.995, (1, 3.5, 3.5)),  # a "3-week" export ending minutes before midnight
        (24.0, (1, 3.5, 3.5)),  # the rest lengthens the history
        (28.0, (2, 3.5, 3.5)),  # two weeks of labelled sends first
        (31.0, (2, 5.0, 5.0)),  # then a full week of validation and of test
        (35.0, (2, 7.0, 7.0)),
        (41.9, (2, 7.0, 7.0)),
        (42.0, (3, 7.0, 7.0)),  # then more snapshots
        (49.0, (4, 7.0, 7.0)),
        (55.99, (4, 10.5, 10.5)),  # eight weeks (issue 11): then longer periods
        (63.0, (4, 14.0, 14.0)),  # from 63 days: the design used before
        (84.0, (4, 14.0, 14.0)),
        (365.0, (4, 14.0, 14.0)),
    ],
)
def test_design_for_span(span, expected):
    d = choose(span)
    assert not d.profile_only and d.given == ()
    assert (d.snapshots, d.validation_days, d.test_days) == expected
    assert d.history_days >= split_design.HISTORY_DAYS - split_design.SLACK_DAYS


@pytest.mark.parametrize("span", [0.0, 1.0, 7.0, 13.99, 14.0, 20.0, 20.95])
def test_below_21_days_is_profile_only(span):
    d = choose(span)
    assert d.profile_only and (d.snapshots, d.validation_days, d.test_days) == (0, 0.0, 0.0)
    assert "profile-only" in d.describe() and f"{span:.1f} days" in d.describe()


def test_invariants_over_many_spans():
    """Every span from 0 to 120 days by the hour: a design that fits, whole half-days, and nothing shrinks
    as the data grow."""
    last = (0, 0.0, 0.0)
    for span in np.arange(0, 120, 1 / 24):
        d = choose(float(span))
        assert d.profile_only == (span + split_design.SLACK_DAYS < MIN_MODEL_DAYS - 1e-9), span
        if d.profile_only:
            continue
        assert 1 <= d.snapshots <= split_design.MAX_SNAPSHOTS
        assert d.validation_days == d.test_days
        assert split_design.MIN_PERIOD_DAYS <= d.test_days <= split_design.MAX_PERIOD_DAYS
        assert (d.test_days / split_design.STEP_DAYS).is_integer()
        used = 7 * d.snapshots + d.validation_days + d.test_days
        assert used + split_design.HISTORY_DAYS <= span + split_design.SLACK_DAYS + 1e-9, span
        now = (d.snapshots, d.validation_days, d.test_days)
        assert all(a >= b for a, b in zip(now, last, strict=True)), (span, now, last)
        last = now


def test_given_settings_win_and_the_rest_adapts():
    assert choose(84.0, snapshots=3).snapshots == 3
    assert (choose(84.0, snapshots=3).test_days, choose(84.0, snapshots=3).given) == (14.0, ("snapshots",))
    d = choose(56.0, snapshots=2, validation_days=5, test_days=9)
    assert (d.snapshots, d.validation_days, d.test_days) == (2, 5, 9)
    assert "from the config" in d.describe()
    d = choose(42.0, test_days=10)  # the free ones fill what is left
    assert (d.test_days, d.validation_days, d.snapshots) == (10, 7.0, 2)
    assert "training.test_days from the config" in d.describe()
    d = choose(30.0, validation_days=3)
    assert (d.validation_days, d.test_days, d.snapshots) == (3, 6.0, 2)


def test_given_settings_that_do_not_fit_fail_with_the_setting_named():
    with pytest.raises(ValueError, match=r"training\.snapshots is set in the config"):
        choose(42.0, snapshots=5)
    with pytest.raises(ValueError, match=r"training\.snapshots, training\.validation_days are set"):
        choose(42.0, snapshots=4, validation_days=14)
    with pytest.raises(ValueError, match="remove them to let sendtime choose"):
        choose(14.0, snapshots=1)  # given: no profile-only fallback


def test_eight_weeks_get_boundaries_with_the_default_settings():
    """Issue 11: an 8-week export used to stop with "too short for 4 weekly training snapshots"."""
    start = pd.Timestamp("2026-08-31 00:05", tz="UTC")
    base = SimpleNamespace(span=(start, start + pd.Timedelta(days=55.99)))
    b = examples.boundaries(base, load_settings())
    assert b["end"] - b["test"] == pd.Timedelta(days=10.5)
    assert b["test"] - b["validation"] == pd.Timedelta(days=10.5)
    assert b["validation"] - b["first_snapshot"] == pd.Timedelta(days=28)
    assert b["first_snapshot"] - b["start"] >= pd.Timedelta(days=7) - pd.Timedelta(hours=1)
    explicit = load_settings(overrides={"training": {"snapshots": 4, "validation_days": 14, "test_days": 14}})
    with pytest.raises(ValueError, match="too short for 4 weekly training snapshots"):
        examples.boundaries(base, explicit)


def test_too_short_for_a_model_says_profile_only():
    start = pd.Timestamp("2026-08-31", tz="UTC")
    base = SimpleNamespace(span=(start, start + pd.Timedelta(days=14)))
    with pytest.raises(ValueError, match="profile-only decision maker"):
        examples.boundaries(base, load_settings())


def test_params_name_the_design():
    p = choose(56.0).params()
    assert p["split_snapshots"] == 4 and p["split_test_days"] == 10.5 and p["split_given"] == "none"
    assert choose(10.0).params()["split_profile_only"] is True
