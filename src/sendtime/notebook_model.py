"""`sendtime.load()`'s answer: a loaded, pinned model version that answers as the HTTP API
(`predict`) and as `sendtime schedule` (`plan`) do, with Python arguments checked and refused by name.

Part of the Python API (`notebook.py`); as there, everything heavy is imported inside the methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `import sendtime` stays ~1 ms
if TYPE_CHECKING:
    from typing import Any

    import pandas as pd

    from sendtime.configs.settings import Settings
    from sendtime.serving.predictor import Predictor

# The serving checks name the CLI's options; a notebook user passed Python arguments.
_OPTIONS = r"--(start|end|campaign-time|max-sms|max-per-hour|holdout|explore|out)\b"


def _argument_names(exc: ValueError) -> ValueError:
    import re

    return ValueError(re.sub(_OPTIONS, lambda m: m.group(1).replace("-", "_"), str(exc)))


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
