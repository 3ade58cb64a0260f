"""Loading a version leaves no MLflow download thread behind: while one lives, forking workers is not
safe, and the first `schedule` after a download would resolve a large audience on one core."""

from __future__ import annotations

import shutil
import threading

import pytest

from sendtime import forking, home
from sendtime.training import registry

pytestmark = pytest.mark.integration


def test_loading_a_version_leaves_forking_possible(trained_champion, test_settings):
    shutil.rmtree(home.snapshots_dir(), ignore_errors=True)  # the snapshot is downloaded again
    champ = registry.load_version(test_settings.training.registered_model)
    assert (champ.snapshot_dir / "meta.json").exists()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("Mlflow")]
    assert alive == []
    assert forking.can_fork() or any(t.name not in forking.IDLE_THREADS for t in threading.enumerate())


def test_a_version_loads_again_after_its_threads_were_released(trained_champion, test_settings):
    shutil.rmtree(home.snapshots_dir(), ignore_errors=True)
    first = registry.load_version(test_settings.training.registered_model)
    shutil.rmtree(home.snapshots_dir(), ignore_errors=True)  # the same repositories download again
    again = registry.load_version(test_settings.training.registered_model)
    assert again.version == first.version and (again.snapshot_dir / "meta.json").exists()
