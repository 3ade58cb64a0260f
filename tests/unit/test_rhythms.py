"""Typical daily rhythms: the mixture finds the habits a population has, and a few events pick one."""

import numpy as np
import pytest

from sendtime.features.rhythms import Answers, fit_rhythms

PEAKS = (7, 12, 20)


def _bump(peak: int, width: float = 1.2) -> np.ndarray:
    d = (np.arange(24) - peak + 12) % 24 - 12
    shape = np.exp(-0.5 * (d / width) ** 2) + 0.01
    return shape / shape.sum()


def _people(n_per: int, events: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, kinds = [], []
    for k, peak in enumerate(PEAKS):
        rows.append(rng.multinomial(events, _bump(peak), size=n_per).astype(float))
        kinds += [k] * n_per
    return np.concatenate(rows), np.array(kinds)


def test_mixture_recovers_the_population_rhythms():
    x, _ = _people(300, 8)
    rhythms = fit_rhythms(x, np.zeros(len(x), int), 1, k=3)
    assert rhythms is not None
    found = sorted(int(np.argmax(s)) for s in rhythms.shapes)
    assert found == sorted(PEAKS)
    assert np.allclose(rhythms.shapes.sum(axis=1), 1.0)
    assert np.allclose(rhythms.weights, 1 / 3, atol=0.05)


def test_two_events_pick_a_rhythm_and_no_events_give_the_cohort_blend():
    x, _ = _people(300, 8)
    cohorts = np.zeros(len(x), int)
    rhythms = fit_rhythms(x, cohorts, 1, k=3)
    lunch_clicks = np.zeros((1, 24))
    lunch_clicks[0, [12, 13]] = 1.0  # two clicks around lunch
    picked = rhythms.posterior_mean([Answers(lunch_clicks)], np.zeros(1, int), temper=1.0)[0]
    assert int(np.argmax(picked)) == 12
    # the whole lunch shape is lent, not just the two hours: 11:00 beats the evening peak
    assert picked[11] > picked[20]
    blend = rhythms.posterior_mean([Answers(np.zeros((1, 24)))], np.zeros(1, int), temper=1.0)[0]
    assert blend == pytest.approx(rhythms.weights[0] @ rhythms.shapes)


def test_cohort_weights_follow_their_members():
    x, kinds = _people(300, 8)
    cohorts = (kinds == 2).astype(int)  # cohort 1 is the evening people
    rhythms = fit_rhythms(x, cohorts, 2, k=3)
    evening = int(np.argmax([s[20] for s in rhythms.shapes]))
    assert rhythms.weights[1, evening] > 0.9
    assert rhythms.weights[0, evening] < 0.1


def test_too_few_people_with_data_fit_nothing():
    x = np.zeros((40, 24))
    x[:3, 12] = 5.0
    assert fit_rhythms(x, np.zeros(40, int), 1, k=3) is None
