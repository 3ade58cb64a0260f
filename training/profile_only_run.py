"""`sendtime train` on data too short to train and test a model: the profile-only decision maker's run.

The run logs what a model's run logs where it has a meaning (params, config, data fingerprint, rejects,
hour-of-week plots, the profile snapshot, the split design, the drift watch's figures: a short export is
where a user most needs to see that engagement has moved) and no test metrics: there is no test. The
version is the decision model every version is (serving/decision_model.py: a python-function model
that answers rows of subscribers with the API's decisions), here with the profile rule in place of a
booster and no LightGBM flavour; registered and tagged `model_kind=profile_only`. (`ProfileOnlyPyfunc`
below is how versions registered before that were logged: they still load.)

The gate, kept simple: a profile-only version becomes champion when there is no champion yet, or when
the champion is itself profile-only (the newer one has seen more data). It never replaces a trained,
tested model: nothing here was tested, so nothing says it is better. The other way round, a trained
model is compared with a profile-only champion on its test cells like any champion (the profile-only
rule scores them from the same features), so a model must beat the profile's own rule to replace it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from sendtime.features.model_features import FEATURES, feature_matrix, gather_rows
from sendtime.features.profiles import build_profiles
from sendtime.training import drift, examples, plots, recipe, registry, split_design
from sendtime.training.profile_only import (
    MODEL_KIND_TAG,
    PROFILE_ONLY,
    ProfileOnlyModel,
)
from sendtime.training.recipe import RunInputs

log = logging.getLogger(__name__)


class ProfileOnlyPyfunc(PythonModel):
    """The MLflow face of `ProfileOnlyModel`: a frame of FEATURES in, probabilities out. Logged as a
    model from code (profile_only_pyfunc.py); the label kind comes from the model config."""

    def __init__(self, kind: str = examples.SEND_RESPONSE) -> None:
        self.kind = kind

    def load_context(self, context) -> None:
        self.kind = (context.model_config or {}).get("kind", self.kind)

    def model(self) -> ProfileOnlyModel:
        return ProfileOnlyModel(self.kind)

    def predict(self, context, model_input: pd.DataFrame, params=None):
        frame = pd.DataFrame(model_input)
        return self.model().predict(frame[FEATURES].to_numpy(dtype=np.float64))


@dataclass
class ProfileOnlyResult:
    run_id: str
    version: str
    promoted: bool
    kind: str
    why_promoted: str


def _champion_is_profile_only(name: str, version: str) -> bool:
    tags = registry.client().get_model_version(name, version).tags or {}
    return tags.get(MODEL_KIND_TAG) == PROFILE_ONLY


def train(
    inputs: RunInputs,
    design: split_design.SplitDesign,
    reason: str,
    register: Callable[..., str],
    echo: Callable[[str], None] = print,
) -> ProfileOnlyResult:
    """Profiles as of the end of the data (strengths chosen on its held-out blocks), logged and
    registered as a profile-only version; promoted by the rule in the module docstring. `register` logs
    and registers the model (`serving.decision_model.log_and_register`, handed down by the workflow:
    the decision model sits above training) and returns the version."""
    data, base, settings = inputs.data, inputs.base, inputs.settings
    fingerprint = recipe.fingerprint(data)
    kind = examples.SEND_RESPONSE if base.has_sends else examples.ACTIVITY
    as_of = base.span[1] + pd.Timedelta(seconds=1)
    final = build_profiles(base, as_of, settings.profiles)
    shrinkage = examples.apply_shrinkage_overrides(final.shrinkage, settings.profiles.shrinkage_overrides)
    if shrinkage != final.shrinkage:
        final = build_profiles(base, as_of, settings.profiles, shrinkage)
    model = ProfileOnlyModel(kind)
    rows = gather_rows(final, np.arange(min(len(final), 50)))
    m = len(rows)
    example = feature_matrix(
        rows, final, np.arange(m), np.arange(m) % 2, (np.arange(m) * 7) % 168
    )  # a few cells, for the signature

    name = settings.training.registered_model
    champion = registry.champion_version(name)
    reference = drift.champion_population(name)  # read before this version may replace the champion
    rejected = recipe.reject_share(data)
    if rejected > settings.training.gate_max_reject_share:
        promoted, why = (
            False,
            f"{rejected:.1%} of the event rows were rejected (more than training.gate_max_reject_share="
            f"{settings.training.gate_max_reject_share:.0%}; see rejects.csv)",
        )
    elif champion is None:
        promoted, why = True, "no champion yet"
    elif _champion_is_profile_only(name, champion):
        promoted, why = (
            True,
            f"the champion v{champion} is profile-only too; this one has seen the latest data",
        )
    else:
        promoted, why = (
            False,
            f"the champion v{champion} is a trained, tested model; a profile-only version never replaces one",
        )

    with (
        mlflow.start_run(run_name=f"train-{kind}-profile-only", tags=registry.process_tags()) as run,
        registry.scratch_dir() as out,
    ):
        mlflow.log_params(
            {
                "kind": kind,
                MODEL_KIND_TAG: PROFILE_ONLY,
                "config": inputs.config_path or "defaults",
                "data": inputs.data_dir,
                **{
                    f"shrinkage_{c}_{k}": v
                    for c, d in shrinkage.to_dict().items()
                    for k, v in d.items()
                    if k in ("alpha_daily", "alpha_weekly", "beta", "blur", "cohort_strength")
                },
            }
        )
        split_design.log_to_mlflow(design)
        mlflow.log_dict(settings.model_dump(mode="json"), "config.json")
        mlflow.log_dict(
            {
                "fingerprint": fingerprint,
                "design": design.params(),
                "profile_only_reason": reason,
                "stats": base.stats,
                "shrinkage": shrinkage.to_dict(),
            },
            "data.json",
        )
        mlflow.set_tags({"kind": kind, MODEL_KIND_TAG: PROFILE_ONLY, "data_sha256": fingerprint["sha256"]})
        recipe.log_provenance(inputs.data_dir, fingerprint["sha256"])
        drift.watch(
            data.events,
            settings.drift,
            echo,
            table=final.table,
            population=final.population_shape,
            reference=reference,
        )  # no calibration error: nothing was tested
        data.write_rejects(out / "rejects.csv")
        mlflow.log_artifact(str(out / "rejects.csv"))
        figs = out / "plots"
        plots.heatmaps(
            {"population": final.population_response},
            figs / "hour_of_week.png",
            "Population response by local hour-of-week (profile-only)",
        )
        mlflow.log_artifacts(str(figs), "plots")
        final.save(out / registry.SNAPSHOT_ARTIFACT)
        mlflow.log_artifacts(str(out / registry.SNAPSHOT_ARTIFACT), registry.SNAPSHOT_ARTIFACT)
        version = register(
            model,
            example,
            FEATURES,
            name,
            tags={
                "kind": kind,
                MODEL_KIND_TAG: PROFILE_ONLY,
                "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "data_span": json.dumps(list(final.data_span)),
                "profile_only_reason": reason,
            },
            snapshot=out / registry.SNAPSHOT_ARTIFACT,
            settings=settings,
        )
        if promoted:
            registry.promote(name, version)
        mlflow.set_tags({"registered_version": version, "promoted": str(promoted), "promotion": why})
    log.info("profile-only version %s registered; champion: %s (%s)", version, promoted, why)
    return ProfileOnlyResult(run.info.run_id, version, promoted, kind, why)
