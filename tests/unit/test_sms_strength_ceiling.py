"""The oracle sweep's plans keep the model's channel levels and e-mail hours, and rank SMS hours by
the rebuilt profile's shape (the population's for people without an SMS profile)."""

from types import SimpleNamespace

import numpy as np

from sendtime.experiments.sms_strength_ceiling import sms_at_hours, sms_hours_from


def test_sms_hours_follow_the_shape_at_the_models_level():
    rng = np.random.default_rng(1)
    model, shape = rng.random((5, 2, 8)), rng.random((5, 8))
    mask = np.ones((5, 2, 8), dtype=bool)
    mask[2, 1, shape[2].argmax()] = False  # the shape's favourite SMS hour of person 2 is not allowed
    grid = sms_hours_from(model, shape, mask)

    def best(g):
        g = np.where(mask, g, -np.inf)
        return g.argmax(axis=2), g.max(axis=2)

    (hour, level), (m_hour, m_level) = best(grid), best(model)
    assert np.allclose(level, m_level)  # the channel choice is the model's
    assert (hour[:, 0] == m_hour[:, 0]).all()
    assert (hour[:, 1] == np.where(mask[:, 1], shape, -np.inf).argmax(axis=1)).all()
    assert hour[2, 1] != shape[2].argmax()
    assert np.array_equal(grid[:, 0], model[:, 0])


def test_people_without_an_sms_row_take_the_population_shape():
    shape = np.zeros((2, 2, 168))
    shape[0, 1, 10], shape[1, 1, 20] = 1.0, 1.0
    population = np.zeros((2, 168))
    population[1, 30] = 1.0
    profiles = SimpleNamespace(population_shape=population)
    audience = SimpleNamespace(rows=np.array([[0, 1], [1, -1], [0, 0]]))
    how = np.array([[10, 20, 30]] * 3, dtype=np.int16)
    got = sms_at_hours(profiles, audience, how, shape)
    assert np.array_equal(got, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
