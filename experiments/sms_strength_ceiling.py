"""How much capture a better choice of SMS strengths could win: an oracle sweep against the truth.

    sendtime train --data WORLD                     # a world with ground truth (zoo or simulate)
    python -m sendtime.experiments.sms_strength_ceiling --data WORLD [--campaigns 7]

The capture decomposition (capture_decomposition.py) shows the zoo's capture is lost in the SMS hours,
and SMS strengths are chosen by the held-out likelihood of a few hundred people's clicks. Before
replacing that criterion, this asks what any criterion could gain: it rebuilds the champion's
profiles with one SMS strength moved at a time (every other strength as chosen), takes the SMS hour
ranking from the rebuilt profile (the channel still chosen by the champion's level, e-mail hours
unchanged) and judges each by capture over the same daily campaigns as `sendtime train`'s. The best
row is an oracle's pick, made with the truth on the very world it is judged on: an upper bound on
what choosing SMS strengths better can buy, not a result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime.experiments.capture_decomposition import champion_and_truth, with_shape

# SMS strengths moved one at a time, over and beyond the search's own grids
GRID = {
    "alpha_daily": (2.0, 8.0, 32.0, 128.0, 512.0),
    "beta": (0.0, 0.25, 0.5, 0.75, 1.0),
    "blur": (0.0, 0.15, 0.3, 0.45),
    "trigger_weight": (0.0, 1.0, 4.0, 16.0, 64.0),
    "other_trigger_weight": (0.0, 1.0, 4.0, 16.0),
    "rhythm_weight": (0.0, 0.5, 1.0),
}


def sms_hours_from(model: np.ndarray, sms_shape: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The model's grid with its SMS hours ranked by `sms_shape` ([n, hours]) at the model's SMS level."""
    grid = model.copy()
    grid[:, 1] = sms_shape
    return with_shape(grid, model, mask)


def sms_at_hours(profiles, audience, how: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """[n, hours]: each person's SMS shape (`shape`, [rows, 2, 168]) at their candidate local hours;
    the population's for people without an SMS profile row."""
    rows = audience.rows[:, 1]
    weekly = np.where(rows[:, None] >= 0, shape[np.maximum(rows, 0), 1], profiles.population_shape[1])
    return np.take_along_axis(weekly, how.astype(np.int64), axis=1)


def sweep(predictor, gt, base, campaigns: int = 7, grid: dict | None = None) -> pd.DataFrame:
    """One row per SMS strength value: its capture, with the champion's own choice marked."""
    from sendtime.features.profiles import build_profiles
    from sendtime.workflows import capture as C

    profiles, settings = predictor.profiles, predictor.settings
    chosen = profiles.shrinkage
    variants: list[tuple[str, float | None, bool]] = [("as chosen", None, True)]
    for name, values in (grid or GRID).items():
        current = float(getattr(chosen.sms, name))
        variants += [(name, float(v), np.isclose(v, current)) for v in values]
    shapes = []
    for name, value, _ in variants:
        strengths = (
            chosen if value is None else chosen.with_channel("sms", chosen.sms.with_values({name: value}))
        )
        shapes.append(build_profiles(base, profiles.as_of, settings.profiles, strengths).shape)
    totals = np.zeros(len(variants))
    campaign = oracle = 0.0
    for day in range(campaigns):
        start = profiles.as_of.ceil("D") + pd.Timedelta(days=day, hours=14)
        audience, hour_starts, how = C.audience_grids(predictor, gt, start, 24)
        model = predictor.score(audience, hour_starts)
        mask = C.feasible(predictor, audience, hour_starts)
        plans = {
            str(k): sms_hours_from(model, sms_at_hours(profiles, audience, how, shape), mask)
            for k, shape in enumerate(shapes)
        }
        report = C.capture_report(predictor, gt, start, 24, plans)
        campaign += report["campaign_value"]
        oracle += report["oracle_value"]
        totals += [report[f"{k}_value"] for k in range(len(variants))]
    capture = (totals - campaign) / max(oracle - campaign, 1e-12)
    return pd.DataFrame(
        {
            "strength": [v[0] for v in variants],
            "value": [v[1] for v in variants],
            "chosen": [v[2] for v in variants],
            "capture": capture,
        }
    )


def main() -> None:
    args, settings, predictor, gt = champion_and_truth(__doc__)
    from sendtime.features.load import load_folder
    from sendtime.features.prepare import build_feature_base

    base = build_feature_base(load_folder(args.data, settings.data), settings)
    table = sweep(predictor, gt, base, args.campaigns)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    chosen = table["capture"].iloc[0]
    print(
        f"as chosen {chosen:.3f}; oracle's best single move {table['capture'].max():.3f} (+{table['capture'].max() - chosen:.3f})"
    )


if __name__ == "__main__":
    main()
