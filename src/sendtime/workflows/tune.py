"""`sendtime tune`: Optuna search over LightGBM parameters and profile shrinkage, judged on validation weeks.

- The objective is the early-stopped model's log loss on the time-ordered validation weeks; the test
  weeks are never looked at, so `sendtime train` and `sendtime evaluate` still report honest numbers.
- Each completed trial is also judged by the promotion gate's decision measure on the validation weeks
  (`training.decision`: capture where the folder has ground truth, else the held-out engagement share
  inside the chosen windows). The best trial is picked as the gate would: the highest decision measure,
  and among the trials within `training.gate_decision_tolerance` of it, the lowest validation log loss
  (`pick_best`). Log loss still steers the sampler and the pruner (they need one number per round).
- TPE sampler; a median pruner fed every boosting round by `LightGBMPruningCallback` (validation
  `binary_logloss`) stops hopeless trials early.
- The study is stored in SQLite under SENDTIME_HOME (`home.optuna_storage()`): running again with the
  same `--study` resumes it and adds N more trials (on the same data: the study keeps the data's
  fingerprint). A new study starts with the given settings as its first trial, so the best found is
  never worse than where the search started (by more than the tolerance, on the decision measure).
- Each invocation is one MLflow parent run; each trial a nested run (params, validation log loss,
  best iteration, state).
- Profile shrinkage is tuned with the model: per channel, a multiplier on the chosen daily and weekly
  Dirichlet strengths (`alpha_daily`, `alpha_weekly`). The FeatureBase is built once and examples are
  rebuilt only for a shrinkage choice not seen recently (a small cache of feature matrices).

At the end the best trial is written as a YAML config for `sendtime train --config`: the given settings'
departures from the defaults plus the tuned `training.lgbm`, `training.num_boost_round` and
`profiles.shrinkage_overrides`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sendtime import home
from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import identity, unusable
from sendtime.features.load import load_folder
from sendtime.features.prepare import FeatureBase, build_feature_base
from sendtime.features.profiles import Profiles
from sendtime.features.strengths import Shrinkage
from sendtime.training import decision, examples, hour_guard, model, registry
from sendtime.training.recipe import fingerprint
from sendtime.workflows import capture

PRUNING_METRIC = "binary_logloss"
VALID_NAME = "validation"  # the name model.fit gives its validation set (valid_names)
ALPHA_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
SCALED_STRENGTHS = ("alpha_daily", "alpha_weekly")
POOLED = 1e6  # profiles write an infinite strength (the prior alone) as this number
EXAMPLE_CACHE = 4  # feature matrices kept per distinct shrinkage choice (each is a full copy of the examples)
# name: (low, high, log scale, integer); the given settings' value is clipped into the range for the first trial
LGBM_SPACE = {
    "learning_rate": (0.01, 0.2, True, False),
    "num_leaves": (7, 127, True, True),
    "min_data_in_leaf": (10, 400, True, True),
    "feature_fraction": (0.5, 1.0, False, False),
    "bagging_fraction": (0.5, 1.0, False, False),
    "lambda_l2": (1e-3, 30.0, True, False),
}


@dataclass
class TuneResult:
    study_name: str
    storage: str
    trials: int  # trials in the study after this run, all states
    best_value: float
    best_trial: int
    best_params: dict
    out_config: Path
    run_id: str
    best_decision: float | None = None  # the chosen trial's decision measure on the validation weeks
    decision_name: str = ""


def suggest(trial) -> tuple[dict, dict[str, float]]:
    """One point of the search space: LightGBM parameters and a shrinkage multiplier per channel."""
    lgbm = {}
    for name, (low, high, log, integer) in LGBM_SPACE.items():
        suggest_ = trial.suggest_int if integer else trial.suggest_float
        lgbm[name] = suggest_(name, low, high, log=log)
    scales = {c: float(trial.suggest_categorical(f"{c}_alpha_scale", ALPHA_SCALES)) for c in S.CHANNELS}
    return lgbm, scales


def shrinkage_overrides(base_shrinkage: Shrinkage, scales: dict[str, float]) -> dict[str, dict[str, float]]:
    """The strengths that change: scaled daily and weekly strengths of each channel whose scale is not 1.

    A strength at POOLED stands for infinity (fully pooled toward the prior): scaling it means nothing.
    """
    out = {}
    for c, s in scales.items():
        changed = {
            k: float(getattr(base_shrinkage[c], k)) * s
            for k in SCALED_STRENGTHS
            if getattr(base_shrinkage[c], k) < POOLED
        }
        if s != 1.0 and changed:
            out[c] = changed
    return out


def pick_best(trials: list[tuple[int, float, float | None]], tolerance: float) -> int | None:
    """The number of the best trial among (number, validation log loss, decision measure) of completed
    trials: the highest decision measure, then the lowest log loss among the trials within `tolerance`
    of it (the gate ignores smaller differences). Trials without a measure (from before it was recorded)
    only count when no trial has one. None when there is no trial."""
    if not trials:
        return None
    measured = [t for t in trials if t[2] is not None and np.isfinite(t[2])]
    if not measured:
        return min(trials, key=lambda t: (t[1], t[0]))[0]
    top = max(t[2] for t in measured)
    near = [t for t in measured if t[2] >= top - tolerance]
    return min(near, key=lambda t: (t[1], -t[2], t[0]))[0]


def starting_params(settings: Settings) -> dict:
    """The given settings as a point of the search space (the first trial of a new study)."""
    lgbm = settings.training.lgbm
    out: dict = {}
    for name, (low, high, _log, integer) in LGBM_SPACE.items():
        value = float(np.clip(lgbm.get(name, np.sqrt(low * high)), low, high))
        out[name] = int(round(value)) if integer else value
    out.update({f"{c}_alpha_scale": 1.0 for c in S.CHANNELS})
    return out


@dataclass(frozen=True)
class TrialData:
    """What a trial fits and is judged on for one shrinkage choice: the train and validation matrices and
    the validation profiles."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    val_profiles: Profiles


class _ExampleCache:
    """Feature matrices per shrinkage choice; the FeatureBase is shared, examples rebuilt only on a miss."""

    def __init__(self, base: FeatureBase, settings: Settings, echo) -> None:
        self.base, self.settings, self.echo = base, settings, echo
        first = examples.build_examples(base, settings)
        self.kind = first.kind
        # the validation weeks' human engagements: what the window measure judges each trial on
        self.held_out = decision.held_out_engagements(
            base.engagements,
            pd.Timestamp(first.boundaries["validation"]),
            pd.Timestamp(first.boundaries["test"]),
        )
        self.base_shrinkage = first.shrinkage  # the held-out choice plus any configured overrides
        self._items: OrderedDict = OrderedDict()
        self._put((1.0,) * len(S.CHANNELS), first)

    def _put(self, key: tuple, ex: examples.Examples) -> TrialData:
        item = TrialData(ex.train.X, ex.train.y, ex.validation.X, ex.validation.y, ex.validation.profiles)
        self._items[key] = item
        while len(self._items) > EXAMPLE_CACHE:
            self._items.popitem(last=False)
        return item

    def get(self, scales: dict[str, float]) -> TrialData:
        key = tuple(scales[c] for c in S.CHANNELS)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        t0 = time.perf_counter()
        shrinkage = examples.apply_shrinkage_overrides(
            self.base_shrinkage, shrinkage_overrides(self.base_shrinkage, scales)
        )
        ex = examples.build_examples(self.base, self.settings, shrinkage=shrinkage)
        self.echo(
            f"  examples rebuilt for alpha scales {', '.join(f'{c} x{s:g}' for c, s in scales.items())} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        return self._put(key, ex)


def tuned_config(
    settings: Settings,
    best_params: dict,
    best_iteration: int | None,
    base_shrinkage: Shrinkage,
) -> dict:
    """YAML content for `sendtime train --config`: the settings' departures from the defaults + the best trial."""
    current = settings.model_dump(mode="json")
    defaults = Settings().model_dump(mode="json")
    out: dict = {}
    for section, values in current.items():
        changed = {k: v for k, v in values.items() if v != defaults[section].get(k)}
        if changed:
            out[section] = changed
    training = out.setdefault("training", {})
    # a dict field is replaced as a whole when given, so the whole LightGBM dict is written
    training["lgbm"] = {**settings.training.lgbm, **{k: best_params[k] for k in LGBM_SPACE}}
    if best_iteration:
        # the rounds the best trial needed: train early-stops at the same round, without running further
        cap = settings.training.num_boost_round
        training["num_boost_round"] = int(min(cap, best_iteration + settings.training.early_stopping_rounds))
    scales = {c: float(best_params[f"{c}_alpha_scale"]) for c in S.CHANNELS}
    overrides = {c: dict(v) for c, v in (settings.profiles.shrinkage_overrides or {}).items()}
    for channel, values in shrinkage_overrides(base_shrinkage, scales).items():
        overrides.setdefault(channel, {}).update(values)
    if overrides:
        out.setdefault("profiles", {})["shrinkage_overrides"] = overrides
    return out


def tune(
    data_dir: str | Path,
    trials: int,
    settings: Settings,
    *,
    config_path: str | None = None,
    out_config: str | Path = "configs/tuned.yaml",
    study_name: str = "sendtime",
    progress: bool = True,
    echo=print,
) -> TuneResult:
    import mlflow
    import optuna
    from optuna_integration import LightGBMPruningCallback

    if trials < 1:
        raise ValueError(f"--trials must be at least 1 (got {trials})")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    registry.configure_mlflow(settings.training.experiment)
    for note in registry.recover_interrupted(settings.training.experiment):
        echo(note)
    storage = home.optuna_storage()
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="minimize",
        load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=20),
    )
    already = len(study.trials)
    # a resumed study gets a fresh seed, so its random start-up trials do not repeat the earlier ones
    study.sampler = optuna.samplers.TPESampler(seed=already)
    if already == 0:
        study.enqueue_trial(starting_params(settings))
    echo(f"study '{study_name}' in {storage}: {already} earlier trials; running {trials} more")

    data = load_folder(data_dir, settings.data)
    if (salt_warning := identity.default_salt_warning(settings, data_dir)) is not None:
        echo(salt_warning)
    sha = fingerprint(data)["sha256"]
    if study.user_attrs.setdefault("data_sha256", sha) != sha:  # trial values compare only on the same data
        raise ValueError(
            f"study '{study_name}' was run on other data (fingerprint {study.user_attrs['data_sha256']}, this "
            f"folder {sha}): pass another --study name"
        )
    study.set_user_attr("data_sha256", sha)
    base = build_feature_base(data, settings, progress=progress)
    unusable.add_address_rejects(data, base.rejects, settings)  # unusable addresses count as rejects too
    echo(data.summary())
    cache = _ExampleCache(base, settings, echo)
    gt = capture.GroundTruth.load(data_dir)
    measure = "capture" if gt is not None else "window_share"
    tolerance = settings.training.gate_decision_tolerance

    # a trial is judged on the hours serving would pick, but it has no hour guard verdict (train decides
    # that on the test weeks, which tune never sees): the source is known only where the config forces
    # it; otherwise no channel is guarded (the model's hours with serving's rank tie-break)
    profile_forced = settings.training.hour_source == hour_guard.PROFILE
    trial_hours = {c: hour_guard.PROFILE for c in S.CHANNELS} if profile_forced else None

    def judge(booster, profiles) -> float:
        """The gate's decision measure of a trial's model on the validation weeks."""
        if gt is not None:
            return float(capture.model_capture(booster, profiles, gt, settings, hour_source=trial_hours))
        return decision.window_share(
            hour_guard.served_predict(booster.predict, trial_hours),
            profiles,
            cache.held_out,
            settings.training.gate_window_hours,
            with_best=True,
        )

    def chosen(study: optuna.Study):
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        number = pick_best([(t.number, t.value, t.user_attrs.get(measure)) for t in done], tolerance)
        return None if number is None else study.trials[number]

    echo(
        f"features: {len(base.subscribers):,} subscribers; examples ({cache.kind}) built once per shrinkage choice"
    )

    def objective(trial: optuna.Trial) -> float:
        lgbm, scales = suggest(trial)
        trial_data = cache.get(scales)
        pruned = None
        with mlflow.start_run(
            run_name=f"{study_name}-trial-{trial.number}", nested=True, tags=registry.process_tags()
        ):
            mlflow.set_tags(
                {"sendtime.command": "tune-trial", "study": study_name, "trial": str(trial.number)}
            )
            mlflow.log_params(
                {
                    **{f"lgbm_{k}": v for k, v in lgbm.items()},
                    **{f"{c}_alpha_scale": s for c, s in scales.items()},
                }
            )
            try:
                booster = model.fit(
                    trial_data.X_train,
                    trial_data.y_train,
                    trial_data.X_val,
                    trial_data.y_val,
                    settings.training,
                    params={**lgbm, "metric": PRUNING_METRIC},
                    callbacks=[LightGBMPruningCallback(trial, PRUNING_METRIC, valid_name=VALID_NAME)],
                )
            except optuna.TrialPruned as exc:
                pruned = exc
                mlflow.set_tag("state", "pruned")
            else:
                value = float(booster.best_score[VALID_NAME][PRUNING_METRIC])
                best_iteration = int(booster.best_iteration or booster.current_iteration())
                trial.set_user_attr("best_iteration", best_iteration)
                measured = judge(booster, trial_data.val_profiles)
                if np.isfinite(measured):
                    trial.set_user_attr(measure, measured)
                    mlflow.log_metric(f"validation_{measure}", measured)
                mlflow.log_metrics({"validation_log_loss": value, "best_iteration": best_iteration})
                mlflow.set_tag("state", "complete")
        if pruned is not None:
            raise pruned
        return value

    def report(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if frozen.state == optuna.trial.TrialState.PRUNED:
            line = f"trial {frozen.number}: pruned after {(frozen.last_step or 0) + 1} rounds"
        else:
            line = f"trial {frozen.number}: validation log loss {frozen.value:.5f}"
            if measure in frozen.user_attrs:
                line += f", {measure} {frozen.user_attrs[measure]:.4f}"
        best = chosen(study)
        if best is not None:
            line += f"; best trial {best.number} (log loss {best.value:.5f}"
            line += f", {measure} {best.user_attrs[measure]:.4f})" if measure in best.user_attrs else ")"
        echo(line)

    with mlflow.start_run(run_name=f"tune-{study_name}", tags=registry.process_tags()) as parent:
        mlflow.set_tags({"sendtime.command": "tune", "study": study_name, "optuna_storage": storage})
        mlflow.log_params(
            {
                "data": str(Path(data_dir).resolve()),
                "config": config_path or "defaults",
                "trials_requested": trials,
                "trials_before": already,
                "kind": cache.kind,
            }
        )
        study.optimize(objective, n_trials=trials, callbacks=[report], gc_after_trial=False)
        best = chosen(study)
        if best is None:
            raise ValueError(f"study '{study_name}' has no completed trial (all pruned or failed)")
        best_decision = best.user_attrs.get(measure)
        content = tuned_config(
            settings, best.params, best.user_attrs.get("best_iteration"), cache.base_shrinkage
        )
        out_path = Path(out_config)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        header = (
            f"# written by `sendtime tune` at {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC: study "
            f"'{study_name}', best trial {best.number} of {len(study.trials)},\n# validation log loss "
            f"{best.value:.6f}"
            + (f", validation {measure} {best_decision:.4f}" if best_decision is not None else "")
            + f". Use with: sendtime train --data DIR --config {out_path}\n"
        )
        out_path.write_text(header + yaml.safe_dump(content, sort_keys=False))
        mlflow.log_metrics({"best_validation_log_loss": float(best.value), "trials_total": len(study.trials)})
        if best_decision is not None:
            mlflow.log_metric(f"best_validation_{measure}", float(best_decision))
        mlflow.set_tags({"best_trial": str(best.number)})
        mlflow.log_artifact(str(out_path))
    by = f"validation {measure} {best_decision:.4f}, " if best_decision is not None else ""
    echo(
        f"best trial {best.number} of {len(study.trials)} in study '{study_name}' ({by}validation log loss "
        f"{best.value:.5f}; chosen by {measure}, then log loss within {tolerance:g}); wrote {out_path}"
    )
    return TuneResult(
        study_name,
        storage,
        len(study.trials),
        float(best.value),
        best.number,
        dict(best.params),
        out_path,
        parent.info.run_id,
        None if best_decision is None else float(best_decision),
        measure,
    )


def run_tune(
    data: str | Path,
    trials: int,
    settings: Settings,
    *,
    config_path: str | None = None,
    out_config: str | Path = "configs/tuned.yaml",
    study_name: str = "sendtime",
) -> int:
    tune(data, trials, settings, config_path=config_path, out_config=out_config, study_name=study_name)
    return 0
