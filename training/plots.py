"""Figures logged with every run: calibration, log loss and capture against baselines, hour-of-week
heatmaps, importance. Each `*_figure` builds a matplotlib Figure (so tests can read what it shows) and
the function of the plain name saves it; no pyplot, so nothing global changes at import or per call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sendtime import schema as S

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CAMPAIGN_BASELINE = "campaign_time"


def calibration_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    counts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Figure:
    """Predicted against observed per equal-count bin; the model's points carry their bin's clicks and
    cells, because a bin of 40 clicks and one of 4 deserve different trust."""
    fig = _figure((5.5, 5.5))
    ax = fig.add_subplot(1, 1, 1)
    top = max([max(x.max(), y.max()) for x, y in curves.values()] + [1e-3])
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfect")
    for name, (pred, obs) in curves.items():
        ax.plot(pred, obs, marker="o", label=name)
    model = (counts or {}).get("model")
    if model is not None and "model" in curves:
        pred, obs = curves["model"]
        cells, clicks = model
        for x, y, n, k in zip(pred, obs, cells, clicks, strict=True):
            ax.annotate(
                f"{int(k):,}/{int(n):,}", (x, y), xytext=(4, -10), textcoords="offset points", fontsize=6
            )
    title = "Calibration (test weeks)"
    if model is not None:
        title += "\nmodel points: clicks / cells per bin"
    ax.set(xlabel="predicted P(click within 24 h)", ylabel="observed rate", title=title)
    ax.legend(fontsize=8)
    return fig


def calibration(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    counts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    return _save(calibration_figure(curves, counts), path)


def log_loss_figure(values: dict[str, float]) -> Figure:
    """Each method's log loss minus the best baseline's: the methods differ in the fourth decimal, which
    bars drawn from zero hide."""
    names = list(values)
    baselines = {k: v for k, v in values.items() if k != "model"}
    best = min(baselines, key=baselines.get) if baselines else names[0]
    diff = np.array([values[k] - values[best] for k in names])
    fig = _figure((7, 0.45 * len(names) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(names))[::-1]
    ax.barh(y, diff, color=["C0" if k == "model" else "C7" for k in names])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, names, fontsize=8)
    span = float(np.abs(diff).max()) or 1e-4
    ax.set_xlim(
        -1.35 * span if diff.min() < 0 else -0.1 * span, 1.35 * span if diff.max() > 0 else 0.1 * span
    )
    for yi, k, d in zip(y, names, diff, strict=True):
        ax.text(d, yi, f" {values[k]:.5f} ", va="center", ha="left" if d >= 0 else "right", fontsize=7)
    ax.set(
        title=f"Test log loss minus the best baseline's ({best}, {values[best]:.5f})\nlower is better",
        xlabel="difference in log loss (labels: the log loss itself)",
    )
    ax.title.set_fontsize(9)
    return fig


def log_loss(values: dict[str, float], path: Path) -> Path:
    return _save(log_loss_figure(values), path)


def capture_figure(values: dict[str, float], campaigns: int) -> Figure:
    """Capture per method. The reference (0) is an e-mail at the campaign time; the baseline named
    campaign_time also sends at the campaign time but picks each person's channel by rate, so its bar is
    its own and not the reference's."""
    names = list(values)
    labels = [f"{k} (best channel)" if k == CAMPAIGN_BASELINE else k for k in names]
    fig = _figure((7.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(
        range(len(labels)), [values[k] for k in names], color=["C0" if k == "model" else "C7" for k in names]
    )
    ax.axhline(0, color="black", lw=0.8, label="0: e-mail at the campaign time (the reference)")
    ax.axhline(1, color="C2", lw=0.8, ls="--", label="1: the oracle")
    for i, k in enumerate(names):
        ax.text(i, values[k], f"{values[k]:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set(
        title=f"Share of the oracle's gain over an e-mail at the campaign time ({campaigns} daily 24 h campaigns)",
        ylabel="capture",
    )
    ax.title.set_fontsize(9)
    ax.set_ylim(min(0.0, *values.values()) - 0.05, max(1.0, *values.values()) + 0.25)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def capture(values: dict[str, float], path: Path, campaigns: int) -> Path:
    return _save(capture_figure(values, campaigns), path)


def heatmaps_figure(grids: dict[str, np.ndarray], title: str) -> Figure:
    """Each grid is [2, 168] (e-mail, SMS) over local hour-of-week, all panels on one colour scale so
    that a darker cell means a stronger response wherever it is."""
    values = np.stack([np.asarray(g, dtype=float) for g in grids.values()])
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    fig = _figure((12.5, 1.9 * len(grids) + 0.9), constrained=True)
    axes = fig.subplots(len(grids), 2, squeeze=False)
    image = None
    for r, (name, grid) in enumerate(grids.items()):
        for c, channel in enumerate(S.CHANNELS):
            ax = axes[r, c]
            image = ax.imshow(
                np.asarray(grid[c]).reshape(7, 24), aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax
            )
            ax.set_yticks(range(7), DAYS, fontsize=6)
            ax.set_xticks(range(0, 24, 3), range(0, 24, 3), fontsize=6)
            ax.set_title(f"{name}: {channel}", fontsize=8)
            ax.set_ylabel("local day", fontsize=7)
            ax.set_xlabel("local hour of day", fontsize=7)
    bar = fig.colorbar(image, ax=axes, shrink=0.9)
    bar.set_label("response (1 = the channel's weekly mean)", fontsize=8)
    fig.suptitle(title)
    return fig


def heatmaps(grids: dict[str, np.ndarray], path: Path, title: str) -> Path:
    return _save(heatmaps_figure(grids, title), path)


def importance(names: list[str], gains: np.ndarray, path: Path) -> Path:
    order = np.argsort(gains)
    fig = _figure((6, 0.25 * len(names) + 1))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(np.array(names)[order], gains[order])
    ax.set(title="Feature importance (gain)", xlabel="total gain")
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def _figure(size: tuple[float, float], constrained: bool = False) -> Figure:
    fig = Figure(figsize=size, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
