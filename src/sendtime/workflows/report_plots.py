"""The report's figures: arm rates and off-policy values with intervals, calibration by decile, and realised
against predicted engagement per send hour. Each panel is drawn on a given axis, so the same drawing makes
the single figures and the overview the README shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _bars(ax, labels, estimates, lows, highs, colors, title: str) -> None:
    x = np.arange(len(labels))
    est = np.asarray(estimates, float)
    err = np.vstack([est - np.asarray(lows, float), np.asarray(highs, float) - est])
    ax.bar(x, est, color=colors, alpha=0.8)
    ax.errorbar(
        x, est, yerr=np.clip(np.nan_to_num(err), 0, None), fmt="none", ecolor="black", capsize=4, lw=1
    )
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("clicks within 24 h per send")
    ax.set_title(title, fontsize=10)


def draw_lift(ax, arms: pd.DataFrame, lift, off_policy: dict) -> None:
    """Measured click rate per arm (95% bootstrap intervals), then the off-policy values."""
    labels, est, lo, hi, colors = [], [], [], [], []
    palette = {"optimised": "tab:green", "holdout": "tab:gray", "explored": "tab:orange"}
    for arm, row in arms.iterrows():
        if row["measured"] > 0:
            labels.append(f"{arm} (n={int(row['measured']):,})")
            est.append(row["click_rate"])
            lo.append(row["click_low"])
            hi.append(row["click_high"])
            colors.append(palette.get(arm, "tab:blue"))
    for name, interval in off_policy.items():
        labels.append(f"IPS: {name}")
        est.append(interval.estimate)
        lo.append(interval.low)
        hi.append(interval.high)
        colors.append("tab:purple")
    title = "measured arms and off-policy values (95% intervals)"
    if lift is not None:
        a = lift.absolute
        title = f"lift {a.estimate:+.2%} [{a.low:+.2%}, {a.high:+.2%}], p = {lift.p_value:.3g}\n" + title
    if labels:
        _bars(ax, labels, est, lo, hi, colors, title)


def draw_calibration(ax, table: pd.DataFrame) -> None:
    if table.empty:
        return
    err = np.vstack([table["observed"] - table["low"], table["high"] - table["observed"]])
    ax.errorbar(
        table["predicted"], table["observed"], yerr=np.clip(np.nan_to_num(err), 0, None), fmt="o", capsize=3
    )
    top = float(np.nanmax([table["predicted"].max(), table["high"].max()])) * 1.05 or 1.0
    ax.plot([0, top], [0, top], color="gray", lw=1, ls="--")
    if {"sends", "clicks"} <= set(table.columns):  # how much each point rests on
        for x, y, n, k in zip(
            table["predicted"], table["observed"], table["sends"], table["clicks"], strict=True
        ):
            ax.annotate(
                f"{int(k):,}/{int(n):,}", (x, y), xytext=(5, -10), textcoords="offset points", fontsize=7
            )
    ax.set_xlabel("predicted expected_engagement (decile mean)")
    ax.set_ylabel("observed click rate")
    ax.set_title("calibration by decile of the prediction (labels: clicks / sends)", fontsize=10)


def draw_hours(ax, table: pd.DataFrame) -> None:
    if table.empty:
        return
    x = table.index.to_numpy()
    ax.bar(x, table["observed"], color="tab:blue", alpha=0.6, label="realised")
    err = np.vstack([table["observed"] - table["low"], table["high"] - table["observed"]])
    ax.errorbar(
        x,
        table["observed"],
        yerr=np.clip(np.nan_to_num(err), 0, None),
        fmt="none",
        ecolor="black",
        capsize=2,
        lw=1,
    )
    ax.plot(x, table["predicted"], "o-", color="tab:red", label="predicted")
    top = float(np.nanmax([table["observed"].max(), table["predicted"].max()]))
    if np.isfinite(top) and top > 0:
        ax.set_ylim(0, 2.0 * top)  # the widest intervals (hours with few sends) run off the top
    ax.set_xlabel("send hour (UTC)")
    ax.set_ylabel("clicks within 24 h per send")
    ax.set_title("realised vs predicted per send hour", fontsize=10)
    ax.legend(fontsize=8)


def write_figures(out: Path, arms, lift, off_policy, by_decile, by_hour) -> dict[str, Path]:
    """lift.png, calibration.png, hours.png, and overview.png with all three side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        "lift": lambda ax: draw_lift(ax, arms, lift, off_policy),
        "calibration": lambda ax: draw_calibration(ax, by_decile),
        "hours": lambda ax: draw_hours(ax, by_hour),
    }
    paths = {}
    for name, draw in panels.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        draw(ax)
        fig.tight_layout()
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=100)
        plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, draw in zip(axes, panels.values(), strict=True):
        draw(ax)
    fig.tight_layout()
    paths["overview"] = out / "overview.png"
    fig.savefig(paths["overview"], dpi=80)
    plt.close(fig)
    return paths
