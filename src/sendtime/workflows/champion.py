"""The champion's figures on the challenger's test cells, each model with its own features.

A version's features are made by a recipe: its settings (`config.json` of its training run) and its
profile shrinkage (`data.json`). Scoring the champion's booster on features built with the challenger's
recipe (what the gate used to do) judges it on inputs it was never trained for: a champion trained with
other profile settings looked worse than it is. Here the champion's profiles are rebuilt with its own
recipe, as of the same instant as the challenger's test profiles (never later: its registered snapshot
holds the test weeks' events), and scored on the same test cells, the same labelled sends; so the
champion gets exactly the score `sendtime evaluate` gives it on this folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import local_time
from sendtime.features.load import DataFolder
from sendtime.features.model_features import FEATURES, feature_matrix, gather_rows
from sendtime.features.prepare import FeatureBase, build_feature_base
from sendtime.features.profiles import build_profiles
from sendtime.features.strengths import Shrinkage
from sendtime.training import decision, examples, hour_guard, model, recipe, registry
from sendtime.workflows.capture import GroundTruth, model_capture

# the settings sections that shape the FeatureBase (identity, signals, local time): when the champion's
# equal the challenger's, its profiles are built from the challenger's base
BASE_SECTIONS = ("data", "identity", "signals")


@dataclass(frozen=True)
class TestBench:
    """What the challenger and the champion are both judged on: this run's test cells, the data they
    came from, the ground truth where the folder has it, and the challenger's settings (policy included)."""

    ex: examples.Examples
    base: FeatureBase
    data: DataFolder
    gt: GroundTruth | None
    settings: Settings


@dataclass
class ChampionScore:
    version: str
    kind: str
    log_loss: float | None = None
    decision: float | None = None
    channel_events: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)  # why a figure is missing


def _recipe(run_id: str, settings: Settings) -> tuple[Settings, Shrinkage | None, dict]:
    """The settings and shrinkage the champion was trained with, and its data.json."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the train output readable
    return recipe.training_context(run_id, settings, lambda *_: None)


def _map_cells(
    cells: pd.DataFrame, base: FeatureBase, own: FeatureBase, default_timezone: str
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's row in the champion's base (-1: unknown there, a cold start) and its local hour there."""
    ids = base.subscribers[S.SUBSCRIBER_ID].to_numpy()[cells["sub"].to_numpy()]
    rows = pd.Index(own.subscribers[S.SUBSCRIBER_ID]).get_indexer(ids)
    how = cells["how"].to_numpy()
    if cells["at"].notna().all():  # sends: their local hour in the champion's idea of the person's zone
        zones = own.subscribers["timezone"].to_numpy(dtype=object)[np.maximum(rows, 0)]
        zones = np.where(rows >= 0, zones, default_timezone)
        how = local_time_how(cells["at"], zones)
    return rows, how


def local_time_how(at: pd.Series, zones: np.ndarray) -> np.ndarray:
    return local_time.local_hour_of_week(at.reset_index(drop=True), pd.Series(zones))


def score_champion(name: str, version: str, bench: TestBench) -> ChampionScore:
    """The champion's kind, training channels, and (same kind only) its log loss and decision measure on
    the challenger's test cells, with features from its own recipe. Policy settings are the challenger's:
    both plans obey the same rules."""
    ex, base, data, gt, settings = bench.ex, bench.base, bench.data, bench.gt, bench.settings
    mv = registry.client().get_model_version(name, version)
    tags = dict(mv.tags or {})
    trained, shrinkage, logged = _recipe(mv.run_id, settings)
    score = ChampionScore(str(version), recipe.version_kind(tags) or "unknown")
    score.channel_events = logged.get("channel_events")
    if score.kind != ex.kind:
        score.notes.append(f"champion v{version} is of kind {score.kind}: not scored on {ex.kind} cells")
        return score
    try:
        booster = registry.load_booster(name, version)
    except Exception as exc:  # e.g. a version without a LightGBM model
        score.notes.append(f"champion v{version} could not be loaded ({exc}); treated as absent")
        return score
    if list(booster.feature_name()) != list(FEATURES):
        score.notes.append(f"champion v{version} was trained with other features; treated as absent")
        return score

    same_base = (
        all(getattr(trained, s).model_dump() == getattr(settings, s).model_dump() for s in BASE_SECTIONS)
        and trained.salt() == settings.salt()
    )
    own = base if same_base else build_feature_base(data, trained)
    cells = ex.test.cells
    if same_base:
        rows, how = cells["sub"].to_numpy(), cells["how"].to_numpy()
        person_rows = None
    else:
        rows, how = _map_cells(cells, base, own, trained.data.default_timezone)
        ids = base.subscribers[S.SUBSCRIBER_ID].to_numpy()
        person_rows = pd.Index(own.subscribers[S.SUBSCRIBER_ID]).get_indexer(ids)
    if shrinkage is None:  # an old run: chosen as build_examples chooses it
        b = examples.boundaries(own, trained)
        shrinkage = examples.apply_shrinkage_overrides(
            build_profiles(own, b["validation"], trained.profiles).shrinkage,
            trained.profiles.shrinkage_overrides,
        )
    as_of = ex.test.profiles.as_of
    profiles = build_profiles(own, as_of, trained.profiles, shrinkage)
    uniq, idx = np.unique(rows, return_inverse=True)
    X = feature_matrix(gather_rows(profiles, uniq), profiles, idx, cells["channel"].to_numpy(), how)
    score.log_loss = model.metrics(ex.test.y, booster.predict(X))["log_loss"]
    if gt is not None:
        policy = trained.model_copy(update={"policy": settings.policy})  # its hashes, the same rules
        score.decision = model_capture(booster, profiles, gt, policy, hour_source=tags.get(hour_guard.TAG))
    else:
        held = engagements_in_test(base, ex)
        if not same_base:  # local hours in the champion's idea of each person's zone
            zones = own.subscribers["timezone"].to_numpy(dtype=object)
            r = person_rows[held["sub"].to_numpy()]
            zones = np.where(r >= 0, zones[np.maximum(r, 0)], trained.data.default_timezone)
            held["how"] = local_time_how(held["at"], zones)
        score.decision = decision.window_share(
            hour_guard.served_predict(booster.predict, tags.get(hour_guard.TAG)),
            profiles,
            held,
            settings.training.gate_window_hours,
            rows=person_rows,
            with_best=True,
        )
    return score


def engagements_in_test(base: FeatureBase, ex: examples.Examples) -> pd.DataFrame:
    """The human engagements of the test period (from the test profiles' instant to the data's end)."""
    end = pd.Timestamp(ex.boundaries["end"]) + pd.Timedelta(seconds=1)
    return decision.held_out_engagements(base.engagements, ex.test.profiles.as_of, end)
