"""The words of `sendtime report`: the markdown file in --out and the lines printed on the terminal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.2%}"


def _table(frame: pd.DataFrame) -> str:
    """A markdown table (numbers as shares where they are rates)."""
    frame = frame.reset_index()
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    lines = [head, "|" + "---|" * len(frame.columns)]
    for record in frame.to_dict("records"):
        cells = []
        for key, value in record.items():
            shares = "rate" in key or key in ("predicted", "observed", "low", "high")
            if isinstance(value, float) and (shares or key.endswith(("_low", "_high"))):
                cells.append(_pct(value))
            elif isinstance(value, float) and float(value).is_integer():
                cells.append(f"{int(value):,}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _lift_line(name: str, lift) -> str:
    a, r = lift.absolute, lift.relative
    return (
        f"- {name}: optimised minus holdout **{a.estimate:+.2%}** (95% CI {a.low:+.2%} to {a.high:+.2%}), "
        f"relative {r.estimate:+.1%} ({r.low:+.1%} to {r.high:+.1%}), p = {lift.p_value:.3g}, "
        f"{a.n:,} people"
    )


def markdown(r, plan: Path, data: Path) -> str:
    never = int(r.arms.loc["all", "never_sent"]) if "all" in r.arms.index else 0
    censored = int(r.arms.loc["all", "censored"]) if "all" in r.arms.index else 0
    parts = [
        "# Did the plan work?",
        "",
        f"Plan `{plan}`, events `{data}`; model version {r.model_version or 'unknown'} "
        f"({r.version_source}). MLflow run: {r.run_id or 'not logged'}.",
        "",
        "Outcomes are clicks (opens, conversions) within 24 h of the actual send. A planned row with no "
        "matching send in the export is *never sent*: counted below, and left out of every rate; a row "
        "whose 24 h run past the export's end is *censored*, likewise.",
        f"Never sent: {never:,} planned rows (listed in never_sent.csv); censored: {censored:,}.",
        "",
        "![overview](overview.png)",
        "",
        "## Lift of the optimised plan over the holdout (campaign time)",
        "",
    ]
    if r.lift:
        parts += [_lift_line(name, lift) for name, lift in r.lift.items()]
        parts += [
            "",
            "Intervals: percentile bootstrap over people, stratified by arm (people resampled within each "
            "arm), 2,000 resamples; p-value two-sided, normal approximation with the bootstrap standard "
            "error.",
        ]
    else:
        parts.append("No lift: the plan has no measured sends in the optimised arm or in the holdout.")
    parts += ["", "## Arms", "", _table(r.arms), "", "Per channel:", "", _table(r.by_channel), ""]
    parts += ["## Off-policy values from the explored sends (inverse propensity)", ""]
    if r.off_policy:
        for name, iv in r.off_policy.items():
            cell = f" ({r.cells[name]})" if name in r.cells else ""
            parts.append(f"- {name}{cell}: {iv.estimate:.2%} (95% CI {iv.low:.2%} to {iv.high:.2%})")
        n = next(iter(r.off_policy.values())).n
        parts += [
            "",
            f"Read on the {n:,} measured non-holdout rows with a usable e-mail address: each row's click "
            "weighted by 1/propensity where its logged cell is the policy's. The simple policies send "
            "everyone by e-mail at one clock hour (population best hour: the best e-mail click rate by UTC "
            "hour over the 28 days before the plan). Intervals: percentile bootstrap over people.",
        ]
    else:
        parts.append("None: the plan has no explored sends (schedule with `--explore SHARE`).")
    parts += ["", "## Calibration", "", f"By decile of `{S.EXPECTED_ENGAGEMENT}`:", "", _table(r.by_decile)]
    parts += ["", "By send hour (UTC):", "", _table(r.by_hour), ""]
    m = r.metrics
    parts.append(
        f"Calibration error (sends-weighted mean |predicted - observed|): by decile "
        f"{m.get('calibration_error_decile', float('nan')):.4f}, by hour {m.get('calibration_error_hour', float('nan')):.4f}."
    )
    return "\n".join(parts) + "\n"


def summary_lines(r) -> list[str]:
    lines = [f"sendtime report: model version {r.model_version or 'unknown'} ({r.version_source})"]
    for arm, row in r.arms.iterrows():
        lines.append(
            f"  {arm:<10} planned {int(row['planned']):>7,}  sent {int(row['sent']):>7,}  never sent "
            f"{int(row['never_sent']):>6,}  clicks {_pct(row['click_rate'])} "
            f"[{_pct(row['click_low'])}, {_pct(row['click_high'])}]"
        )
    if "all" in r.lift:
        lines.append(_lift_line("lift", r.lift["all"]).removeprefix("- "))
    for name, iv in r.off_policy.items():
        lines.append(f"  IPS {name}: {_pct(iv.estimate)} [{_pct(iv.low)}, {_pct(iv.high)}]")
    lines.append(f"report: {r.markdown}" + (f" (MLflow run {r.run_id})" if r.run_id else ""))
    return lines
