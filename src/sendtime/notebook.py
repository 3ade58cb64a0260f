"""`import sendtime`: the CLI's operations for notebooks and scripts, returning objects, not exit codes.

The same stage functions the commands run, with Python-shaped inputs (DataFrames, lists of dicts,
datetimes) and results (the workflows' result objects, DataFrames). `Model.predict` answers through the
HTTP API's own request model and handler (`api_models.PredictRequest`, `api.answer`), and `Model.plan`
through the batch scheduler's (`planner.schedule_frame`), so a notebook gets the decisions `sendtime
serve` and `sendtime schedule` would give. Bad arguments raise ValueError naming the argument.

Everything heavy is imported inside the functions: `import sendtime` (and so `sendtime --help`) stays
instant. The CLI (`cli.py`) parses options, calls these and prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `import sendtime` stays ~1 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    import pandas as pd

    from sendtime.configs.settings import Settings
    from sendtime.serving.predictor import Predictor
    from sendtime.workflows.evaluate import EvaluateResult
    from sendtime.workflows.report import ReportResult
    from sendtime.workflows.train import TrainResult
    from sendtime.workflows.tune import TuneResult

    Config = str | Path | Settings | Mapping[str, Any] | None
    Echo = Callable[[str], None]

# The serving checks name the CLI's options; a notebook user passed Python arguments.
_OPTIONS = r"--(start|end|campaign-time|max-sms|max-per-hour|holdout|explore|out)\b"


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


def _argument_names(exc: ValueError) -> ValueError:
    import re

    return ValueError(re.sub(_OPTIONS, lambda m: m.group(1).replace("-", "_"), str(exc)))


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
) -> TrainResult:
    """`sendtime train`: the run's id, registered version, whether it was promoted and why (`gate`,
    `note`), and its metrics."""
    from sendtime.workflows.train import train as train_run

    settings, path = settings_of(config)
    if allow_kind_change:
        settings.training.allow_kind_change = True
    return train_run(_folder(data_dir), settings, config_path=path, progress=progress, echo=echo)


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


# ------------------------------------------------------------------------------------- the model
class Model:
    """A loaded, pinned model version: `.predict` answers as the HTTP API does, `.plan` as `sendtime
    schedule` does. Load it once and call it many times (the model and snapshot stay in memory)."""

    def __init__(self, predictor: Predictor, settings: Settings) -> None:
        self.predictor = predictor
        self.settings = settings

    @property
    def version(self) -> str:
        return str(self.predictor.model_version)

    @property
    def info(self) -> dict[str, Any]:
        """What `GET /model` answers: version, kind, run id, training time, data span, snapshot."""
        from sendtime.serving.api import model_metadata

        return model_metadata(self.predictor).model_dump(mode="json")

    def __repr__(self) -> str:
        return f"<sendtime.Model {self.settings.training.registered_model} v{self.version}>"

    def predict(
        self,
        subscribers: pd.DataFrame | Sequence[Mapping[str, Any]],
        window: tuple[Any, Any] | Mapping[str, Any] | None = None,
        channels: str | Sequence[str] | None = None,
        *,
        include_scores: bool = False,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """One decision per subscriber, in order: the `decisions` of `POST /predict` as DataFrame rows
        (times as the API's ISO-8601 text; `attrs["model_version"]` says which version answered).

        `subscribers`: dicts or a DataFrame with `email` and/or `phone` (and optionally `timezone`);
        `window`: (start, end) or {"start", "end"}, ISO text or aware datetimes (default: the next 24
        hours); `channels`: a name or a list (default: every channel with a contact). `seed` fixes the
        exploration draws (the API draws fresh ones).
        """
        import numpy as np
        import pandas as pd

        from sendtime.serving import api
        from sendtime.serving.api_errors import RequestError

        request = predict_request(self.settings, subscribers, window, channels, include_scores)
        try:
            response = api.answer(request, self.predictor, self.settings, np.random.default_rng(seed))
        except RequestError as exc:  # a contact that cannot be read: the message names subscribers[i]
            raise ValueError(exc.message) from None
        body = api.as_json(response)
        frame = pd.DataFrame(body["decisions"])
        if not include_scores:
            frame = frame.drop(columns="scores")
        frame.attrs["model_version"] = body["model_version"]
        return frame

    def plan(
        self,
        audience: pd.DataFrame | str | Path,
        start: Any,
        end: Any,
        max_sms: int | None = None,
        max_per_hour: Mapping[str, int] | None = None,
        *,
        holdout: float = 0.0,
        explore: float = 0.0,
        campaign_time: Any = None,
        seed: int = 0,
    ) -> pd.DataFrame:
        """A campaign's send plan: the rows `sendtime schedule` writes (the audience's columns, then
        subscriber_id, channel, send_at, expected_engagement, reason, ...), index kept from `audience`.

        `audience`: a DataFrame with `email` and/or `phone` (optional `timezone`; other columns carried
        through) or a CSV/Parquet path; `start`, `end`: ISO text or aware datetimes; `max_per_hour`:
        {"email": N, "sms": M}.
        """
        import pandas as pd

        from sendtime.serving.campaign_options import channel_caps, parse_window
        from sendtime.serving.plan_io import read_audience
        from sendtime.serving.planner import schedule_frame

        if isinstance(audience, str | Path):
            frame = read_audience(audience)
        elif isinstance(audience, pd.DataFrame):
            frame = audience_frame(audience)
        else:
            raise ValueError(f"audience: expected a DataFrame or a file path, got {type(audience).__name__}")
        if max_sms is not None and (isinstance(max_sms, bool) or not isinstance(max_sms, int) or max_sms < 0):
            raise ValueError(f"max_sms: expected a whole number >= 0, got {max_sms!r}")
        if max_per_hour is not None and not isinstance(max_per_hour, Mapping):
            raise ValueError(f"max_per_hour: expected a dict such as {{'sms': 500}}, got {max_per_hour!r}")
        try:
            window = parse_window(
                _instant(start, "start"),
                _instant(end, "end"),
                None if campaign_time is None else _instant(campaign_time, "campaign_time"),
                self.settings.serving.max_window_days,
            )
            channel_caps(max_per_hour)
            for option, share in (("holdout", holdout), ("explore", explore)):
                if not 0.0 <= share <= 1.0:
                    raise ValueError(f"{option} must be a share in [0, 1], got {share}")
        except ValueError as exc:
            raise _argument_names(exc) from None
        result = schedule_frame(
            frame.reset_index(drop=True),
            self.predictor,
            window,
            max_sms=max_sms,
            max_per_hour=max_per_hour,
            holdout=holdout,
            explore=explore,
            seed=seed,
        )
        table = result.frame.set_axis(frame.index)
        table.attrs["model_version"] = result.model_version
        return table


def _instant(value: Any, name: str) -> str:
    """A window bound as text for `parse_window`; datetimes keep their offset (a naive one is refused)."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise ValueError(f"{name}: expected ISO-8601 text or a datetime, got {type(value).__name__}")


def audience_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """An audience DataFrame checked as `sendtime schedule` checks the file (plan_io.read_audience)."""
    from sendtime import schema as S
    from sendtime.serving.plan_io import PLAN_COLUMNS

    if S.AUDIENCE_EMAIL not in frame.columns and S.AUDIENCE_PHONE not in frame.columns:
        raise ValueError(
            f"audience: needs a column {S.AUDIENCE_EMAIL!r} or {S.AUDIENCE_PHONE!r} (or both); "
            f"found {list(map(str, frame.columns))}"
        )
    clash = [c for c in frame.columns if c in PLAN_COLUMNS]
    if clash:
        raise ValueError(f"audience: column(s) {clash} would be overwritten by the plan's; rename them")
    return frame


def predict_request(
    settings: Settings,
    subscribers: Any,
    window: Any = None,
    channels: Any = None,
    include_scores: bool = False,
):
    """Python arguments to the API's validated `PredictRequest`; ValueError naming the field otherwise
    (`subscribers[2]: needs an email or a phone`, `window: ...`, `channels[0]: unknown channel ...`)."""
    from pydantic import ValidationError

    from sendtime.serving.api_errors import validation_error
    from sendtime.serving.api_models import PredictRequest

    data: dict[str, Any] = {
        "subscribers": _subscriber_rows(subscribers),
        "include_scores": bool(include_scores),
    }
    if window is not None:
        data["window"] = _window(window)
    if channels is not None:
        data["channels"] = [channels] if isinstance(channels, str) else list(channels)
    try:
        return PredictRequest.model_validate(data, context={"serving": settings.serving})
    except ValidationError as exc:
        raise ValueError(validation_error(exc).message) from None


_PERSON = ("email", "phone", "timezone")


def _subscriber_rows(subscribers: Any) -> list:
    import pandas as pd

    if isinstance(subscribers, pd.DataFrame):
        columns = [c for c in _PERSON if c in subscribers.columns]
        if not {"email", "phone"} & set(columns):
            raise ValueError(
                f"subscribers: needs a column 'email' or 'phone' (or both); found {list(map(str, subscribers.columns))}"
            )
        rows = subscribers[columns].astype(object).to_dict("records")
    elif isinstance(subscribers, Sequence) and not isinstance(subscribers, str | bytes):
        rows = list(subscribers)
    else:
        raise ValueError(
            f"subscribers: expected a list of dicts or a DataFrame, got {type(subscribers).__name__}"
        )
    return [{k: _blank(v) for k, v in row.items()} if isinstance(row, Mapping) else row for row in rows]


def _blank(value: Any) -> Any:
    """A DataFrame's missing cell (NaN, None, NaT) is an absent field, as in the JSON."""
    import pandas as pd

    return None if not isinstance(value, Mapping | list | tuple) and pd.isna(value) else value


def _window(window: Any) -> Any:
    if isinstance(window, Mapping):
        return dict(window)
    if isinstance(window, tuple | list):
        if len(window) != 2:
            raise ValueError(f"window: expected (start, end), got {len(window)} values")
        return {"start": window[0], "end": window[1]}
    raise ValueError(
        f"window: expected (start, end) or {{'start': ..., 'end': ...}}, got {type(window).__name__}"
    )
