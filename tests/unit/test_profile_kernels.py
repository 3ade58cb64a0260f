"""The profile kernels on tiny hand-checkable inputs: exposure, the weekday clock, smoothing, strengths."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.features.exposure import (
    KERNEL_HOURS,
    age_weight,
    circular_convolve,
    day_types,
    delay_kernel,
    evidence,
    hour_counts,
    normalise,
    relative_weights,
    response_kernel,
)
from sendtime.features.heldout import heldout_loglik
from sendtime.features.prepare import FeatureBase
from sendtime.features.priors import blur, fold_types, to_daily, to_weekly
from sendtime.features.strengths import DEFAULT, ChannelStrengths, Shrinkage

H = S.HOURS_PER_WEEK
T0 = pd.Timestamp("2026-03-02T00:00Z")  # a Monday


def _base(engagements: list[tuple], sends: list[tuple] = ()) -> FeatureBase:
    """One or two people; events as (sub, channel, hour of the week, days before T0 + 7)."""

    def frame(rows, extra):
        out = pd.DataFrame(rows, columns=["sub", "channel", "how", "days"])
        out["at"] = T0 + pd.to_timedelta(out["days"], unit="D")
        return out.drop(columns="days").assign(**extra)

    return FeatureBase(
        subscribers=pd.DataFrame({S.SUBSCRIBER_ID: ["a", "b"]}),
        addresses=pd.DataFrame(),
        sends=frame(list(sends), {"triggered": False}),
        engagements=frame(engagements, {"kind": 1, "delay_h": 0.5}),
        optouts=pd.DataFrame(),
        has_sends=bool(len(sends)),
    )


# ------------------------------------------------------------------------------------------ kernels
def test_delay_kernel_is_the_survival_of_the_observed_delays():
    # 20 answers after half an hour and 20 after two and a half hours on e-mail
    eng = pd.DataFrame({"channel": [0] * 40, "delay_h": [0.5] * 20 + [2.5] * 20})
    kernel = delay_kernel(eng)
    assert kernel.shape == (2, KERNEL_HOURS)
    assert kernel[0, :4].tolist() == pytest.approx([1.0, 0.5, 0.5, 0.0])
    assert kernel[0, 4:].sum() == 0
    # SMS has too few delays (< 20): the mild default, a one-hour exponential decay
    assert kernel[1, :3].tolist() == pytest.approx([1.0, np.exp(-1), np.exp(-2)])


def test_response_kernel_is_the_delay_density_relative_to_the_first_hour():
    survival = np.array([1.0, 0.5, 0.5, 0.0])
    assert response_kernel(survival).tolist() == pytest.approx([1.0, 0.0, 1.0, 0.0])


def test_circular_convolve_looks_back_for_exposure_and_ahead_for_response():
    kernel = np.array([1.0, 0.5])
    last = np.zeros(H)
    last[H - 1] = 1.0  # a send on Sunday 23:00 is still pending on Monday 00:00 (the week wraps)
    back = circular_convolve(last, kernel, forward=False)
    assert back[H - 1] == pytest.approx(1.0) and back[0] == pytest.approx(0.5)
    assert back[1 : H - 1] == pytest.approx(np.zeros(H - 2), abs=1e-12)
    first = np.zeros(H)
    first[0] = 1.0  # activity at Monday 00:00 is reached by a send an hour earlier
    ahead = circular_convolve(first, kernel, forward=True)
    assert ahead[0] == pytest.approx(1.0) and ahead[H - 1] == pytest.approx(0.5)
    assert (back >= 0).all() and (ahead >= 0).all()


def test_counts_weights_and_normalising():
    counts = hour_counts(
        np.array([0, 0, 1]), np.array([0, 0, 1]), np.array([5, 5, 7]), np.array([1, 2, 3]), 2
    )
    assert counts.shape == (2, 2, H)
    assert counts[0, 0, 5] == 3.0 and counts[1, 1, 7] == 3.0 and counts.sum() == 6.0
    at = pd.Series([T0 - pd.Timedelta(days=30), T0])
    assert age_weight(at, T0, 30.0).tolist() == pytest.approx([0.5, 1.0])
    assert normalise(np.array([[1.0, 3.0], [0.0, 0.0]])).tolist() == [[0.25, 0.75], [0.5, 0.5]]


def test_evidence_without_sends_is_the_plain_count():
    base = _base([(0, 0, 9, 0), (0, 0, 9, 1), (1, 1, 20, 2)])
    ev = evidence(base, delay_kernel(base.engagements), T0 + pd.Timedelta(days=7))
    assert ev.hourly[0, 0, 9] == 2.0 and ev.hourly[1, 1, 20] == 1.0
    np.testing.assert_array_equal(ev.corrected, ev.hourly)
    assert ev.counts.tolist() == [[2.0, 0.0], [0.0, 1.0]]
    # only events before `end`, from `start` on
    later = evidence(
        base, delay_kernel(base.engagements), T0 + pd.Timedelta(days=7), start=T0 + pd.Timedelta(days=1)
    )
    assert later.counts.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_evidence_corrects_engagement_for_exposure():
    """Sent five times at 09:00 and once at 20:00, answered once at each: the rare hour weighs more."""
    sends = [(0, 0, 9, d) for d in range(5)] + [(0, 0, 20, 0)]
    base = _base([(0, 0, 9, 0), (0, 0, 20, 1)], sends)
    kernel = np.zeros((2, KERNEL_HOURS))
    kernel[:, 0] = 1.0  # a message is pending only in the hour it was sent
    ev = evidence(base, kernel, T0 + pd.Timedelta(days=7))
    floor = 0.05 * 6 / H + 1e-9  # EXPOSURE_FLOOR x the mean exposure, everywhere
    assert ev.exposure[0, 0, 9] == pytest.approx(5 + floor) and ev.exposure[0, 0, 20] == pytest.approx(
        1 + floor
    )
    ratio = np.array([1 / (5 + floor), 1 / (1 + floor)])
    assert ev.corrected[0, 0, [9, 20]] == pytest.approx(2 * ratio / ratio.sum())  # still two engagements
    assert ev.corrected[0, 0].sum() == pytest.approx(2.0)


# ------------------------------------------------------------------------------------- weekday clock
def test_day_types_and_folding_with_a_weekend_shift():
    week = np.zeros(H)
    week[0 * 24 + 9] = 1.0  # Monday 09:00
    week[5 * 24 + 11] = 1.0  # Saturday 11:00
    types = day_types(week)
    assert types.shape == (2, 24) and types[0, 9] == 1.0 and types[1, 11] == 1.0
    assert fold_types(types)[[9, 11]].tolist() == [1.0, 1.0]  # no shift: the days pooled as they are
    assert fold_types(types, 2)[9] == 2.0  # two hours later at the weekend: Saturday 11:00 ~ weekday 09:00
    day = np.zeros(24)
    day[9] = 1.0
    laid = to_weekly(day, 2)
    assert laid[5 * 24 + 11] == 1.0 and laid[6 * 24 + 11] == 1.0 and laid[9] == 1.0 and laid.sum() == 7.0


def test_weekend_shift_folds_onto_the_weekday_clock_and_back():
    """Folding the week onto the weekday clock is the transpose of laying a day over the week, so the
    held-out score of a folded count is the score of the week; shift 0 is plain pooling of the days."""
    rng = np.random.default_rng(0)
    week, day = rng.random((3, 2, S.HOURS_PER_WEEK)), rng.random((3, 2, 24))
    shifts = np.array([2, -1])
    assert np.isclose((to_daily(week, shifts) * day).sum(), (week * to_weekly(day, shifts)).sum())
    laid = to_weekly(day, shifts)
    np.testing.assert_allclose(laid[:, 0, 5 * 24 + 9], day[:, 0, 7])  # Saturday 09:00 ~ weekday 07:00
    np.testing.assert_allclose(laid[:, 1, 6 * 24 + 9], day[:, 1, 10])
    np.testing.assert_allclose(laid[:, :, :24], day)
    np.testing.assert_allclose(to_daily(week, 0), week.reshape(3, 2, 7, 24).sum(axis=2))


def test_blur_shares_an_hour_with_its_neighbours_around_the_clock():
    x = np.zeros(24)
    x[0] = 1.0
    out = blur(x, 0.25)
    assert out[[23, 0, 1]].tolist() == pytest.approx([0.25, 0.5, 0.25]) and out.sum() == pytest.approx(1.0)
    assert blur(x, 0.0) is x


def test_heldout_loglik_of_a_uniform_shape():
    base = _base([(0, 0, 9, 0), (0, 0, 30, 1)])
    held = evidence(base, delay_kernel(base.engagements), T0 + pd.Timedelta(days=7))
    shape = np.full((2, H), 1.0 / H)
    assert heldout_loglik(shape, held, np.array([0]), 0) == pytest.approx(np.log(1.0 / H))


# ---------------------------------------------------------------------------------------- strengths
def test_strengths_keep_the_stored_json_form():
    stored = {  # as every snapshot's meta.json and MLflow data.json hold it
        "email": dict(
            DEFAULT.to_dict(), rhythm_types=6.0, rhythm_pooled=1.0, weekend_shift=2.0, heldout_rows=40
        ),
        "sms": {"cohort_strength": 24.0, "alpha_daily": 4.0, "alpha_weekly": 1e6, "beta": 0.5, "blur": 0.0},
    }
    shrinkage = Shrinkage.from_dict(stored)
    assert shrinkage[S.EMAIL].rhythm_key == (6, True) and shrinkage[S.EMAIL].weekend_shift == 2
    assert shrinkage.of(1) is shrinkage[S.SMS] and shrinkage[S.SMS].trigger_weight == 0.0  # a default
    assert shrinkage.to_dict()["email"] == stored["email"]
    assert Shrinkage.from_dict(shrinkage.to_dict()) == shrinkage
    assert "heldout_loglik" not in shrinkage.to_dict()["sms"]  # unset diagnostics are not written


def test_strengths_name_what_they_do_not_know():
    with pytest.raises(ValueError, match="alpha_hourly"):
        ChannelStrengths.from_dict({"alpha_hourly": 1.0})
    with pytest.raises(ValueError, match="push"):
        Shrinkage.from_dict({"push": {}})
    with pytest.raises(KeyError):
        Shrinkage()["push"]
    assert replace(DEFAULT, rhythm_types=3, rhythm_weight=0.5).uses_rhythms and not DEFAULT.uses_rhythms


def test_recency_reweights_a_persons_events_but_keeps_their_count():
    """58 events over six years at a 90-day half life counted as about 1 when the weights were absolute;
    relative to the person they still count 58, the newest weighing most."""
    age_days = np.linspace(200, 6 * 365, 58)
    absolute = np.power(0.5, age_days / 90.0)
    assert absolute.sum() < 3
    groups = np.r_[np.zeros(58, dtype=np.int64), np.ones(3, dtype=np.int64)]
    w = relative_weights(groups, np.r_[absolute, [1e-30, 1e-30, 1e-30]], 3)
    assert w[:58].sum() == pytest.approx(58) and w[58:].sum() == pytest.approx(3)
    assert np.all(np.diff(w[:58]) < 0)  # the order by age is kept
    np.testing.assert_allclose(w[58:], 1.0)  # a person whose events are all equally old: 1 each
