"""`sendtime evaluate`: the offline report of a registered version (default: the champion), without training.

A version's training run records how its features were made: the settings (`config.json`) and the
profile shrinkage (`data.json`). Evaluate rebuilds the same time-ordered splits of the given folder with
those, scores the version's model and every baseline on the test weeks (baselines calibrated on the
validation weeks, as in training), adds capture with and without the SMS budget where the folder has
ground truth, logs it all as a new MLflow run tagged `evaluate` (linked to the model version) and prints
a table. On the folder the version was trained on, the model's numbers equal the training run's.

From the given settings only the experiment and registered model name are used (where to look).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import home
from sendtime.configs.settings import Settings
from sendtime.features.load import load_folder
from sendtime.features.model_features import FEATURES
from sendtime.features.prepare import build_feature_base
from sendtime.training import baselines, drift_plot, examples, hour_guard, recipe, registry
from sendtime.workflows import capture, champion, offline_report

EVALUATE_TAG = "evaluate"


@dataclass
class EvaluateResult:
    run_id: str
    version: str
    model_run_id: str
    kind: str
    metrics: dict[str, float] = field(default_factory=dict)
    same_data: bool | None = None  # the folder's fingerprint equals the training run's


def evaluate(
    data_dir: str | Path, settings: Settings, version: str | None = None, progress: bool = True, echo=print
) -> EvaluateResult:
    import mlflow
    from mlflow.exceptions import MlflowException

    # a table follows: keep the output readable
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    registry.configure_mlflow(settings.training.experiment)
    name = settings.training.registered_model
    version = version or registry.champion_version(name)
    if version is None:
        raise LookupError(
            f"no '{registry.CHAMPION}' alias on registered model '{name}' in {home.tracking_uri()}: "
            "run `sendtime train` first or pass --version"
        )
    version = str(version)  # the registry answers with an int
    try:
        mv = registry.client().get_model_version(name, version)
    except MlflowException as exc:
        raise LookupError(
            f"registered model '{name}' has no version {version} in {home.tracking_uri()}"
        ) from exc
    booster = registry.load_booster(name, version)
    if list(booster.feature_name()) != list(FEATURES):
        raise ValueError(
            f"model version {version} was trained with features {booster.feature_name()}, but this "
            f"sendtime computes {FEATURES}: train a new version with `sendtime train`"
        )
    trained, shrinkage, logged = recipe.training_context(mv.run_id, settings, echo)

    data = load_folder(data_dir, trained.data)
    base = build_feature_base(data, trained, progress=progress)
    ex = examples.build_examples(base, trained, shrinkage=shrinkage, progress=progress)
    gt = capture.GroundTruth.load(data_dir)
    hour_source = hour_guard.parse((mv.tags or {}).get(hour_guard.TAG))
    offline = offline_report.offline_report(booster, ex, base, gt, trained, hour_source)
    flat = offline.metrics
    verdicts = hour_guard.judge(  # the guard's comparison on this data; the version's decision stands
        booster.predict,
        ex.test.profiles,
        champion.engagements_in_test(base, ex),
        trained.training.gate_window_hours,
        trained.training.hour_guard_tolerance,
    )
    flat.update(hour_guard.metrics(verdicts, hour_source))
    fp = recipe.fingerprint(data)
    trained_sha = (logged.get("fingerprint") or {}).get("sha256")
    same = None if trained_sha is None else trained_sha == fp["sha256"]

    with mlflow.start_run(run_name=f"evaluate-v{version}", tags=registry.process_tags()) as run:
        mlflow.set_tags(
            {
                EVALUATE_TAG: "true",
                "sendtime.command": EVALUATE_TAG,
                "kind": ex.kind,
                "model_name": name,
                "model_version": version,
                "model_run_id": mv.run_id,
                "data_sha256": fp["sha256"],
                "same_data_as_training": str(same),
            }
        )
        mlflow.log_params(
            {
                "model_name": name,
                "model_version": version,
                "model_run_id": mv.run_id,
                "kind": ex.kind,
                "data": str(Path(data_dir).resolve()),
            }
        )
        mlflow.log_dict(
            {
                "fingerprint": fp,
                "boundaries": ex.boundaries,
                "shrinkage": ex.shrinkage.to_dict(),
                "same_data_as_training": same,
            },
            "data.json",
        )
        finite = {k: float(v) for k, v in flat.items() if np.isfinite(v)}
        model_id = getattr(mv, "model_id", None)  # MLflow 3: the metrics also show on the logged model
        mlflow.log_metrics(finite, **({"model_id": model_id} if model_id else {}))
        with registry.scratch_dir() as out:
            offline_report.log_plots(out, offline, ex.test.profiles, booster, gt is not None)
            history = drift_plot.log_history(out, settings.training.experiment, settings.drift)
    result = EvaluateResult(run.info.run_id, version, mv.run_id, ex.kind, flat, same)
    for line in report_lines(name, ex, result):
        echo(line)
    echo(history)
    return result


def report_lines(name: str, ex: examples.Examples, result: EvaluateResult) -> list[str]:
    """The printed table: one row per method (model first), log loss, AUC, calibration error, capture."""
    version, model_run_id, flat, same = result.version, result.model_run_id, result.metrics, result.same_data
    b = ex.boundaries
    test = ex.test.cells
    lines = [
        f"{name} v{version} (training run {model_run_id[:12]}), {ex.kind} examples",
        f"test weeks {pd.Timestamp(b['test']):%Y-%m-%d %H:%M} to {pd.Timestamp(b['end']):%Y-%m-%d %H:%M} UTC: "
        f"{len(test):,} cells, positive rate {test['label'].mean():.2%}; same data as the training run: "
        + {True: "yes", False: "no", None: "unknown"}[same],
    ]
    capture_cols = "model_capture" in flat
    share = round(100 * offline_report.SMS_BUDGET_SHARE)
    budget = f"capture ({share}% SMS)"
    head = f"{'method':<22}{'log loss':>10}{'AUC':>8}{'calib. err':>12}"
    if capture_cols:
        head += f"{'capture':>9}{budget:>20}"
    lines.append(head)
    for method in ("model", *baselines.NAMES):
        prefix = "" if method == "model" else f"{method}_"

        def get(key: str, prefix: str = prefix) -> float:
            return flat.get(f"{prefix}{key}", float("nan"))

        row = f"{method:<22}{get('log_loss'):>10.5f}{get('auc'):>8.3f}{get('calibration_error'):>12.4f}"
        if capture_cols:
            row += f"{flat.get(f'{method}_capture', float('nan')):>9.3f}"
            row += f"{flat.get(f'budget{share}_{method}_capture', float('nan')):>20.3f}"
        lines.append(row)
    lines.append(f"run id: {result.run_id} (tagged {EVALUATE_TAG})")
    return lines


def run_evaluate(data: str | Path, settings: Settings, version: str | None = None) -> int:
    evaluate(data, settings, version=version)
    return 0
