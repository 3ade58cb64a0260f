"""The registered model as MLflow tools see it: one model, two flavours.

`lightgbm` is the native booster over the engineered features (`mlflow.lightgbm.load_model`: what data
scientists score feature rows with, and what sendtime itself loads). `python_function` makes decisions
by itself: it bundles the booster, the profile snapshot, the settings and the quiet-hour rules, takes
rows of `email`/`phone`/`window_start`/`window_end` (optionally `timezone`, `channels`) and answers each
row with the decision `POST /predict` gives, computed by the same handler (`api.answer`). So
`mlflow.pyfunc.load_model("models:/sendtime-engagement@champion")` and `mlflow models serve` on that
URI need no sendtime store, only sendtime installed. The pyfunc's snapshot is the one the version was
trained with: `sendtime refresh` gives `sendtime serve` today's profiles, not the MLflow model.

The registry version is only known once the model is registered; it is written beside the model then
(`registered.json`) and reported in every answer, as the API reports its own.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from sendtime.configs.settings import Settings
from sendtime.serving import quiet_hours

FROM_CODE = Path(__file__).with_name("decision_pyfunc.py")  # MLflow runs this file to build the model
BOOSTER, PROFILES, SETTINGS, RULES = "model.lgb", "profiles", "settings.json", "quiet_hours.csv"
REGISTERED = "registered.json"  # at the model's root, written after registration
INPUT_COLUMNS = ("email", "phone", "timezone", "window_start", "window_end", "channels")
OUTPUT_COLUMNS = (
    "subscriber_id",
    "channel",
    "send_at",
    "window_start",
    "window_end",
    "expected_engagement",
    "reason",
    "explored",
    "propensity",
    "model_version",
)
_SUBSCRIBER = re.compile(r"subscribers\[(\d+)\](\.?)")


def signature():
    """Every input column optional (a row needs an email or a phone, as the API says); one decision per
    row; `include_scores` and `seed` as params, as `sendtime.load().predict` takes them."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    strings = ("subscriber_id", "channel", "send_at", "window_start", "window_end", "reason", "model_version")
    always = ("subscriber_id", "reason", "explored", "model_version")  # the rest is empty for the unreachable
    out = [
        ColSpec("string" if c in strings else "boolean" if c == "explored" else "double", c, c in always)
        for c in OUTPUT_COLUMNS
    ]
    return ModelSignature(
        inputs=Schema([ColSpec("string", c, required=False) for c in INPUT_COLUMNS]),
        outputs=Schema(out),
        params=ParamSchema([ParamSpec("include_scores", "boolean", False), ParamSpec("seed", "long", -1)]),
    )


def input_example() -> pd.DataFrame:
    """Phone numbers only: the model's files carry no e-mail address, not even an invented one."""
    return pd.DataFrame(
        {
            "phone": ["+12125550123", "+442079460958"],
            "timezone": ["America/New_York", None],
            "window_start": ["2026-11-03T05:00:00Z"] * 2,
            "window_end": ["2026-11-04T05:00:00Z"] * 2,
            "channels": ["sms", None],
        }
    )


# ------------------------------------------------------------------------------------------ the model
class DecisionModel(PythonModel):
    """Rows in, the API's decisions out (one row each, in order); see the module docstring."""

    def load_context(self, context) -> None:
        from sendtime.features.profiles import Profiles
        from sendtime.serving.predictor import Predictor
        from sendtime.training.profile_only import booster_from_string, is_profile_only

        files = context.artifacts
        settings = Settings.model_validate(json.loads(Path(files[SETTINGS]).read_text()))
        settings.policy.state_rules_file = files[RULES]  # the rules the version was registered with
        profiles = Profiles.load(files[PROFILES])
        config = dict(context.model_config or {})
        found = Path(files[SETTINGS]).parents[1] / REGISTERED
        registered = json.loads(found.read_text()) if found.exists() else {}
        version = str(registered.get("version") or f"run {config.get('run_id', '?')}")
        meta = {
            "model_version": version,
            "run_id": config.get("run_id"),
            "kind": config.get("kind"),
            "model_kind": "lightgbm",  # set below once the model file says which
            "trained_at": config.get("trained_at"),
            "data_span": list(profiles.data_span),
            "profiles_as_of": profiles.as_of.isoformat(),
            "subscribers": len(profiles),
        }
        booster = booster_from_string(Path(files[BOOSTER]).read_text())  # LightGBM's or the profile rule
        meta["model_kind"] = "profile_only" if is_profile_only(booster) else "lightgbm"
        self.settings = settings
        self.predictor = Predictor(booster, profiles, settings, version, meta)

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        seed = params.get("seed")
        rng = np.random.default_rng(None if seed is None or int(seed) < 0 else int(seed))
        return decide(self.predictor, self.settings, model_input, rng, bool(params.get("include_scores")))


def decide(
    predictor, settings: Settings, rows: Any, rng: np.random.Generator, include_scores: bool = False
) -> pd.DataFrame:
    """The API's decision for every row: rows sharing a window and channels go as one request (at most
    `serving.max_subscribers_per_request` each), and the answers are put back in the rows' order."""
    from pydantic import ValidationError

    from sendtime.serving import api
    from sendtime.serving.api_errors import RequestError, validation_error
    from sendtime.serving.api_models import PredictRequest

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if not {"email", "phone"} & set(frame.columns):
        raise _refused(f"needs a column 'email' or 'phone' (or both); found {list(map(str, frame.columns))}")
    frame = frame[[c for c in INPUT_COLUMNS if c in frame.columns]]  # other columns: not the API's business
    records = [{k: _blank(v) for k, v in r.items()} for r in frame.to_dict("records")]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        key = (r.get("window_start"), r.get("window_end"), _channels(r.get("channels")))
        groups.setdefault(key, []).append(i)
    out: list[dict | None] = [None] * len(records)
    size = settings.serving.max_subscribers_per_request
    for (start, end, channels), members in groups.items():
        for lo in range(0, len(members), size):
            part = members[lo : lo + size]
            people = [
                {k: records[i][k] for k in ("email", "phone", "timezone") if records[i].get(k)} for i in part
            ]
            body: dict[str, Any] = {"subscribers": people, "include_scores": include_scores}
            if start is not None or end is not None:
                body["window"] = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
            if channels is not None:
                body["channels"] = list(channels)
            try:
                request = PredictRequest.model_validate(body, context={"serving": settings.serving})
                answer = api.as_json(api.answer(request, predictor, settings, rng))
            except RequestError as exc:
                raise _refused(_rows_named(exc.message, part)) from None
            except ValidationError as exc:  # named as the API names it
                raise _refused(_rows_named(validation_error(exc).message, part)) from None
            for i, decision in zip(part, answer["decisions"], strict=True):
                if not include_scores:
                    decision.pop("scores", None)
                out[i] = {**decision, "model_version": answer["model_version"]}
    columns = [*OUTPUT_COLUMNS[:-1], *(["scores"] if include_scores else []), "model_version"]
    # object columns keep the API's nulls as None: a float column would make them NaN, which MLflow's
    # scoring server writes as `NaN`, not JSON
    return pd.DataFrame(out, columns=columns, dtype=object)


def _blank(value: Any) -> Any:
    """A missing cell (None, NaN, NaT, blank text) is an absent field, as in the JSON."""
    if isinstance(value, list | tuple | np.ndarray):
        return value
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.strip() or None if isinstance(value, str) else value


def _channels(value: Any) -> tuple[str, ...] | None:
    """`channels` as text ("email,sms" or "email sms") or a list; absent: every channel with a contact."""
    if value is None:
        return None
    names = re.split(r"[,\s]+", value) if isinstance(value, str) else [str(v) for v in value]
    return tuple(n for n in names if n) or None


def _rows_named(message: str, rows: list[int]) -> str:
    """The API's message, its `subscribers[i]` named as the input row; a window or channels problem
    is the first row's of its group."""
    named = _SUBSCRIBER.sub(lambda m: f"row {rows[int(m.group(1))]}{', ' if m.group(2) else ''}", message)
    return named if named != message else f"row {rows[0]}: {message}"


def _refused(message: str):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


# ------------------------------------------------------------------------------------ logging it
def save_model(
    path: str,
    mlflow_model,
    booster,
    snapshot: Path,
    settings: Settings,
    model_config: dict[str, str],
    scratch: Path,
    feature_example: pd.DataFrame,
    validate_serving_input: bool = False,  # Model.log's own option, handed on to every flavour
) -> None:
    """MLflow's flavour hook (`Model.log` calls it): the decision pyfunc, then the native LightGBM
    flavour reading the same booster file, so the model holds one copy of everything. A profile-only
    decision maker (data too short for a model) gets the decision pyfunc alone: its rule, written as
    `ProfileOnlyModel.model_to_string`, is no LightGBM model."""
    import lightgbm as lgb
    import mlflow.pyfunc
    from mlflow.models.model import MLMODEL_FILE_NAME

    from sendtime.training.profile_only import is_profile_only

    profile_only = is_profile_only(booster)
    if profile_only:
        (scratch / BOOSTER).write_text(booster.model_to_string())
    else:
        booster.save_model(str(scratch / BOOSTER))
    (scratch / SETTINGS).write_text(json.dumps(settings.model_dump(mode="json")))
    _copy_rules(settings, scratch / RULES)
    artifacts = {
        BOOSTER: str(scratch / BOOSTER),
        PROFILES: str(snapshot),
        SETTINGS: str(scratch / SETTINGS),
        RULES: str(scratch / RULES),
    }
    mlflow.pyfunc.save_model(
        path,
        python_model=str(FROM_CODE),
        artifacts=artifacts,
        model_config=model_config,
        signature=signature(),
        input_example=(input_example(), {"include_scores": False, "seed": -1}),
        pip_requirements=requirements(),
        mlflow_model=mlflow_model,
    )
    if profile_only:
        mlflow_model.save(str(Path(path) / MLMODEL_FILE_NAME))
        return
    mlflow_model.add_flavor(
        "lightgbm",
        lgb_version=lgb.__version__,
        data=f"artifacts/{BOOSTER}",
        model_class="lightgbm.basic.Booster",
        code=None,
    )
    # the native flavour's own contract: feature rows in, P(click within 24 h) out
    mlflow_model.metadata = {
        **(mlflow_model.metadata or {}),
        "lightgbm_features": list(feature_example.columns),
        "lightgbm_output": "P(click within 24 h of a send at that hour)",
    }
    mlflow_model.save(str(Path(path) / MLMODEL_FILE_NAME))


def _copy_rules(settings: Settings, target: Path) -> None:
    """The state quiet-hour table in force (the configured file, else the packaged one), checked first."""
    from importlib import resources

    quiet_hours.load_rules(settings.policy)  # a broken table fails here, not when the model is served
    if settings.policy.state_rules_file:
        shutil.copyfile(settings.policy.state_rules_file, target)
    else:
        target.write_bytes(
            resources.files("sendtime.configs").joinpath(quiet_hours.BUILTIN_RULES).read_bytes()
        )


def requirements() -> list[str]:
    """sendtime itself (not on PyPI: serve with `--env-manager local` where it is installed) and the
    pins the booster needs."""
    from importlib.metadata import PackageNotFoundError, version

    import lightgbm as lgb

    try:
        own = f"sendtime=={version('sendtime')}"
    except PackageNotFoundError:
        own = "sendtime"
    return [own, f"lightgbm=={lgb.__version__}", f"numpy=={np.__version__}", f"pandas=={pd.__version__}"]


def log_and_register(
    booster,
    example: np.ndarray,
    feature_names: list[str],
    model_name: str,
    tags: dict[str, str],
    *,
    snapshot: Path,
    settings: Settings,
) -> str:
    """Log the two-flavoured model in the active run, register it, then record the version beside it."""
    import mlflow
    from mlflow.models import Model

    from sendtime.training import registry

    run_id = mlflow.active_run().info.run_id
    config = {"run_id": run_id, "kind": tags.get("kind", ""), "trained_at": tags.get("trained_at", "")}
    with registry.scratch_dir() as scratch:
        info = Model.log(
            artifact_path=None,
            name="model",
            flavor=sys.modules[__name__],
            booster=booster,
            snapshot=Path(snapshot),
            settings=settings,
            model_config=config,
            scratch=scratch,
            feature_example=pd.DataFrame(example[:5], columns=feature_names),
            # MLflow would load the whole model (snapshot and contact index) once more to try the
            # example: minutes and gigabytes for millions of people; the tests load and serve it instead
            validate_serving_input=False,
        )
        version = str(mlflow.register_model(info.model_uri, model_name, tags=tags).version)
        (scratch / REGISTERED).write_text(json.dumps({"name": model_name, "version": version}))
        registry.client().log_model_artifact(info.model_id, str(scratch / REGISTERED))
    return version
