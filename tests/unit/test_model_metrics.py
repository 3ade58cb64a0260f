"""Model metrics, the promotion gate and shrinkage overrides on tiny hand-checkable inputs."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from sendtime.features.strengths import Shrinkage
from sendtime.training import examples, model, registry


def _calibrated(rates=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), per_bin=100):
    """One equal-count bin per rate: every prediction in a bin equals the bin's observed positive rate."""
    p = np.repeat(rates, per_bin)
    y = np.concatenate([(np.arange(per_bin) < round(r * per_bin)).astype(int) for r in rates])
    return y, p


def test_calibration_error_is_zero_when_predictions_match_observed_rates():
    y, p = _calibrated()
    assert model.calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_calibration_error_is_the_constant_offset():
    y, p = _calibrated()
    assert model.calibration_error(y, p + 0.03) == pytest.approx(0.03)
    assert model.calibration_error(y, p - 0.02) == pytest.approx(0.02)


def test_calibration_error_pools_within_a_bin():
    # one bin: mean prediction 0.5, observed rate 0.25 -> 0.25 however the predictions spread
    y = np.array([1, 0, 0, 0])
    p = np.array([0.2, 0.4, 0.6, 0.8])
    assert model.calibration_error(y, p, bins=1) == pytest.approx(0.25)


def test_metrics_keys_and_values():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.2, 0.8, 0.2, 0.8])
    m = model.metrics(y, p)
    assert set(m) == {"log_loss", "calibration_error", "mean_prediction", "positive_rate", "auc"}
    assert m["log_loss"] == pytest.approx(-math.log(0.8))
    assert m["auc"] == pytest.approx(1.0)
    assert m["mean_prediction"] == pytest.approx(0.5)
    assert m["positive_rate"] == pytest.approx(0.5)


def test_metrics_auc_is_nan_with_one_outcome_and_probabilities_are_clipped():
    m = model.metrics(np.array([0, 0, 0]), np.array([0.0, 0.1, 0.2]))
    assert math.isnan(m["auc"])
    assert math.isfinite(m["log_loss"])


@pytest.mark.parametrize(
    ("new", "champion", "margin", "promoted"),
    [
        (0.2, None, 0.0, True),  # no champion yet: the first model always wins
        (0.2, None, 0.5, True),
        (0.099, 0.100, 0.0, True),
        (0.100, 0.100, 0.0, False),  # a tie is not an improvement
        (0.101, 0.100, 0.0, False),
        (0.096, 0.100, 0.05, False),  # better, but by less than the 5% margin (needs < 0.095)
        (0.0949, 0.100, 0.05, True),
    ],
)
def test_gate(new, champion, margin, promoted):
    assert registry.gate(new, champion, margin) is promoted


SHRINKAGE = Shrinkage.from_dict(
    {
        "email": {
            "cohort_strength": 100.0,
            "alpha_daily": 8.0,
            "alpha_weekly": 32.0,
            "beta": 0.25,
            "blur": 0.15,
        },
        "sms": {"cohort_strength": 200.0, "alpha_daily": 4.0, "alpha_weekly": 1e6, "beta": 0.5, "blur": 0.0},
    }
)


def test_shrinkage_overrides_replace_only_the_given_keys():
    out = examples.apply_shrinkage_overrides(SHRINKAGE, {"sms": {"alpha_daily": 16, "beta": 0.0}})
    assert out["sms"] == replace(SHRINKAGE["sms"], alpha_daily=16.0, beta=0.0)
    assert out["email"] == SHRINKAGE["email"]
    assert SHRINKAGE["sms"].alpha_daily == 4.0  # the input is not modified
    assert examples.apply_shrinkage_overrides(SHRINKAGE, None) is SHRINKAGE


def test_shrinkage_overrides_name_unknown_channels_and_keys():
    with pytest.raises(ValueError, match="unknown channel 'push'"):
        examples.apply_shrinkage_overrides(SHRINKAGE, {"push": {"alpha_daily": 1.0}})
    with pytest.raises(ValueError, match="alpha_hourly"):
        examples.apply_shrinkage_overrides(SHRINKAGE, {"email": {"alpha_hourly": 1.0}})
