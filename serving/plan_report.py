"""What `sendtime schedule` prints and draws: the plan's summary text and its sends-per-hour plot."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.serving.campaign import EMAIL, SMS, CampaignPlan
from sendtime.serving.plan_io import atomic_path
from sendtime.serving.planner import ScheduleResult
from sendtime.serving.reasons import REASON_BUDGET, REASON_CAP, REASON_NO_FEASIBLE

_COMPACT_HOURS = 48  # longer windows are summarised per day
_NO_SEND = (REASON_BUDGET, REASON_CAP, REASON_NO_FEASIBLE)
_UNDATED = re.compile(r" (?:on|since) \d{4}-\d\d-\d\d")  # "hard bounce on 2026-10-07" -> "hard bounce"
_RUN_LENGTH = re.compile(r"\d+ bounces in a row")


def format_summary(result: ScheduleResult, out: Path, png: Path | None = None) -> str:
    """The closing report: channels, reasons for no send, SMS budget, sends per hour, lift, cost of limits."""
    plan, window = result.plan, result.window
    n, n_hours = len(plan), len(window.hours)
    sent = plan.channel >= 0
    lines = [
        f"sendtime schedule: {n:,} audience rows planned with model version {result.model_version} -> {out}",
        f"window {_iso(window.start)} to {_iso(window.end)} ({n_hours} clock hours); "
        f"campaign time {_iso(window.campaign_time)}",
        "channels: "
        + ", ".join(
            [f"{name} {int((plan.channel == c).sum()):,}" for c, name in enumerate(S.CHANNELS)]
            + [f"none {int((~sent).sum()):,}"]
        ),
    ]
    if (~sent).any():
        why = pd.Series(plan.reason[~sent], dtype=object).map(_why_none).value_counts()
        lines.append("  no send: " + ", ".join(f"{reason} {count:,}" for reason, count in why.items()))
    budget = "no budget" if plan.max_sms is None else f"budget {plan.max_sms:,}"
    lines.append(
        f"sms: {plan.sms_used:,} used ({budget}); rule: the budget goes to the largest sms gain over e-mail "
        "(sms-only rows: over not sending, so they need sms or get nothing)"
    )
    lines.append("sends per UTC hour (email/sms): " + sends_per_hour_text(plan, window.hours))
    baseline, total = plan.baseline, plan.total
    lift = f"lift x{total / baseline:.2f}" if baseline > 0 else "lift n/a"
    lines.append(
        f"expected engagement: {total:,.2f} planned vs {baseline:,.2f} for a campaign-time send of the same rows "
        f"(e-mail at the campaign time, sms-only at the first quiet-hours hour): {lift}"
    )
    lines.append("cost of limits (expected engagement): " + _costs(plan))
    extras = []
    base = max(plan.contactable, 1)
    if plan.holdout.any():
        extras.append(
            f"holdout {int(plan.holdout.sum()):,} rows ({plan.holdout.sum() / base:.1%} of the "
            f"{plan.contactable:,} contactable) at the campaign time"
        )
    if plan.explored.any():
        extras.append(
            f"explored {int(plan.explored.sum()):,} rows ({plan.explored.sum() / base:.1%}) at random feasible hours"
        )
    if result.duplicates:
        extras.append(f"{result.duplicates:,} duplicate rows not planned (one send per person)")
    if getattr(result, "invalid_timezones", 0):
        extras.append(
            f"{result.invalid_timezones:,} rows with a timezone that is not an IANA name: planned without sms "
            "(their reason says so)"
        )
    extras.append(f"model scored {result.scored_rows:,} distinct inputs")
    lines.append("; ".join(extras))
    if png is not None:
        lines.append(f"plot: {png}")
    if result.timings:
        total_time = sum(result.timings.values())
        lines.append(
            "time: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
            + f" (total {total_time:.1f} s)"
        )
    return "\n".join(lines)


def _iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _why_none(reason: str) -> str:
    """Why a row got no send, without the pattern source in front or contact notes behind:
    "personal history; sms budget exhausted; email suppressed: hard bounce on 2026-10-07" ->
    "sms budget exhausted"; a suppression without its date or run length, so that the summary counts rules."""
    text = str(reason)
    parts = text.split("; ")
    why = next((p for p in parts if p in _NO_SEND), text)
    why = _UNDATED.sub("", _RUN_LENGTH.sub("bounces in a row", why))  # one count per suppression rule
    return f"holdout, {why}" if text.startswith("holdout") and why != text else why


def _costs(plan: CampaignPlan) -> str:
    if not plan.cost:
        return "none (no --max-sms or --max-per-hour)"
    base = plan.uncapped if plan.uncapped > 0 else 1.0
    parts = []
    for key, value in plan.cost.items():
        channel = {"email cap": EMAIL, "sms cap": SMS}.get(key)
        if key == "sms budget" and plan.max_sms is None:
            continue
        if channel is not None and channel not in plan.caps:
            continue
        label = key if channel is None else f"{key} {plan.caps[channel]:,}/h"
        parts.append(f"{label} {_number(value)} ({value / base:.1%})")
    moved = f"{plan.moved_by_cap:,} rows moved to another hour, {plan.fallbacks:,} to their other channel by the caps"
    return (", ".join(parts) or "none") + f"; {moved}"


def _number(value: float) -> str:
    """2 decimals, or 3 significant digits for small values (a cap that costs 0.0004 is not free)."""
    return f"{value:,.2f}" if value == 0 or abs(value) >= 1 else f"{value:.3g}"


def sends_per_hour_text(plan: CampaignPlan, hours: pd.DatetimeIndex) -> str:
    """Compact: every hour with sends (the date where it changes); per day for windows over 48 hours."""
    counts = plan.sends_per_hour(len(hours))
    if not counts.any():
        return "none"
    days = hours.strftime("%m-%d")
    if len(hours) > _COMPACT_HOURS:
        out = []
        for day in pd.unique(days):
            cols = np.flatnonzero(days == day)
            per_hour = counts[:, cols].sum(axis=0)
            peak = cols[int(per_hour.argmax())]
            out.append(
                f"{day} {counts[EMAIL, cols].sum():,}/{counts[SMS, cols].sum():,} "
                f"(peak {hours[peak].strftime('%H')}h {per_hour.max():,})"
            )
        return ", ".join(out)
    out, last_day = [], None
    for j in np.flatnonzero(counts.sum(axis=0)):
        label = hours[j].strftime("%Hh")
        if days[j] != last_day:
            label, last_day = f"{days[j]} {label}", days[j]
        out.append(f"{label} {counts[EMAIL, j]:,}/{counts[SMS, j]:,}")
    return ", ".join(out)


def plot_plan(plan: CampaignPlan, hours: pd.DatetimeIndex, path: Path) -> Path:
    """Sends per UTC hour, one panel per channel with that channel's cap on its own bars; PNG, atomic."""
    fig = plan_figure(plan, hours)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def plan_figure(plan: CampaignPlan, hours: pd.DatetimeIndex):
    """A panel per channel on one hour axis: stacked bars would lift the SMS bars by the e-mail ones, and
    a cap is then no longer a line at the height it limits."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = plan.sends_per_hour(len(hours))
    x = np.arange(len(hours))
    fig = Figure(figsize=(max(8.0, min(24.0, 0.3 * len(hours))), 6.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(S.CHANNELS), 1, sharex=True)
    colors = {EMAIL: ("#4C72B0", "#1f3b66"), SMS: ("#DD8452", "#8c3b0a")}
    for channel, ax in zip((EMAIL, SMS), axes, strict=True):
        name = S.CHANNELS[channel]
        bar, line = colors[channel]
        ax.bar(x, counts[channel], width=0.85, color=bar, label=f"{name} sends")
        top = max(int(counts[channel].max()), 1)
        if channel in plan.caps:
            cap = plan.caps[channel]
            ax.axhline(cap, color=line, linestyle="--", linewidth=1.2, label=f"{name} cap {cap:,}/h")
            top = max(top, cap)
        ax.set_ylim(0, 1.15 * top)
        ax.set_ylabel(f"planned {name}")
        ax.set_title(f"{name}: {int(counts[channel].sum()):,} sends", fontsize=9, loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    step = max(1, len(hours) // 24)
    axes[-1].set_xticks(x[::step])
    axes[-1].set_xticklabels(hours[::step].strftime("%m-%d %Hh"), rotation=60, ha="right", fontsize=7)
    axes[-1].set_xlabel("UTC hour")
    fig.suptitle(f"sends per hour: {int(counts[EMAIL].sum()):,} e-mail, {int(counts[SMS].sum()):,} sms")
    return fig
