"""`import sendtime`: the CLI's operations for notebooks and scripts, returning objects, not exit codes.

The same stage functions the commands run, with Python-shaped inputs (DataFrames, lists of dicts,
datetimes) and results (the workflows' result objects, DataFrames). `Model.predict` answers through the
HTTP API's own request model and handler (`api_models.PredictRequest`, `api.answer`), and `Model.plan`
through the batch scheduler's (`planner.schedule_frame`), so a notebook gets the decisions `sendtime
serve` and `sendtime schedule` would give (`notebook_model.py`). Bad arguments raise ValueError naming
the argument.

Everything heavy is imported inside the functions: `import sendtime` (and so `sendtime --help`) stays
instant. The CLI (`cli.py`) parses options, calls these and prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sendtime.notebook_model import Model

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `import sendtime` stays ~1 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sendtime.configs.settings import Settings
    from sendtime.workflows.evaluate import EvaluateResult
    from sendtime.workflows.refresh import RefreshResult
    from sendtime.workflows.report import ReportResult
    from sendtime.workflows.train import TrainResult
    from sendtime.workflows.tune import TuneResult

    Config = str | Path | Settings | Mapping[str, Any] | None
    Echo = Callable[[str], None]


def _quiet(line: str) -> None:
    """The default `echo` here: a notebook gets return values; the progress lines go to the log."""
    import logging

    logging.getLogger("sendtime").info("%s", line)


def settings_of(config: Config = None) -> tuple[Settings, str | None]:
    """(settings, path of the YAML file or None) from a path, a Settings object, overrides, or None."""
    from sendtime.configs.settings import Settings, load_settings

    if config is None:
        return load_settings(), None
    if isinstance(config, Settings):
        return config.model_copy(deep=True), None  # the caller's object is never changed
    if isinstance(config, Mapping):
        return load_settings(overrides=dict(config)), None
    if isinstance(config, str | Path):
        return load_settings(config), str(config)
    raise ValueError(
        f"config: expected a YAML path, a Settings object or a dict of settings, got {type(config).__name__}"
    )


# ------------------------------------------------------------------------------ the CLI's stages
def simulate(
    out_dir: str | Path,
    subscribers: int = 2000,
    days: int = 84,
    seed: int = 0,
    *,
    soft_bounce_rate: float = 0.0,
    untyped_bounce_share: float = 0.0,
    progress: bool = False,
) -> dict:
    """`sendtime simulate`: a synthetic data folder with its ground truth; returns the summary."""
    from sendtime.experiments.simulate import simulate as write_world

    for name, value in (("subscribers", subscribers), ("days", days), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
            raise ValueError(
                f"{name}: expected a whole number >= {0 if name == 'seed' else 1}, got {value!r}"
            )
    return write_world(
        out_dir,
        subscribers=subscribers,
        days=days,
        seed=seed,
        progress=progress,
        soft_bounce_rate=soft_bounce_rate,
        untyped_bounce_share=untyped_bounce_share,
    )


def train(
    data_dir: str | Path,
    config: Config = None,
    *,
    allow_kind_change: bool = False,
    progress: bool = False,
    echo: Echo = _quiet,
    engine: str = "local",
) -> TrainResult:
    """`sendtime train`: the run's id, registered version, whether it was promoted and why (`gate`,
    `note`), and its metrics. `engine="spark"`: the feature base is computed on Spark."""
    from sendtime.workflows.train import train as train_run

    settings, path = settings_of(config)
    if allow_kind_change:
        settings.training.allow_kind_change = True
    folder = _folder(data_dir)
    return train_run(folder, settings, config_path=path, progress=progress, echo=echo, engine=engine)


def refresh(
    data_dir: str | Path,
    config: Config = None,
    *,
    progress: bool = False,
    echo: Echo = _quiet,
    engine: str = "local",
) -> RefreshResult:
    """`sendtime refresh`: today's profiles for the champion from an export (same model, same recipe),
    registered as the version's newest snapshot; `serve` picks it up without a restart. `engine="spark"`:
    the feature base is computed on Spark."""
    from sendtime.workflows.refresh import refresh as refresh_snapshot

    settings, path = settings_of(config)
    folder = _folder(data_dir)
    return refresh_snapshot(folder, settings, config_path=path, progress=progress, echo=echo, engine=engine)


def tune(
    data_dir: str | Path,
    trials: int,
    config: Config = None,
    *,
    out_config: str | Path = "configs/tuned.yaml",
    study: str = "sendtime",
    progress: bool = False,
    echo: Echo = _quiet,
) -> TuneResult:
    """`sendtime tune`: an Optuna search, each trial a nested MLflow run; writes the best config."""
    from sendtime.workflows.tune import tune as tune_runs

    settings, path = settings_of(config)
    return tune_runs(
        _folder(data_dir),
        trials,
        settings,
        config_path=path,
        out_config=out_config,
        study_name=study,
        progress=progress,
        echo=echo,
    )


def evaluate(
    data_dir: str | Path,
    version: str | int | None = None,
    config: Config = None,
    *,
    progress: bool = False,
    echo: Echo = _quiet,
) -> EvaluateResult:
    """`sendtime evaluate`: a registered version's (default: the champion's) offline figures on a folder."""
    from sendtime.workflows.evaluate import evaluate as evaluate_version

    settings, _ = settings_of(config)
    version = None if version is None else str(version)
    return evaluate_version(_folder(data_dir), settings, version=version, progress=progress, echo=echo)


def schedule(
    audience: str | Path,
    start: str,
    end: str,
    out: str | Path,
    config: Config = None,
    *,
    max_sms: int | None = None,
    max_per_hour: Mapping[str, int] | None = None,
    holdout: float = 0.0,
    explore: float = 0.0,
    campaign_time: str | None = None,
    seed: int = 0,
    engine: str = "local",
    echo: Echo = _quiet,
) -> Path:
    """`sendtime schedule`, file to file: the plan written to `out` (with its plot); returns `out`.
    `load().plan(...)` gives the same rows as a DataFrame without files."""
    from sendtime.serving.schedule import run_schedule

    settings, _ = settings_of(config)
    run_schedule(
        audience=audience,
        start=start,
        end=end,
        out=out,
        settings=settings,
        max_sms=max_sms,
        max_per_hour=max_per_hour,
        holdout=holdout,
        explore=explore,
        campaign_time=campaign_time,
        seed=seed,
        engine=engine,
        echo=echo,
    )
    return Path(out)


def report(
    plan: str | Path,
    data_dir: str | Path,
    out: str | Path | None = None,
    version: str | int | None = None,
    config: Config = None,
    *,
    campaign_time: str | None = None,
    export_end: str | None = None,
    seed: int = 0,
    echo: Echo = _quiet,
) -> ReportResult:
    """`sendtime report`: what a sent plan achieved (lift, off-policy values, calibration)."""
    from sendtime.workflows.report import report as plan_report

    settings, _ = settings_of(config)
    version = None if version is None else str(version)
    return plan_report(
        plan,
        data_dir,
        settings,
        out,
        version,
        seed=seed,
        campaign=campaign_time,
        export_end=export_end,
        echo=echo,
    )


def load(version: str | int = "champion", config: Config = None) -> Model:
    """The registered model (default: the version the `champion` alias points to now), pinned, with its
    profile snapshot: what `sendtime serve` and `sendtime schedule` load."""
    from mlflow.exceptions import MlflowException

    from sendtime import home
    from sendtime.serving.predictor import Predictor

    settings, _ = settings_of(config)
    pinned = None if str(version) == "champion" else str(version)
    try:
        return Model(Predictor.from_registry(settings, pinned), settings)
    except MlflowException as exc:  # the registry's own message is a stack of REST details
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        name = settings.training.registered_model
        raise LookupError(
            f"version: registered model '{name}' has no version {version!r} in {home.tracking_uri()}"
        ) from exc


def _folder(data_dir: str | Path) -> Path:
    if not isinstance(data_dir, str | Path):
        raise ValueError(f"data_dir: expected a folder path, got {type(data_dir).__name__}")
    return Path(data_dir)
