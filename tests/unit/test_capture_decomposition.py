"""The swapped plans take the hour ranking from one grid and the channel level from the other."""

import numpy as np

from sendtime.experiments.capture_decomposition import PLANS, swapped_plans


def test_each_plan_takes_hours_and_levels_from_the_grid_it_names():
    rng = np.random.default_rng(0)
    model, truth, population = (rng.random((4, 2, 6)) for _ in range(3))
    mask = np.ones((4, 2, 6), dtype=bool)
    mask[0, 1, truth[0, 1].argmax()] = False  # the truth's best SMS hour of person 0 is not allowed
    plans = swapped_plans(model, truth, population, mask)
    assert list(plans) == list(PLANS)

    def best(grid):
        g = np.where(mask, grid, -np.inf)
        return g.argmax(axis=2), g.max(axis=2)

    (m_hour, m_level), (t_hour, t_level), (p_hour, _) = best(model), best(truth), best(population)
    hour, level = best(plans["truth shape, model level"])
    assert (hour == t_hour).all() and np.allclose(level, m_level)
    hour, level = best(plans["model shape, truth level"])
    assert (hour == m_hour).all() and np.allclose(level, t_level)
    hour, level = best(plans["population shape"])
    assert (hour == p_hour).all() and np.allclose(level, m_level)
    sms = plans["truth SMS shape"]
    assert np.array_equal(sms[:, 0], model[:, 0]) and (best(sms)[0][:, 1] == t_hour[:, 1]).all()
    email = plans["truth e-mail shape"]
    assert np.array_equal(email[:, 1], model[:, 1]) and (best(email)[0][:, 0] == t_hour[:, 0]).all()
    assert plans["model"] is model
