"""Shared fixtures: an isolated SENDTIME_HOME per test session and, for integration tests, a real
simulated world with a real trained champion in a real MLflow store (built once per session).

Test tiers (DESIGN.md): a test is `integration` when it lives in tests/integration or uses the trained
champion or its simulated world (wherever it lives), `spark` when it lives in tests/spark. The default
`pytest` run leaves both out (pyproject's addopts); `make test`, what CI runs, takes every tier but
`slow`; `make test-all` takes them all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports lightgbm: no spinning threads

TESTS = Path(__file__).resolve().parent
TIER_OF_FOLDER = {"integration": "integration", "spark": "spark"}
# fixtures that train a real model in a real MLflow store (or simulate the world it is trained on)
INTEGRATION_FIXTURES = {"trained_champion", "small_world"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_collection_modifyitems(config, items):
    for item in items:
        try:
            folder = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:  # a test outside tests/ (none today)
            folder = ""
        tier = TIER_OF_FOLDER.get(folder)
        if tier is None and INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            tier = "integration"
        if tier is not None and tier not in {m.name for m in item.iter_markers()}:
            item.add_marker(getattr(pytest.mark, tier))


def pytest_report_header(config):
    return (
        "tiers: plain `pytest` runs the fast tier; -m 'not slow' adds integration and spark "
        "(make test, CI); -m '' runs everything (make test-all)"
    )


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("sendtime-home")
    old = os.environ.get("SENDTIME_HOME")
    os.environ["SENDTIME_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home
    if old is None:
        os.environ.pop("SENDTIME_HOME", None)
    else:
        os.environ["SENDTIME_HOME"] = old


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """A simulated data folder (with ground truth): 600 people, 70 days."""
    from sendtime.experiments.simulate import simulate

    out = tmp_path_factory.mktemp("world")
    simulate(out, subscribers=600, days=70, seed=3)
    return out


@pytest.fixture(scope="session")
def test_settings():
    """Settings sized for small worlds: fewer snapshots and rounds, so the suite stays fast."""
    from sendtime.configs.settings import load_settings

    return load_settings(overrides={"training": {"snapshots": 3, "num_boost_round": 120}})


@pytest.fixture(scope="session")
def trained_champion(session_home, small_world, test_settings):
    """`sendtime train` on the small world: a registered version with the champion alias."""
    from sendtime.workflows.train import train

    result = train(small_world, test_settings, progress=False, echo=lambda *_: None)
    assert result.promoted
    return result
