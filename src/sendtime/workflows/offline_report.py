"""The offline report shared by `sendtime train` and `sendtime evaluate`: the model and every baseline on
the test weeks, capture against the oracle where the folder has ground truth, and the run's figures.
Both commands call it, so both report exactly the same numbers for the same version and data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features.model_features import FEATURES
from sendtime.features.prepare import FeatureBase
from sendtime.features.profiles import Profiles
from sendtime.serving.predictor import Predictor
from sendtime.training import baselines, examples, hour_guard, model, plots
from sendtime.workflows import capture

SMS_BUDGET_SHARE = 0.3  # capture is also reported with SMS allowed for at most this share of the audience
CAPTURE_CAMPAIGNS = 7  # daily 24 h campaigns over the test week whose capture is reported


@dataclass(frozen=True)
class FittedBaselines:
    """The baselines calibrated on the validation cells, and their hour-of-week grids as of the test."""

    fitted: dict[str, baselines.Baseline]
    grids_test: dict[str, np.ndarray]


@dataclass(frozen=True)
class OfflineReport:
    results: dict[str, dict[str, float]]  # per method (model first): log loss, AUC, calibration error
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # per method: the calibration curve
    metrics: dict[str, float]  # flat, as logged to MLflow: the model's keys bare, the others prefixed
    bin_counts: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # cells, clicks


def evaluate_split(
    booster, ex: examples.Examples, base: FeatureBase
) -> tuple[dict, dict, FittedBaselines, dict]:
    """Model and baselines on the test cells; baselines calibrated on the validation cells. Last: the
    model's cells and clicks per calibration bin."""
    test, val = ex.test, ex.validation
    pred = booster.predict(test.X)
    results = {"model": model.metrics(test.y, pred)}
    *curve, cells, clicks = model.calibration_bins(test.y, pred)
    curves = {"model": tuple(curve)}
    counts = {"model": (cells, clicks)}
    grids_val = baselines.baseline_grids(base, val.profiles.as_of)
    grids_test = baselines.baseline_grids(base, test.profiles.as_of)
    fitted = {}
    for name in baselines.NAMES:
        b = baselines.Baseline(name).fit(grids_val[name], val.profiles, val.cells)
        p = b.predict(grids_test[name], test.profiles, test.cells)
        results[name] = model.metrics(test.y, p)
        curves[name] = model.calibration_curve(test.y, p)
        fitted[name] = b
    return results, curves, FittedBaselines(fitted, grids_test), counts


def capture_figures(
    booster,
    ex: examples.Examples,
    baseline: FittedBaselines,
    gt: capture.GroundTruth,
    settings: Settings,
    hour_source: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Plans for daily 24 h campaigns over the test week: model vs baselines vs oracle.

    One campaign's capture swings by about +-0.02 with the weekday it falls on, so the figure is the
    share of the oracle's gain won over `CAPTURE_CAMPAIGNS` daily campaigns (ratio of the summed values).
    """
    predictor = Predictor(booster, ex.test.profiles, settings, meta={hour_guard.TAG: hour_source})
    table = ex.test.profiles.table
    rates = np.stack([table[f"{c}_click_rate"].to_numpy() for c in S.CHANNELS], axis=1)
    labels = (("", None), (f"budget{round(100 * SMS_BUDGET_SHARE)}_", SMS_BUDGET_SHARE))
    totals: dict[str, float] = {}
    for day in range(CAPTURE_CAMPAIGNS):
        start = ex.test.profiles.as_of.ceil("D") + pd.Timedelta(days=day, hours=14)
        audience, hour_starts, how = capture.audience_grids(predictor, gt, start, 24)
        plans = {"model": predictor.score(audience, hour_starts)}
        for name, b in baseline.fitted.items():
            grid = np.zeros((len(audience), 2, len(hour_starts)), dtype=np.float32)
            for c in range(2):
                rows = audience.rows[:, c]
                known = rows >= 0
                scores = baseline.grids_test[name][np.maximum(rows, 0), c][np.arange(len(rows))[:, None], how]
                scores = np.where(known[:, None], scores, 0.0)  # no history: no hour preference
                grid[:, c] = b.predict_grid(scores, rates[np.maximum(rows, 0), c][:, None])
            plans[name] = grid
        for label, share in labels:
            rep = capture.capture_report(predictor, gt, start, 24, plans, sms_share=share)
            for k, v in rep.items():
                if k.endswith("_value"):
                    totals[f"{label}{k}"] = totals.get(f"{label}{k}", 0.0) + v
    out = dict(totals)
    for label, _ in labels:
        base, oracle = totals[f"{label}campaign_value"], totals[f"{label}oracle_value"]
        for name in ["model", *baseline.fitted]:
            out[f"{label}{name}_capture"] = (totals[f"{label}{name}_value"] - base) / max(
                oracle - base, 1e-12
            )
    return out


def offline_report(
    booster,
    ex: examples.Examples,
    base: FeatureBase,
    gt: capture.GroundTruth | None,
    settings: Settings,
    hour_source: Mapping[str, str] | None = None,
) -> OfflineReport:
    """Test metrics of the model and every baseline, plus capture where there is ground truth; the
    capture plans place hours as the version's hour guard says (`hour_source`, training/hour_guard.py).

    Shared by `sendtime train` and `sendtime evaluate`, so that both report exactly the same numbers.
    """
    results, curves, baseline, counts = evaluate_split(booster, ex, base)
    flat = {f"{m}_{k}" if m != "model" else k: v for m, r in results.items() for k, v in r.items()}
    if gt is not None:
        flat.update(capture_figures(booster, ex, baseline, gt, settings, hour_source))
    return OfflineReport(results, curves, flat, counts)


def log_plots(out: Path, report: OfflineReport, final: Profiles, booster, has_gt: bool) -> None:
    import mlflow

    flat = report.metrics
    figs = out / "plots"
    plots.calibration(report.curves, figs / "calibration.png", report.bin_counts)
    plots.log_loss({k: v["log_loss"] for k, v in report.results.items()}, figs / "log_loss.png")
    if has_gt:
        caps = {
            k[: -len("_capture")]: v
            for k, v in flat.items()
            if k.endswith("_capture") and not k.startswith("budget")
        }
        plots.capture(caps, figs / "capture.png", CAPTURE_CAMPAIGNS)
    pop = {"population": final.population_response}
    weights = final.table["email_engagements"].to_numpy() + final.table["sms_engagements"].to_numpy()
    for i in np.argsort(-weights)[:3]:
        pop[f"subscriber {str(final.table[S.SUBSCRIBER_ID].iloc[i])[:8]}"] = final.response[i]
    plots.heatmaps(pop, figs / "hour_of_week.png", "Response by local hour-of-week (population and examples)")
    plots.importance(FEATURES, booster.feature_importance("gain"), figs / "feature_importance.png")
    mlflow.log_artifacts(str(figs), "plots")
