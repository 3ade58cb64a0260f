"""Figures logged with every run: calibration, capture against baselines, hour-of-week heatmaps, importance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sendtime import schema as S  # noqa: E402

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def calibration(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    top = max([max(x.max(), y.max()) for x, y in curves.values()] + [1e-3])
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfect")
    for name, (pred, obs) in curves.items():
        ax.plot(pred, obs, marker="o", label=name)
    ax.set(xlabel="predicted P(click within 24 h)", ylabel="observed rate", title="Calibration (test weeks)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def bars(values: dict[str, float], path: Path, title: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(values)
    ax.bar(names, [values[k] for k in names], color=["C0" if k == "model" else "C7" for k in names])
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=30)
    for i, k in enumerate(names):
        ax.text(i, values[k], f"{values[k]:.3f}", ha="center", va="bottom", fontsize=8)
    return _save(fig, path)


def heatmaps(grids: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Each grid is [2, 168] (e-mail, SMS) over local hour-of-week."""
    fig, axes = plt.subplots(len(grids), 2, figsize=(12, 1.9 * len(grids) + 0.6), squeeze=False)
    for r, (name, grid) in enumerate(grids.items()):
        for c, channel in enumerate(S.CHANNELS):
            ax = axes[r, c]
            ax.imshow(np.asarray(grid[c]).reshape(7, 24), aspect="auto", cmap="viridis")
            ax.set_yticks(range(7), DAYS, fontsize=6)
            ax.set_xticks(range(0, 24, 3), range(0, 24, 3), fontsize=6)
            ax.set_title(f"{name}: {channel}", fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def importance(names: list[str], gains: np.ndarray, path: Path) -> Path:
    order = np.argsort(gains)
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(names) + 1))
    ax.barh(np.array(names)[order], gains[order])
    ax.set(title="Feature importance (gain)", xlabel="total gain")
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
