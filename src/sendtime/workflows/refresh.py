"""`sendtime refresh`: today's profiles for the champion, without retraining.

A model can stay champion for weeks while people's habits and opt-outs change daily. A refresh rebuilds
the champion's profile snapshot as of the export's end with the version's own recipe (the settings of its
training run and the shrinkage chosen then: choosing strengths again is what retraining is for), logs it
in an MLflow run of its own linked to the version, and points the version at it (`registry.
register_snapshot`). The model and its version number stay; the evidence, the opt-outs and the people are
the export's. `serve` notices it as it notices a new champion; `predict` and `schedule` load it next time.

The export should hold the history the profiles need, as training's did (the last weeks decay, they do
not vanish): a refresh sees only the export it is given.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import identity, unusable
from sendtime.features.engines import feature_base_on
from sendtime.features.load import load_folder
from sendtime.features.prepare import FeatureBase
from sendtime.features.profiles import Profiles, build_profiles
from sendtime.training import drift, recipe, registry
from sendtime.training.examples import SEND_RESPONSE
from sendtime.training.profile_only import MODEL_KIND_TAG

log = logging.getLogger(__name__)

REFRESH_OF_TAG = "sendtime.refresh_of"  # run tag: "<registered model>/<version>" the snapshot belongs to


@dataclass
class RefreshResult:
    run_id: str  # the refresh's MLflow run; its `profiles` artifact is the version's snapshot now
    version: str  # the model version refreshed: unchanged by a refresh
    model_kind: str
    profiles_as_of: str
    previous_as_of: str | None  # the snapshot it replaces
    subscribers: int
    opted_out: dict[str, int]  # people with the channel suppressed as of the new snapshot
    events: int
    seconds: float
    snapshot_uri: str
    stages: dict[str, float] = field(default_factory=dict)  # seconds: load, features, profiles, log


def export_end(base: FeatureBase) -> pd.Timestamp:
    """One second after the export's last usable event: sends, engagements and opt-outs alike, so that an
    unsubscribe after the last click still counts (training's snapshot ends at its last send or
    engagement; a refresh exists to catch the latest opt-outs)."""
    last = base.span[1]
    if len(base.optouts):
        last = max(last, base.optouts["at"].max())
    return last + pd.Timedelta(seconds=1)


def current_as_of(tags: dict) -> pd.Timestamp | None:
    """When the snapshot a version points to now is as of, from its tags (training's: its data's end)."""
    as_of = tags.get(registry.SNAPSHOT_AS_OF_TAG)
    if as_of:
        return pd.Timestamp(as_of)
    try:
        return pd.Timestamp(json.loads(tags.get("data_span") or "[]")[1]) + pd.Timedelta(seconds=1)
    except (ValueError, IndexError, TypeError):
        return None


def refresh(
    data_dir: str | Path,
    settings: Settings,
    config_path: str | None = None,
    progress: bool = True,
    echo=print,
    engine: str = "local",
) -> RefreshResult:
    """Rebuild the champion's profiles from `data_dir` and register them as its newest snapshot."""
    import mlflow

    t0 = time.perf_counter()
    registry.configure_mlflow(settings.training.experiment)
    for note in registry.recover_interrupted(settings.training.experiment):
        echo(note)
    name = settings.training.registered_model
    version = registry.champion_version(name)
    if version is None:
        raise LookupError(
            f"no '{registry.CHAMPION}' alias on registered model '{name}': run `sendtime train` first"
        )
    mv = registry.client().get_model_version(name, version)
    tags = dict(mv.tags or {})
    trained, shrinkage, _ = recipe.training_context(mv.run_id, settings, echo)
    if shrinkage is None:
        raise ValueError(
            f"model version {version} has no recorded profile shrinkage (its run's data.json): a refresh "
            "reuses the version's recipe and never chooses strengths again; run `sendtime train` instead"
        )
    t1 = time.perf_counter()
    data = load_folder(data_dir, trained.data)  # bad data fails before any state is created
    t2 = time.perf_counter()
    if (salt_warning := identity.default_salt_warning(trained, data_dir)) is not None:
        echo(salt_warning)
    base = feature_base_on(engine, data, trained, progress=progress)
    unusable.add_address_rejects(data, base.rejects, trained)
    as_of = export_end(base)
    previous_as_of = current_as_of(tags)
    if previous_as_of is not None and as_of < previous_as_of:
        raise ValueError(
            f"the export ends at {as_of - pd.Timedelta(seconds=1)}, before the snapshot version {version} "
            f"serves now (profiles as of {previous_as_of}): a refresh never moves profiles back in time"
        )
    kind = recipe.version_kind(tags)
    if kind and (kind == SEND_RESPONSE) != base.has_sends:
        echo(
            f"warning: version {version} was trained on {kind} data, but this export "
            f"{'has' if base.has_sends else 'has no'} sends; retrain if the export's kind changed for good"
        )
    t3 = time.perf_counter()
    profiles = build_profiles(base, as_of, trained.profiles, shrinkage)
    t4 = time.perf_counter()
    reference = drift.snapshot_population(registry.snapshot_run(name, str(version)))  # before it is replaced
    shift = drift.measure(data.events, settings.drift, profiles.table, profiles.population_shape, reference)
    result = _log(
        profiles, data, base, name, str(version), mv.run_id, tags, config_path, data_dir, t4 - t0, shift
    )
    result.stages = {
        "load": t2 - t1,
        "features": t3 - t2,
        "profiles": t4 - t3,
        "log": time.perf_counter() - t4,
    }
    result.previous_as_of = None if previous_as_of is None else previous_as_of.isoformat()
    result.seconds = time.perf_counter() - t0
    log.info(
        "profiles as of %s logged for version %s (run %s)", result.profiles_as_of, version, result.run_id
    )
    with mlflow.start_run(run_id=result.run_id):
        mlflow.log_metrics(
            {"refresh_seconds": result.seconds} | {f"{k}_seconds": v for k, v in result.stages.items()}
        )
    for line in shift.warnings:
        echo(line)
    now = registry.champion_version(name)
    if now is not None and str(now) != str(version):
        echo(f"note: the champion moved to version {now} meanwhile; this snapshot is version {version}'s")
    return result


def _log(
    profiles: Profiles,
    data,
    base: FeatureBase,
    name: str,
    version: str,
    model_run_id: str,
    tags: dict,
    config_path: str | None,
    data_dir: str | Path,
    built_seconds: float,
    shift: drift.Figures,
) -> RefreshResult:
    """The refresh's MLflow run (linked to the version by tags and params), its snapshot, and the
    version's tags pointing at it."""
    import mlflow

    fp = recipe.fingerprint(data)
    opted = {c: int(profiles.table[f"{c}_opted_out"].sum()) for c in S.CHANNELS}
    model_kind = tags.get(MODEL_KIND_TAG, "lightgbm")
    link = {
        REFRESH_OF_TAG: f"{name}/{version}",
        "sendtime.command": "refresh",
        "model_name": name,
        "model_version": version,
        "model_run_id": model_run_id,
        "model_kind": model_kind,
        "data_sha256": fp["sha256"],
    }
    as_of = profiles.as_of.isoformat()
    with (
        mlflow.start_run(run_name=f"refresh-v{version}", tags={**registry.process_tags(), **link}) as run,
        registry.scratch_dir() as out,
    ):
        mlflow.log_params(
            {
                "model_name": name,
                "model_version": version,
                "model_run_id": model_run_id,
                "data": str(Path(data_dir).resolve()),
                "config": config_path or "defaults",
                "profiles_as_of": as_of,
            }
        )
        mlflow.log_dict(
            {
                "fingerprint": fp,
                "stats": base.stats,
                "shrinkage": profiles.shrinkage.to_dict(),
                "profiles_as_of": as_of,
                "data_span": list(profiles.data_span),
                "opted_out": opted,
            },
            "data.json",
        )
        mlflow.log_metrics(
            {"subscribers": len(profiles), "events": fp["events"], "build_seconds": built_seconds}
            | {f"opted_out_{c}": n for c, n in opted.items()}
        )
        drift.log(shift)  # before the snapshot is published: whoever sees it finds the figures too
        data.write_rejects(out / "rejects.csv")
        mlflow.log_artifact(str(out / "rejects.csv"))
        profiles.save(out / registry.SNAPSHOT_ARTIFACT)
        mlflow.log_artifacts(str(out / registry.SNAPSHOT_ARTIFACT), registry.SNAPSHOT_ARTIFACT)
    run_id = run.info.run_id
    registry.register_snapshot(name, version, run_id, as_of)
    return RefreshResult(
        run_id=run_id,
        version=version,
        model_kind=model_kind,
        profiles_as_of=as_of,
        previous_as_of=None,
        subscribers=len(profiles),
        opted_out=opted,
        events=int(fp["events"]),
        seconds=0.0,
        snapshot_uri=f"runs:/{run_id}/{registry.SNAPSHOT_ARTIFACT}",
    )
