"""Where a plan's capture is lost: the hour shape or the level, e-mail or SMS.

    sendtime train --data WORLD                     # a world with ground truth (zoo or simulate)
    python -m sendtime.experiments.capture_decomposition --data WORLD [--campaigns 7]

A plan picks, per person, a channel (by the level of each channel's best hour) and an hour (by the
shape of that channel's scores over the window). To see which of the two a model gets wrong, each
plan below swaps one part of the champion's grid for the simulator's truth and keeps the rest, then
is judged by capture over the same daily 24 h campaigns as `sendtime train`'s:

- model: the champion's served scores, as `sendtime schedule` plans them;
- truth shape, model level: every (person, channel)'s hours ranked by the truth, the channel still
  chosen by the model's value at its best feasible hour;
- model shape, truth level: the model's hours, the channel by the truth's best value;
- truth e-mail shape / truth SMS shape: the truth's hour ranking on one channel only;
- population shape: everyone's hours ranked by the population's response (no personal timing).

If "truth SMS shape" is far above "model", better SMS hours are worth more than anything else.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

PLANS = (
    "model",
    "truth shape, model level",
    "model shape, truth level",
    "truth e-mail shape",
    "truth SMS shape",
    "population shape",
)


def best_feasible(grid: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[n, 2, 1]: each (person, channel)'s best feasible value (a tiny floor where nothing is)."""
    return np.where(mask, grid, -np.inf).max(axis=2, keepdims=True).clip(1e-12)


def with_shape(shape: np.ndarray, level_of: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`shape`'s ranking of hours, scaled so that each (person, channel)'s best feasible hour is worth
    `level_of`'s best feasible value: the channel choice of one grid, the hour choice of the other."""
    return shape / best_feasible(shape, mask) * best_feasible(level_of, mask)


def swapped_plans(model: np.ndarray, truth: np.ndarray, population: np.ndarray, mask: np.ndarray) -> dict:
    """The plans of the module docstring, as [n, 2, hours] grids (`population`: the population's
    response at each person's candidate hours)."""
    truth_shape = with_shape(truth, model, mask)
    plans = {
        "model": model,
        "truth shape, model level": truth_shape,
        "model shape, truth level": with_shape(model, truth, mask),
        "population shape": with_shape(population, model, mask),
    }
    for c, name in enumerate(("truth e-mail shape", "truth SMS shape")):
        one = model.copy()
        one[:, c] = truth_shape[:, c]
        plans[name] = one
    return {name: plans[name] for name in PLANS}


def decompose(predictor, gt, campaigns: int = 7) -> pd.DataFrame:
    """Capture of each swapped plan over `campaigns` daily 24 h campaigns from the snapshot's instant."""
    from sendtime.workflows import capture as C

    profiles = predictor.profiles
    totals: dict[str, float] = {}
    for day in range(campaigns):
        start = profiles.as_of.ceil("D") + pd.Timedelta(days=day, hours=14)
        audience, hour_starts, how = C.audience_grids(predictor, gt, start, 24)
        model = predictor.score(audience, hour_starts)
        mask = C.feasible(predictor, audience, hour_starts)
        truth = C.true_values(gt, hour_starts)
        population = np.stack([profiles.population_response[c][how] for c in range(2)], axis=1)
        plans = swapped_plans(model, truth, population, mask)
        for key, value in C.capture_report(predictor, gt, start, 24, plans).items():
            totals[key] = totals.get(key, 0.0) + value
    gain = max(totals["oracle_value"] - totals["campaign_value"], 1e-12)
    return pd.DataFrame(
        {"plan": PLANS, "capture": [(totals[f"{p}_value"] - totals["campaign_value"]) / gain for p in PLANS]}
    )


def champion_and_truth(description: str):
    """The command line the oracle experiments share (this one, sms_strength_ceiling): the world the
    champion was trained on -> (args, settings, the champion's predictor, the world's ground truth)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="the world folder the champion was trained on")
    parser.add_argument("--config", default=None)
    parser.add_argument("--campaigns", type=int, default=7)
    args = parser.parse_args()
    from sendtime.configs.settings import load_settings
    from sendtime.serving.planner import load_predictor
    from sendtime.workflows.capture import GroundTruth

    gt = GroundTruth.load(args.data)
    if gt is None:
        raise SystemExit(f"{args.data}: no ground truth (a zoo or `sendtime simulate` world is needed)")
    settings = load_settings(args.config)
    return args, settings, load_predictor(settings), gt


def main() -> None:
    args, _, predictor, gt = champion_and_truth(__doc__)
    table = decompose(predictor, gt, args.campaigns)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
