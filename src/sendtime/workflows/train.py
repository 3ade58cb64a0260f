"""`sendtime train`: data folder -> features -> model and baselines -> MLflow run -> registry and gate."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime.configs.settings import Settings
from sendtime.features import identity, unusable
from sendtime.features.engines import feature_base_on
from sendtime.features.load import load_folder
from sendtime.features.model_features import FEATURES
from sendtime.features.profiles import build_profiles
from sendtime.serving import decision_model
from sendtime.training import (
    baselines,
    decision,
    examples,
    gate,
    hour_guard,
    model,
    recipe,
    registry,
    split_design,
)
from sendtime.training.drift import champion_population
from sendtime.training.drift import watch as watch_drift
from sendtime.training.recipe import fingerprint
from sendtime.workflows import capture, champion
from sendtime.workflows.offline_report import log_plots, offline_report

log = logging.getLogger(__name__)


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


def train(
    data_dir: str | Path,
    settings: Settings,
    config_path: str | None = None,
    progress: bool = True,
    echo=print,
    engine: str = "local",
) -> TrainResult:
    import mlflow

    t0 = time.perf_counter()
    data = load_folder(data_dir, settings.data)  # bad data fails before any state is created
    if (salt_warning := identity.default_salt_warning(settings, data_dir)) is not None:
        log.warning("training with the built-in default salt: address hashes are reversible")
        echo(salt_warning)
    base = feature_base_on(engine, data, settings, progress=progress)
    unusable.add_address_rejects(data, base.rejects, settings)  # unusable addresses count as rejects too
    run_inputs = recipe.RunInputs(str(Path(data_dir).resolve()), data, base, settings, config_path)
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
        return _train_profile_only(run_inputs, design, design.describe(), t0, echo)
    try:
        ex = examples.build_examples(base, settings, progress=progress)
    except examples.TooFewExamples as exc:
        if design.given:  # the config chose this split: say so rather than decide otherwise
            raise
        reason = f"{exc}: too few to train and test a model on this {design.span_days:.1f}-day export"
        echo(f"split design: {reason}; a profile-only decision maker is registered instead")
        return _train_profile_only(run_inputs, design, reason, t0, echo)
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
    hour_source, verdicts = hour_guard.decide(
        settings.training.hour_source,
        booster.predict,
        ex.test.profiles,
        champion.engagements_in_test(base, ex),
        settings.training.gate_window_hours,
        settings.training.hour_guard_tolerance,
    )
    echo(hour_guard.describe(hour_source, verdicts))
    offline = offline_report(booster, ex, base, gt, settings, hour_source)
    results, flat = offline.results, offline.metrics
    flat.update(hour_guard.metrics(verdicts, hour_source))

    name = settings.training.registered_model
    bench = champion.TestBench(ex, base, data, gt, settings)
    challenger, decision_name = challenger_figures(booster, bench, flat, hour_source)
    if challenger.decision is not None and gt is None:  # logged with the rest, and printed by the CLI
        flat["window_share"] = float(challenger.decision)
    champ = scored_champion(name, bench, echo)
    champ_loss = None if champ is None else champ.log_loss

    final = build_profiles(base, base.span[1] + pd.Timedelta(seconds=1), settings.profiles, ex.shrinkage)
    with (
        mlflow.start_run(run_name=f"train-{ex.kind}", tags=registry.process_tags()) as run,
        registry.scratch_dir() as out,
    ):
        mlflow.log_params(
            {
                "kind": ex.kind,
                "config": run_inputs.config_path or "defaults",
                "data": run_inputs.data_dir,
                "best_iteration": booster.best_iteration,
                **{f"{hour_guard.TAG}_{c}": s for c, s in hour_source.items()},
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
        recipe.log_provenance(run_inputs.data_dir, fingerprint(data)["sha256"])
        if champ is not None:  # the champion on the same test cells, with its own recipe
            measure = "capture" if gt is not None else "window_share"
            for key, value in (("log_loss", champ.log_loss), (measure, champ.decision)):
                if value is not None and np.isfinite(value):
                    mlflow.log_metric(f"champion_{key}", float(value))
            mlflow.set_tag("champion_version", champ.version)
        mlflow.set_tag("salt", "built-in default" if identity.uses_default_salt(settings) else "custom")
        mlflow.set_tags({"model_kind": "lightgbm", hour_guard.TAG: json.dumps(hour_source)})
        split_design.log_to_mlflow(ex.design)
        mlflow.log_metrics({k: float(v) for k, v in flat.items() if np.isfinite(v)})
        watch_drift(
            data.events,
            settings.drift,
            echo,
            table=final.table,
            population=final.population_shape,
            reference=champion_population(name),
            calibration_error=flat.get("calibration_error"),
        )
        data.write_rejects(out / "rejects.csv")
        mlflow.log_artifact(str(out / "rejects.csv"))
        log_plots(out, offline, final, booster, gt is not None)
        final.save(out / registry.SNAPSHOT_ARTIFACT)
        mlflow.log_artifacts(str(out / registry.SNAPSHOT_ARTIFACT), registry.SNAPSHOT_ARTIFACT)
        version = decision_model.log_and_register(
            booster,
            ex.test.X[:50],
            FEATURES,
            name,
            snapshot=out / registry.SNAPSHOT_ARTIFACT,
            settings=settings,
            tags={
                "kind": ex.kind,
                "model_kind": "lightgbm",
                "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "data_span": json.dumps(list(final.data_span)),
                "test_log_loss": f"{results['model']['log_loss']:.6f}",
                recipe.DATA_KIND_TAG: ex.kind,
                recipe.CHANNELS_TAG: json.dumps(dict(challenger.channel_events)),
                hour_guard.TAG: json.dumps(hour_source),
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
    log.info("version %s registered (profiles as of %s); champion: %s", version, final.as_of, promoted)
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
    run_inputs: recipe.RunInputs, design: split_design.SplitDesign, reason: str, t0: float, echo
) -> TrainResult:
    """Data too short for a model: register the profile-only decision maker (training/profile_only_run.py)."""
    import mlflow

    from sendtime.training import profile_only_run

    res = profile_only_run.train(run_inputs, design, reason, decision_model.log_and_register, echo)
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
    booster, bench: champion.TestBench, flat: dict, hour_source: dict[str, str]
) -> tuple[gate.Figures, str]:
    """The new model's figures for the gate: its decision measure is capture where the folder has ground
    truth, else the held-out engagement share inside its chosen windows (`training.decision`), the
    windows serving would open under the `hour_source` the hour guard just gave this model."""
    ex, base, settings = bench.ex, bench.base, bench.settings
    if bench.gt is not None:
        value, name = flat.get("model_capture"), "capture"
    else:
        held = champion.engagements_in_test(base, ex)
        value = decision.window_share(
            hour_guard.served_predict(booster.predict, hour_source),
            ex.test.profiles,
            held,
            settings.training.gate_window_hours,
            with_best=True,
        )
        name = "engagement share in the chosen windows"
    figures = gate.Figures(
        kind=ex.kind,
        log_loss=flat.get("log_loss"),
        decision=None if value is None or not np.isfinite(value) else float(value),
        channel_events=recipe.channel_events(base),
        reject_share=recipe.reject_share(bench.data),
    )
    return figures, name


def scored_champion(name: str, bench: champion.TestBench, echo) -> champion.ChampionScore | None:
    """The current champion scored with its own recipe on this run's test cells (None: no champion)."""
    version = registry.champion_version(name)
    if version is None:
        return None
    try:
        score = champion.score_champion(name, version, bench)
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
