"""What the run's, the report's and the plan's figures show, read from the figure objects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.serving.campaign import EMAIL, SMS, CampaignPlan
from sendtime.serving.plan_report import plan_figure
from sendtime.training import model, plots
from sendtime.workflows import report_plots


def test_log_loss_chart_shows_differences_from_best_baseline():
    values = {"model": 0.10925, "campaign_time": 0.11210, "smoothed_histogram": 0.10873}
    fig = plots.log_loss_figure(values)
    ax = fig.axes[0]
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    assert widths == pytest.approx(sorted([0.10925 - 0.10873, 0.11210 - 0.10873, 0.0]), abs=1e-6)
    lo, hi = ax.get_xlim()
    assert hi - lo < 0.01  # scaled to the differences, not to the log loss itself
    assert "smoothed_histogram" in ax.get_title()
    assert any("0.10925" in t.get_text() for t in ax.texts)


def test_heatmaps_share_one_scale_and_have_colour_bar_and_labels():
    rng = np.random.default_rng(0)
    grids = {"population": rng.random((2, 168)), "subscriber a": 3 * rng.random((2, 168))}
    fig = plots.heatmaps_figure(grids, "title")
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 4
    assert len({im.get_clim() for im in images}) == 1
    lo, hi = images[0].get_clim()
    assert lo == pytest.approx(min(g.min() for g in grids.values()))
    assert hi == pytest.approx(max(g.max() for g in grids.values()))
    panels = [ax for ax in fig.axes if ax.images]
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in panels)
    colour_bars = [ax for ax in fig.axes if not ax.images]
    assert len(colour_bars) == 1 and colour_bars[0].get_ylabel()


def test_training_calibration_labels_clicks_and_cells_per_bin():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1, 0, 1])
    p = np.linspace(0.05, 0.95, 10)
    pred, obs, cells, clicks = model.calibration_bins(y, p, bins=5)
    assert cells.tolist() == [2] * 5 and clicks.tolist() == [0, 1, 1, 2, 1]
    assert np.allclose(model.calibration_curve(y, p, bins=5)[1], obs)
    fig = plots.calibration_figure({"model": (pred, obs)}, {"model": (cells, clicks)})
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["0/2", "1/2", "1/2", "2/2", "1/2"]


def test_report_calibration_labels_counts_per_decile():
    from matplotlib.figure import Figure

    table = pd.DataFrame(
        {"sends": [1200, 800], "clicks": [12, 40], "predicted": [0.01, 0.05], "observed": [0.01, 0.05]}
    )
    table["low"], table["high"] = table["observed"] * 0.8, table["observed"] * 1.2
    ax = Figure().add_subplot(1, 1, 1)
    report_plots.draw_calibration(ax, table)
    assert [t.get_text() for t in ax.texts] == ["12/1,200", "40/800"]


def test_capture_chart_keeps_campaign_time_baseline_apart_from_the_reference():
    fig = plots.capture_figure({"model": 0.8, "campaign_time": 0.05, "smoothed_histogram": 0.3}, 7)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert "campaign_time" not in ticks and any(t.startswith("campaign_time (") for t in ticks)
    assert "over campaign time" not in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("reference" in t for t in legend)


def _plan(channel, hour, caps):
    n = len(channel)
    return CampaignPlan(
        channel=np.array(channel, dtype=np.int8),
        hour=np.array(hour, dtype=np.int64),
        window_start=np.array(hour, dtype=np.int64),
        window_end=np.array(hour, dtype=np.int64) + 1,
        expected=np.full(n, 0.01),
        reason=np.array(["personal history"] * n, dtype=object),
        holdout=np.zeros(n, bool),
        explored=np.zeros(n, bool),
        propensity=np.ones(n),
        caps=caps,
    )


def test_plan_plot_draws_each_cap_on_its_own_channel():
    hours = pd.date_range("2026-11-03T05:00Z", periods=4, freq="h")
    plan = _plan([EMAIL, EMAIL, EMAIL, SMS, SMS, -1], [0, 0, 1, 0, 2, -1], {EMAIL: 2, SMS: 1})
    fig = plan_figure(plan, hours)
    email_ax, sms_ax = fig.axes
    assert [p.get_height() for p in email_ax.patches] == [2, 1, 0, 0]
    assert [p.get_height() for p in sms_ax.patches] == [1, 0, 1, 0]
    for ax, cap in ((email_ax, 2), (sms_ax, 1)):
        flat = [line for line in ax.lines if len(set(line.get_ydata())) == 1]
        assert [line.get_ydata()[0] for line in flat] == [cap]
        assert "cap" in flat[0].get_label()


def test_plan_plot_without_caps_has_no_cap_lines():
    hours = pd.date_range("2026-11-03T05:00Z", periods=3, freq="h")
    fig = plan_figure(_plan([EMAIL, SMS], [0, 1], {}), hours)
    assert all(not ax.lines for ax in fig.axes)
