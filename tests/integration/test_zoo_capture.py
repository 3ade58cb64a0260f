"""A zoo world trains end to end: `sendtime train` on a tiny 8-week export reports capture, and the
benchmark's rows carry the baselines issue 12 asks for (real MLflow store, real LightGBM)."""

from __future__ import annotations

import numpy as np
import pytest

from sendtime.experiments.bench_capture import BASELINES, markdown, run_one

pytestmark = pytest.mark.integration


def test_a_tiny_zoo_world_trains_and_gets_a_capture_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("SENDTIME_HOME", str(tmp_path / "unused"))  # run_one points it at its own store
    row = run_one(seed=1, subscribers=400, days=56, cache=tmp_path, zoo="sms_first")
    assert row["world"] == "sms_first" and row["split"].startswith(
        "split design (chosen for the data span)"
    )  # the default config trains 8 weeks
    for key in ("capture", "capture_budget30", *(f"{b}_capture" for b in BASELINES)):
        assert np.isfinite(row[key]), key
        assert -2.0 < row[key] <= 1.0 + 1e-9, key  # a share of the oracle's gain over campaign time
    assert row["capture"] > row["campaign_time_capture"]
    assert 0 < row["log_loss"] < 1
    assert (tmp_path / "world-zoo-sms_first-400-56-1" / "ground_truth" / "response.npy").exists()
    table = markdown(__import__("pandas").DataFrame([row]))
    assert "| sms_first | 1 | 400 x 56 |" in table
