"""`sendtime train`: data folder -> features -> model and baselines -> MLflow run -> registry and gate."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import identity, unusable
from sendtime.features.load import DataFolder, load_folder
from sendtime.features.model_features import FEATURES
from sendtime.features.prepare import FeatureBase, build_feature_base
from sendtime.features.profiles import Profiles, build_profiles
from sendtime.serving.predictor import Predictor
from sendtime.training import (
    baselines,
    capture,
    champion,
    decision,
    examples,
    gate,
    model,
    plots,
    registry,
    split_design,
)

log = logging.getLogger(__name__)

SMS_BUDGET_SHARE = 0.3  # capture is also reported with SMS allowed for at most this share of the audience
CAPTURE_CAMPAIGNS = 7  # daily 24 h campaigns over the test week whose capture is reported


@dataclass
class TrainResult:
    run_id: str
    version: str
    promoted: bool
    kind: str
    metrics: dict[str, float] = field(default_factory=dict)
    champion_log_loss: float | None = None
    gate: str = ""  # the gate's one line: promoted or not, and why
    gate_refused_by: list[str] = field(default_factory=list)  # short names of the rules that refused it
    model_kind: str = "lightgbm"  # or "profile_only" (training/profile_only.py)
    design: str = ""  # the split design's one line (training/split_design.py)
    note: str = ""  # why a profile-only version was (not) promoted


def fingerprint(data: DataFolder) -> dict:
    ev = data.events
    digest = hashlib.sha256()
    digest.update(
        pd.util.hash_pandas_object(ev[[S.TIMESTAMP, S.EVENT_TYPE]], index=False).to_numpy().tobytes()
    )
    return {
        "events": len(ev),
        "rejected": len(data.rejects),
        "first_event": str(ev[S.TIMESTAMP].min()),
        "last_event": str(ev[S.TIMESTAMP].max()),
        "sha256": digest.hexdigest()[:16],
        "subscribers_table": 0 if data.subscribers is None else len(data.subscribers),
        "identity_links": 0 if data.links is None else len(data.links),
    }


def evaluate_split(booster, ex: examples.Examples, base: FeatureBase) -> tuple[dict, dict, dict]:
    """Model and baselines on the test cells; baselines calibrated on the validation cells."""
    test, val = ex.test, ex.validation
    pred = booster.predict(test.X)
    results = {"model": model.metrics(test.y, pred)}
    curves = {"model": model.calibration_curve(test.y, pred)}
    grids_val = baselines.baseline_grids(base, val.profiles.as_of)
    grids_test = baselines.baseline_grids(base, test.profiles.as_of)
    fitted = {}
    for name in baselines.NAMES:
        b = baselines.Baseline(name).fit(grids_val[name], val.profiles, val.cells)
        p = b.predict(grids_test[name], test.profiles, test.cells)
        results[name] = model.metrics(test.y, p)
        curves[name] = model.calibration_curve(test.y, p)
        fitted[name] = b
    return results, curves, {"fitted": fitted, "grids_test": grids_test}


def capture_figures(
    booster,
    ex: examples.Examples,
    base: FeatureBase,
    fitted: dict,
    grids_test: dict,
    gt: capture.GroundTruth,
    settings: Settings,
) -> dict[str, float]:
    """Plans for daily 24 h campaigns over the test week: model vs baselines vs oracle.

    One campaign's capture swings by about +-0.02 with the weekday it falls on, so the figure is the
    share of the oracle's gain won over `CAPTURE_CAMPAIGNS` daily campaigns (ratio of the summed values).
    """
    predictor = Predictor(booster, ex.test.profiles, settings)
    table = ex.test.profiles.table
    rates = np.stack([table[f"{c}_click_rate"].to_numpy() for c in S.CHANNELS], axis=1)
    labels = (("", None), (f"budget{round(100 * SMS_BUDGET_SHARE)}_", SMS_BUDGET_SHARE))
    totals: dict[str, float] = {}
    for day in range(CAPTURE_CAMPAIGNS):
        start = ex.test.profiles.as_of.ceil("D") + pd.Timedelta(days=day, hours=14)
        audience, hour_starts, how = capture.audience_grids(predictor, gt, start, 24)
        plans = {"model": predictor.score(audience, hour_starts)}
        for name, b in fitted.items():
            grid = np.zeros((len(audience), 2, len(hour_starts)), dtype=np.float32)
            for c in range(2):
                rows = audience.rows[:, c]
                known = rows >= 0
                scores = grids_test[name][np.maximum(rows, 0), c][np.arange(len(rows))[:, None], how]
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
        for name in ["model", *fitted]:
            out[f"{label}{name}_capture"] = (totals[f"{label}{name}_value"] - base) / max(
                oracle - base, 1e-12
            )
    return out


def offline_report(
    booster, ex: examples.Examples, base: FeatureBase, gt: capture.GroundTruth | None, settings: Settings
) -> tuple[dict, dict, dict[str, float]]:
    """Test metrics of the model and every baseline, plus capture where there is ground truth.

    Returns (per-method metrics, calibration curves, the flat metric dict logged to MLflow). Shared by
    `sendtime train` and `sendtime evaluate`, so that both report exactly the same numbers.
    """
    results, curves, extra = evaluate_split(booster, ex, base)
    flat = {f"{m}_{k}" if m != "model" else k: v for m, r in results.items() for k, v in r.items()}
    if gt is not None:
        flat.update(capture_figures(booster, ex, base, extra["fitted"], extra["grids_test"], gt, settings))
    return results, curves, flat


def train(
    data_dir: str | Path,
    settings: Settings,
    config_path: str | None = None,
    progress: bool = True,
    echo=print,
) -> TrainResult:
    import mlflow

    t0 = time.perf_counter()
    data = load_folder(data_dir, settings.data)  # bad data fails before any state is created
    if (salt_warning := identity.default_salt_warning(settings, data_dir)) is not None:
        log.warning("training with the built-in default salt: address hashes are reversible")
        echo(salt_warning)
    base = build_feature_base(data, settings, progress=progress)
    unusable.add_address_rejects(data, base.rejects, settings)  # unusable addresses count as rejects too
    echo(data.summary())
    registry.configure_mlflow(settings.training.experiment)
    for note in registry.recover_interrupted(settings.training.experiment):
        echo(note)
    echo(
        f"features: {len(base.subscribers):,} subscribers, {len(base.sends):,} sends, "
        f"{len(base.engagements):,} human engagements ({base.stats.get('automated_readers', 0):,} automated readers)"
    )
    design = split_design.for_span(*base.span, settings.training)  # config values win; may raise
    echo(design.describe())
    if design.profile_only:
        return _train_profile_only(data_dir, data, base, settings, design, config_path, design.describe(), t0)
    try:
        ex = examples.build_examples(base, settings, progress=progress)
    except examples.TooFewExamples as exc:
        if design.given:  # the config chose this split: say so rather than decide otherwise
            raise
        reason = f"{exc}: too few to train and test a model on this {design.span_days:.1f}-day export"
        echo(f"split design: {reason}; a profile-only decision maker is registered instead")
        return _train_profile_only(data_dir, data, base, settings, design, config_path, reason, t0)
    echo(
        f"examples ({ex.kind}): train {len(ex.train.cells):,}, validation {len(ex.validation.cells):,}, "
        f"test {len(ex.test.cells):,}"
    )
    early = model.fit(ex.train.X, ex.train.y, ex.validation.X, ex.validation.y, settings.training)
    booster = model.refit(
        np.concatenate([ex.train.X, ex.validation.X]),
        np.concatenate([ex.train.y, ex.validation.y]),
        settings.training,
        early.best_iteration or early.current_iteration(),
    )
    booster.best_iteration = early.best_iteration
    gt = capture.GroundTruth.load(data_dir)
    results, curves, flat = offline_report(booster, ex, base, gt, settings)

    name = settings.training.registered_model
    challenger, decision_name = challenger_figures(booster, ex, base, data, gt, flat, settings)
    champ = scored_champion(name, ex, base, data, gt, settings, echo)
    champ_loss = None if champ is None else champ.log_loss

    final = build_profiles(base, base.span[1] + pd.Timedelta(seconds=1), settings.profiles, ex.shrinkage)
    with (
        mlflow.start_run(run_name=f"train-{ex.kind}", tags=registry.process_tags()) as run,
        registry.scratch_dir() as out,
    ):
        mlflow.log_params(
            {
                "kind": ex.kind,
                "config": config_path or "defaults",
                "data": str(Path(data_dir).resolve()),
                "best_iteration": booster.best_iteration,
                **{f"lgbm_{k}": v for k, v in settings.training.lgbm.items()},
                **{
                    f"shrinkage_{c}_{k}": v
                    for c, d in ex.shrinkage.to_dict().items()
                    for k, v in d.items()
                    if k in ("alpha_daily", "alpha_weekly", "beta", "blur", "cohort_strength")
                },
            }
        )
        mlflow.log_dict(settings.model_dump(mode="json"), "config.json")
        mlflow.log_dict(
            {
                "fingerprint": fingerprint(data),
                "boundaries": ex.boundaries,
                "stats": base.stats,
                "shrinkage": ex.shrinkage.to_dict(),
                "channel_events": dict(challenger.channel_events),
                "reject_share": challenger.reject_share,
            },
            "data.json",
        )
        mlflow.set_tags({"kind": ex.kind, "data_sha256": fingerprint(data)["sha256"]})
        if challenger.decision is not None and gt is None:
            mlflow.log_metric("window_share", float(challenger.decision))
        if champ is not None:  # the champion on the same test cells, with its own recipe
            measure = "capture" if gt is not None else "window_share"
            for key, value in (("log_loss", champ.log_loss), (measure, champ.decision)):
                if value is not None and np.isfinite(value):
                    mlflow.log_metric(f"champion_{key}", float(value))
            mlflow.set_tag("champion_version", champ.version)
        mlflow.set_tag("salt", "built-in default" if identity.uses_default_salt(settings) else "custom")
        mlflow.set_tags({"model_kind": "lightgbm"})
        split_design.log_to_mlflow(ex.design)
        mlflow.log_metrics({k: float(v) for k, v in flat.items() if np.isfinite(v)})
        data.write_rejects(out / "rejects.csv")
        mlflow.log_artifact(str(out / "rejects.csv"))
        log_plots(out, curves, results, flat, final, booster, gt is not None)
        final.save(out / registry.SNAPSHOT_ARTIFACT)
        mlflow.log_artifacts(str(out / registry.SNAPSHOT_ARTIFACT), registry.SNAPSHOT_ARTIFACT)
        version = registry.log_and_register(
            booster,
            ex.test.X[:50],
            FEATURES,
            name,
            tags={
                "kind": ex.kind,
                "model_kind": "lightgbm",
                "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "data_span": json.dumps(list(final.data_span)),
                "test_log_loss": f"{results['model']['log_loss']:.6f}",
                champion.DATA_KIND_TAG: ex.kind,
                champion.CHANNELS_TAG: json.dumps(dict(challenger.channel_events)),
            },
        )
        verdict = judge(challenger, results, champ, settings, decision_name)
        promoted = verdict.promote
        if promoted:
            registry.promote(name, version)
        gate_tags = {"gate": verdict.line()[:4000], "gate_refused_by": ",".join(verdict.codes) or "none"}
        mlflow.set_tags({"registered_version": version, "promoted": str(promoted), **gate_tags})
        for key, value in gate_tags.items():
            registry.client().set_model_version_tag(name, version, key, value)
        mlflow.log_metric("train_seconds", time.perf_counter() - t0)
    return TrainResult(
        run.info.run_id,
        version,
        promoted,
        ex.kind,
        flat,
        champ_loss,
        verdict.line(),
        list(verdict.codes),
        design=ex.design.describe(),
    )


def _train_profile_only(
    data_dir, data: DataFolder, base: FeatureBase, settings: Settings, design, config_path, reason: str, t0
) -> TrainResult:
    """Data too short for a model: register the profile-only decision maker (training/profile_only_run.py)."""
    import mlflow

    from sendtime.training import profile_only_run

    res = profile_only_run.train(
        str(Path(data_dir).resolve()), data, base, settings, design, fingerprint(data), config_path, reason
    )
    with mlflow.start_run(run_id=res.run_id):
        mlflow.log_metric("train_seconds", time.perf_counter() - t0)
    return TrainResult(
        res.run_id,
        res.version,
        res.promoted,
        res.kind,
        model_kind="profile_only",
        design=reason,
        note=res.why_promoted,
    )


def challenger_figures(
    booster, ex: examples.Examples, base: FeatureBase, data: DataFolder, gt, flat: dict, settings: Settings
) -> tuple[gate.Figures, str]:
    """The new model's figures for the gate: its decision measure is capture where the folder has ground
    truth, else the held-out engagement share inside its chosen windows (`training.decision`)."""
    if gt is not None:
        value, name = flat.get("model_capture"), "capture"
    else:
        held = champion.engagements_in_test(base, ex)
        value = decision.window_share(
            booster.predict, ex.test.profiles, held, settings.training.gate_window_hours
        )
        name = "engagement share in the chosen windows"
    figures = gate.Figures(
        kind=ex.kind,
        log_loss=flat.get("log_loss"),
        decision=None if value is None or not np.isfinite(value) else float(value),
        channel_events=champion.channel_events(base),
        reject_share=champion.reject_share(data),
    )
    return figures, name


def scored_champion(
    name: str, ex: examples.Examples, base: FeatureBase, data: DataFolder, gt, settings: Settings, echo
) -> champion.ChampionScore | None:
    """The current champion scored with its own recipe on this run's test cells (None: no champion)."""
    version = registry.champion_version(name)
    if version is None:
        return None
    try:
        score = champion.score_champion(name, version, ex, base, data, gt, settings)
    except Exception as exc:  # an incompatible old champion must not block training
        echo(f"warning: could not score champion v{version} on this test set ({exc}); treating as absent")
        return None
    for note in score.notes:
        echo(f"note: {note}")
    return score


def judge(
    challenger: gate.Figures,
    results: dict,
    champ: champion.ChampionScore | None,
    settings: Settings,
    decision_name: str,
) -> gate.Decision:
    best_baseline = min(results[b]["log_loss"] for b in baselines.NAMES)
    incumbent = None
    if champ is not None:
        incumbent = gate.Figures(
            kind=champ.kind,
            log_loss=champ.log_loss,
            decision=champ.decision,
            channel_events=champ.channel_events,
        )
    return gate.decide(
        challenger, best_baseline, incumbent, gate.Rules.from_settings(settings.training, decision_name)
    )


def log_plots(
    out: Path, curves: dict, results: dict, flat: dict, final: Profiles, booster, has_gt: bool
) -> None:
    import mlflow

    figs = out / "plots"
    plots.calibration(curves, figs / "calibration.png")
    plots.bars(
        {k: v["log_loss"] for k, v in results.items()},
        figs / "log_loss.png",
        "Test log loss (lower is better)",
        "log loss",
    )
    if has_gt:
        caps = {
            k[: -len("_capture")]: v
            for k, v in flat.items()
            if k.endswith("_capture") and not k.startswith("budget")
        }
        plots.bars(
            caps,
            figs / "capture.png",
            "Capture of the oracle's gain over campaign time (7 daily 24 h campaigns)",
            "capture",
        )
    pop = {"population": final.population_response}
    weights = final.table["email_engagements"].to_numpy() + final.table["sms_engagements"].to_numpy()
    for i in np.argsort(-weights)[:3]:
        pop[f"subscriber {str(final.table[S.SUBSCRIBER_ID].iloc[i])[:8]}"] = final.response[i]
    plots.heatmaps(pop, figs / "hour_of_week.png", "Response by local hour-of-week (population and examples)")
    plots.importance(FEATURES, booster.feature_importance("gain"), figs / "feature_importance.png")
    mlflow.log_artifacts(str(figs), "plots")
