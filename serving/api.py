"""The prediction API's requests, answers and handling, shared by `sendtime serve` and `sendtime predict`.

Pydantic models describe the JSON of the public HTTP API (../shared/CONTRACT.md); the functions here
turn a validated request into an answer with the one predictor and policy (`answer`, `followup`). The
BentoML service (`service.py`) and the CLI (`predict_once`) only move bytes in and out, so both answer
the same request with the same JSON.

Status codes (the same for HTTP and `sendtime predict`):
  200  an answer;
  400  the body is not JSON;
  401  an API key is configured and the request does not carry it (HTTP only);
  422  the JSON does not validate: `{"error": "<field>: <problem>", "details": [{"field", "message"}]}`,
       every message naming the field with its index, e.g. `subscribers[3]: needs an email or a phone`;
  503  no model to serve (no `champion` yet);
  500  anything else (a bug: the body says to look at the server log).

Nothing here imports BentoML, MLflow or LightGBM at import time.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from sendtime.configs.settings import ServingSettings, Settings
from sendtime.features import local_time
from sendtime.schema import CHANNELS, EMAIL, SMS
from sendtime.serving import policy, quiet_hours
from sendtime.serving.followup import FOLLOWUP_GAIN, FOLLOWUP_SEND, plan_followups

if TYPE_CHECKING:
    from sendtime.serving.predictor import Audience, Predictor

log = logging.getLogger(__name__)

OK = 200
BAD_JSON = 400
UNAUTHORIZED = 401
INVALID = 422
NO_MODEL = 503
SERVER_ERROR = 500

_STAMP = "%Y-%m-%dT%H:%M:%SZ"
_DIGITS = 6  # probabilities are rounded to this many decimals in answers
_CONTACT_FIELDS = ("email", "phone")  # request field per channel, in schema.CHANNELS order


class RequestError(Exception):
    """A request the API refuses: HTTP status plus the error body."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details if details is not None else []

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "details": self.details}


# ------------------------------------------------------------------------------------ field types
def _timestamp(value: Any) -> datetime | None:
    """ISO-8601 with an offset or Z to an aware datetime; naive or unreadable text is refused."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"cannot read timestamp {value!r}: expected ISO-8601 with an offset or Z, e.g. 2026-11-03T05:00:00Z"
            ) from None
    else:
        raise ValueError(f"expected an ISO-8601 timestamp string, got {type(value).__name__}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp {value!s} has no UTC offset: add Z or an offset such as +01:00")
    return parsed


def _contact(value: Any) -> str | None:
    """A contact as text; blank means absent; numbers (a phone column read as numbers) become text."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a string")
    if isinstance(value, int | float):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value.strip() or None


def _zone(value: Any) -> str | None:
    """An IANA timezone name (blank means absent); anything the tz database does not know is refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an IANA timezone name as a string, got {type(value).__name__}")
    name = value.strip()
    if not name:
        return None
    if not local_time.is_zone_name(name):
        raise ValueError(f"unknown timezone {value!r} (expected an IANA name such as Europe/London)")
    return name


def _channel(value: Any) -> str:
    name = str(value).strip().lower() if isinstance(value, str) else None
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {value!r} (expected {' or '.join(CHANNELS)})")
    return name


Timestamp = Annotated[
    datetime | None, PlainValidator(_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})
]
Contact = Annotated[str | None, PlainValidator(_contact), WithJsonSchema({"type": ["string", "null"]})]
ZoneName = Annotated[str | None, PlainValidator(_zone), WithJsonSchema({"type": ["string", "null"]})]
ChannelName = Annotated[
    str, PlainValidator(_channel), WithJsonSchema({"type": "string", "enum": list(CHANNELS)})
]


def _serving(info: ValidationInfo) -> ServingSettings:
    context = info.context or {}
    return context.get("serving") or ServingSettings()


# ---------------------------------------------------------------------------------------- requests
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LastSent(_Strict):
    """When each channel last sent to this subscriber (the fatigue guard uses it)."""

    email: Timestamp = None
    sms: Timestamp = None


class Person(_Strict):
    email: Contact = Field(None, description="e-mail address (any case)")
    phone: Contact = Field(None, description="phone number, E.164 or national format of data.default_region")
    timezone: ZoneName = Field(
        None,
        description="IANA timezone the sending system knows (e.g. Europe/London): local-time decisions use it "
        "like a subscribers-table zone, and an SMS must be allowed in it as well as in the number's zones",
    )

    @model_validator(mode="after")
    def _needs_contact(self) -> Person:
        if self.email is None and self.phone is None:
            raise ValueError("needs an email or a phone")
        return self


class Subscriber(Person):
    last_sent: LastSent | None = None


class Window(_Strict):
    start: Timestamp = Field(description="ISO-8601 with an offset or Z")
    end: Timestamp = Field(description="ISO-8601 with an offset or Z; sends are planned in [start, end)")

    @model_validator(mode="after")
    def _sane(self, info: ValidationInfo) -> Window:
        if self.start is None or self.end is None:
            raise ValueError("needs both start and end")
        if self.end <= self.start:
            raise ValueError(f"end ({_iso(self.end)}) must be after start ({_iso(self.start)})")
        days = _serving(info).max_window_days
        if self.end - self.start > timedelta(days=days):
            span = (self.end - self.start) / timedelta(days=1)
            raise ValueError(f"spans {span:g} days; at most {days:g} days (serving.max_window_days)")
        if len(local_time.candidate_hours(self.start, self.end)) == 0:
            raise ValueError(f"holds no clock-hour start between {_iso(self.start)} and {_iso(self.end)}")
        return self


class PredictRequest(_Strict):
    subscribers: list[Subscriber] = Field(min_length=1)
    window: Window | None = Field(None, description="default: the next 24 hours, from the next clock hour")
    channels: list[ChannelName] | None = Field(
        None, min_length=1, description="default: every channel with a contact"
    )
    include_scores: bool = False

    @field_validator("subscribers", mode="before")
    @classmethod
    def _not_too_many(cls, value: Any, info: ValidationInfo) -> Any:
        limit = _serving(info).max_subscribers_per_request
        if isinstance(value, list) and len(value) > limit:
            raise ValueError(
                f"{len(value)} subscribers; at most {limit} per request (serving.max_subscribers_per_request)"
            )
        return value


class FollowupRequest(_Strict):
    subscriber: Person
    email_sent_at: Timestamp = Field(description="when the e-mail went out, ISO-8601 with an offset or Z")
    engaged: bool = Field(False, description="the subscriber already clicked (or opened) the e-mail")

    @field_validator("email_sent_at")
    @classmethod
    def _present(cls, value: datetime | None) -> datetime:
        if value is None:
            raise ValueError("a timestamp is required")
        return value


# ----------------------------------------------------------------------------------------- answers
class HourScore(TypedDict):
    start: str
    probability: float


class ModelInfo(BaseModel):
    version: str
    kind: str | None = None
    trained_at: str | None = None
    data_span: list[str] = Field(default_factory=list)


class ModelMetadata(ModelInfo):
    """`GET /model`: what the service serves."""

    run_id: str | None = None
    profiles_as_of: str | None = None
    subscribers: int | None = None
    model_kind: str | None = None  # "lightgbm", or "profile_only" (data too short for a model)


class Decision(BaseModel):
    subscriber_id: str | None
    channel: Literal["email", "sms"] | None = Field(description="null when nothing can be sent")
    send_at: str | None = Field(description="UTC hour start, ISO-8601")
    window_start: str | None
    window_end: str | None
    expected_engagement: float | None = Field(description="P(click within 24 h) if sent at send_at")
    reason: str
    explored: bool = False
    propensity: float | None = None
    scores: dict[str, list[HourScore]] | None = Field(
        None, description="with include_scores: per eligible channel, one entry per clock hour of the window"
    )


class PredictResponse(BaseModel):
    model_version: str
    model: ModelInfo
    decisions: list[Decision]


class FollowupResponse(BaseModel):
    model_version: str
    subscriber_id: str | None
    send: bool
    send_at: str | None = Field(description="UTC hour start of the SMS, when send is true")
    expected_engagement: float | None = Field(description="SMS P(click) at its best follow-up hour")
    gain: float | None = Field(description="click_value * sms - sms_cost - click_value * email_expected")
    email_expected: float = Field(description="P(the e-mail still brings a click after followup_min_hours)")
    reason: str


# -------------------------------------------------------------------------------------- validation
def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "field required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object"
    if kind == "list_type":
        return "must be a JSON array"
    if kind == "too_short":
        return "must not be empty"
    return str(error["msg"])


def validation_error(exc: ValidationError) -> RequestError:
    details = [{"field": _where(e["loc"]), "message": _message(e)} for e in exc.errors(include_url=False)]
    lines = [f"{d['field']}: {d['message']}" for d in details]
    message = "; ".join(lines[:5]) + (f" (and {len(lines) - 5} more)" if len(lines) > 5 else "")
    return RequestError(INVALID, message, details)


def _body_error(problem: str) -> RequestError:
    return RequestError(BAD_JSON, f"body: {problem}", [{"field": "body", "message": problem}])


def parse(text: str | bytes, model: type[BaseModel], settings: Settings) -> BaseModel:
    """JSON text to a validated request model; RequestError (400 or 422) naming the field otherwise."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", errors="replace")
    if not text.strip():
        raise _body_error("empty; expected a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _body_error(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    try:
        return model.model_validate(data, context={"serving": settings.serving})
    except ValidationError as exc:
        raise validation_error(exc) from None


# ---------------------------------------------------------------------------------------- handling
def _iso(ts: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime(_STAMP)


def window_hours(window: Window | None, now: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """UTC clock-hour starts of the window; no window: the next 24 hours from the next clock hour."""
    if window is None:
        if now is None:  # the next clock hour, without building a Timestamp per request
            return _next_day(math.ceil(time.time() / 3600))
        start = now.ceil("h")
        return _candidate_hours(start, start + pd.Timedelta(hours=24))
    return _candidate_hours(window.start, window.end)


@functools.lru_cache(maxsize=4)
def _next_day(hour: int) -> pd.DatetimeIndex:
    start = pd.Timestamp(hour * 3600, unit="s", tz="UTC")
    return _candidate_hours(start, start + pd.Timedelta(hours=24))


@functools.lru_cache(maxsize=256)
def _candidate_hours(start: datetime, end: datetime) -> pd.DatetimeIndex:
    # memoised: requests mostly share a window, and a date_range costs as much as a small answer's policy
    return local_time.candidate_hours(pd.Timestamp(start), pd.Timestamp(end))


def _check_contacts(audience: Audience, given: list[tuple[str | None, str | None]], prefix: str) -> None:
    """422 naming every contact that was given but cannot be read (`audience.invalid`)."""
    rows, cols = np.nonzero(audience.invalid)
    if len(rows) == 0:
        return
    details = []
    for i, c in zip(rows.tolist(), cols.tolist(), strict=True):
        value = given[i][c]
        problem = (
            f"not an e-mail address: {value!r}"
            if CHANNELS[c] == EMAIL
            else f"cannot read phone number {value!r} (use E.164 such as +12125550123, or a national number)"
        )
        details.append({"field": f"{prefix.format(i=i)}.{_CONTACT_FIELDS[c]}", "message": problem})
    lines = [f"{d['field']}: {d['message']}" for d in details]
    message = "; ".join(lines[:5]) + (f" (and {len(lines) - 5} more)" if len(lines) > 5 else "")
    raise RequestError(INVALID, message, details)


def _last_sent(subscribers: list[Subscriber]) -> np.ndarray | None:
    """datetime64[ns] [n, 2] of the last send per channel (NaT: never); None when no one says."""
    if not any(s.last_sent is not None for s in subscribers):
        return None
    values = [
        [getattr(s.last_sent, c) if s.last_sent is not None else None for c in CHANNELS] for s in subscribers
    ]
    return quiet_hours.utc_instants(np.array(values, dtype=object))


def model_info(predictor: Predictor) -> ModelInfo:
    meta = predictor.meta
    return ModelInfo(
        version=predictor.model_version,
        kind=meta.get("kind"),
        trained_at=meta.get("trained_at"),
        data_span=[str(x) for x in meta.get("data_span") or []],
    )


def model_metadata(predictor: Predictor) -> ModelMetadata:
    meta = predictor.meta
    return ModelMetadata(
        **model_info(predictor).model_dump(),
        run_id=meta.get("run_id"),
        profiles_as_of=meta.get("profiles_as_of"),
        subscribers=meta.get("subscribers"),
        model_kind=meta.get("model_kind"),
    )


def _unsent_reasons(
    reasons: np.ndarray, audience: Audience, eligible: np.ndarray, wanted: np.ndarray
) -> None:
    """Say why a subscriber with a contact got no eligible channel: each wanted channel's suppression rule
    ("email suppressed: hard bounce on 2026-10-07; sms suppressed: unsubscribed on 2026-09-12"), or not
    asked for."""
    none = ~eligible.any(axis=1)
    suppressed = audience.opted_out & wanted
    opted = none & suppressed.any(axis=1)
    why = np.where(suppressed, np.asarray(audience.optout_reason, dtype=object), "")
    for i in np.flatnonzero(opted):  # only the people left without any channel
        reasons[i] = "; ".join(w for w in why[i] if w)
    unasked = none & ~opted & audience.has.any(axis=1)
    reasons[unasked] = "no contact on the requested channels"


def _round(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else v for v in np.round(values.astype(np.float64), _DIGITS).tolist()]


def answer(
    request: PredictRequest,
    predictor: Predictor,
    settings: Settings,
    rng: np.random.Generator,
    now: pd.Timestamp | None = None,
) -> PredictResponse:
    """Decisions for a validated request: one per subscriber, in request order (vectorised over all)."""
    hours = window_hours(request.window, now)
    subs = request.subscribers
    given = [(s.email, s.phone) for s in subs]
    audience = predictor.resolve([g[0] for g in given], [g[1] for g in given], [s.timezone for s in subs])
    _check_contacts(audience, given, "subscribers[{i}]")

    wanted = np.array([request.channels is None or c in request.channels for c in CHANNELS])
    eligible = policy.eligibility(audience.has[:, 0], audience.has[:, 1], request.channels)
    scores = predictor.score(audience, hours, channels=eligible)
    allowed = sms_allowed(hours, audience.sms_zones, audience.state, _rules(settings))
    feasible = policy.feasible_mask(eligible, allowed, hours, _last_sent(subs), settings.policy)
    d = policy.decide(
        scores, feasible, settings.policy, rng, base_reasons=audience.base_reasons(), eligible=eligible
    )
    reasons = np.asarray(d.reason, dtype=object).copy()
    _unsent_reasons(reasons, audience, eligible, wanted)

    starts, ends = _stamps(hours)
    decided = d.channel >= 0
    pick = np.where(decided, d.hour, 0)
    send_at = np.where(decided, starts[pick], None)
    window_start = np.where(decided, starts[np.where(decided, d.window_start, 0)], None)
    window_end = np.where(decided, ends[np.where(decided, d.window_end - 1, 0)], None)
    names = np.array([*CHANNELS, None], dtype=object)[d.channel.astype(np.int64)]
    expected, propensity = _round(d.expected), _round(d.propensity)
    per_channel = _score_lists(scores, feasible, eligible, starts) if request.include_scores else None

    decisions = [
        Decision.model_construct(
            subscriber_id=audience.subscriber_id[i],
            channel=names[i],
            send_at=send_at[i],
            window_start=window_start[i],
            window_end=window_end[i],
            expected_engagement=expected[i],
            reason=reasons[i],
            explored=bool(d.explored[i]),
            propensity=propensity[i],
            scores=None if per_channel is None else per_channel[i],
        )
        for i in range(len(subs))
    ]
    return PredictResponse.model_construct(
        model_version=predictor.model_version, model=model_info(predictor), decisions=decisions
    )


def _score_lists(
    scores: np.ndarray, feasible: np.ndarray, eligible: np.ndarray, starts: np.ndarray
) -> list[dict[str, list[HourScore]]]:
    """Per subscriber and eligible channel, every hour's probability (0 where it may not be sent)."""
    shown = np.round(np.where(feasible, scores, 0.0).astype(np.float64), _DIGITS)
    hours = starts.tolist()
    out: list[dict[str, list[HourScore]]] = []
    for i, row in enumerate(shown.tolist()):
        out.append(
            {
                name: [{"start": h, "probability": p} for h, p in zip(hours, row[c], strict=True)]
                for c, name in enumerate(CHANNELS)
                if eligible[i, c]
            }
        )
    return out


def _rules(settings: Settings) -> quiet_hours.QuietHourRules:
    # load_rules caches the parsed CSV per path and modification time, so this costs nothing per request
    return quiet_hours.load_rules(settings.policy)


# Memos of pure functions of (window, timezone, state): an API request mostly repeats the last one's
# window and the same few timezones, and these rows cost a tz_convert each. Exact, bounded, thread-safe.
_MEMO_LIMIT = 20_000
_SMALL = 5_000
_allowed_memo: dict[int, tuple[object, dict]] = {}
_stamp_memo: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _window_key(hours: pd.DatetimeIndex) -> tuple[str, bytes]:
    return str(hours.dtype), hours.asi8.tobytes()


def sms_allowed(
    hours: pd.DatetimeIndex, timezones: np.ndarray, states: np.ndarray, rules: quiet_hours.QuietHourRules
) -> np.ndarray:
    """`quiet_hours.sms_allowed`, memoised per (window, timezone, state): each row depends on nothing else."""
    if len(timezones) > _SMALL:
        return quiet_hours.sms_allowed(hours, timezones, states, rules)
    # one memo per rules table; holding the table keeps its id from being reused by another one
    ruleset = _allowed_memo.get(id(rules.state_windows))
    if ruleset is None:
        if len(_allowed_memo) > 8:
            _allowed_memo.clear()
        ruleset = _allowed_memo[id(rules.state_windows)] = (rules.state_windows, {})
    memo = ruleset[1]
    window = (*_window_key(hours), rules.federal_start, rules.federal_end)
    pairs = list(
        zip(
            np.asarray(timezones, dtype=object).tolist(),
            np.asarray(states, dtype=object).tolist(),
            strict=True,
        )
    )
    found = {pair: memo.get((window, pair)) for pair in pairs}
    todo = [pair for pair, row in found.items() if row is None]
    if todo:
        zones, places = (np.array(column, dtype=object) for column in zip(*todo, strict=True))
        rows = quiet_hours.sms_allowed(hours, zones, places, rules)
        if len(memo) + len(todo) > _MEMO_LIMIT:
            memo.clear()
        for pair, row in zip(todo, rows, strict=True):
            found[pair] = memo[(window, pair)] = row
    position = {pair: k for k, pair in enumerate(found)}
    table = np.stack(list(found.values())) if found else np.zeros((0, len(hours)), dtype=bool)
    return table[[position[pair] for pair in pairs]]


def _stamps(hours: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """ISO texts of each hour's start and end (object arrays), memoised per window."""
    key = _window_key(hours)
    found = _stamp_memo.get(key)
    if found is None:
        if len(_stamp_memo) > 64:
            _stamp_memo.clear()
        found = _stamp_memo[key] = (
            np.asarray(hours.strftime(_STAMP), dtype=object),
            np.asarray((hours + pd.Timedelta(hours=1)).strftime(_STAMP), dtype=object),
        )
    return found


def followup(request: FollowupRequest, predictor: Predictor, settings: Settings) -> FollowupResponse:
    """Should an SMS follow this e-mail, and when?

    Candidate hours are the clock-hour starts in [sent + followup_min_hours, sent + followup_max_hours],
    inside SMS quiet hours. `email_expected`, the chance that the e-mail still brings a click without
    help, is the model's e-mail probability at the e-mail's send hour (P(click within 24 h)) times the
    share of e-mail clicks that come at least `followup_min_hours` after the send (the snapshot's delay
    survival kernel): the clicks still to come once a follow-up may go out.
    """
    pol = settings.policy
    sent = pd.Timestamp(request.email_sent_at).tz_convert("UTC")
    earliest, latest = (
        sent + pd.Timedelta(hours=pol.followup_min_hours),
        sent + pd.Timedelta(hours=pol.followup_max_hours),
    )
    hours = local_time.candidate_hours(earliest, latest + pd.Timedelta(seconds=1))  # both ends included
    person = request.subscriber
    audience = predictor.resolve([person.email], [person.phone], [person.timezone])
    _check_contacts(audience, [(person.email, person.phone)], "subscriber")

    # the e-mail went out, so score it even without a known address (linked profile, cohort or population)
    mailed = replace(audience, has=audience.has | np.array([[True, False]]))
    grid = pd.DatetimeIndex([sent.floor("h"), *hours])
    scores = predictor.score(mailed, grid, channels=np.array([[True, bool(audience.has[0, 1])]]))
    survival = predictor.profiles.kernel[CHANNELS.index(EMAIL)]
    k = int(pol.followup_min_hours)
    email_expected = float(scores[0, 0, 0]) * (float(survival[k]) if k < len(survival) else 0.0)

    allowed = sms_allowed(hours, audience.sms_zones, audience.state, _rules(settings))
    plan = plan_followups(
        email_sent_at=np.array([sent.tz_localize(None).to_datetime64()]),
        engaged=np.array([request.engaged]),
        has_sms=audience.has[:, CHANNELS.index(SMS)],
        sms_scores=scores[:, CHANNELS.index(SMS), 1:],
        hour_starts=hours,
        sms_allowed=allowed,
        email_expected=np.array([email_expected]),
        settings=pol,
    ).iloc[0]
    send_at = plan["send_at"]
    return FollowupResponse(
        model_version=predictor.model_version,
        subscriber_id=audience.subscriber_id[0],
        send=bool(plan[FOLLOWUP_SEND]),
        send_at=None if pd.isna(send_at) else _iso(send_at),
        expected_engagement=_round(np.array([plan["expected_engagement"]]))[0],
        gain=_round(np.array([plan[FOLLOWUP_GAIN]]))[0],
        email_expected=round(email_expected, _DIGITS),
        reason=str(plan["reason"]),
    )


# ------------------------------------------------------------------------------------ entry points
def handle(
    kind: Literal["predict", "followup"],
    text: str | bytes,
    predictor: Predictor,
    settings: Settings,
    rng: np.random.Generator,
) -> tuple[int, BaseModel | dict[str, Any]]:
    """Raw JSON in, (status, answer model or error body) out: what the HTTP API and the CLI both send."""
    try:
        if kind == "predict":
            return OK, answer(parse(text, PredictRequest, settings), predictor, settings, rng)
        return OK, followup(parse(text, FollowupRequest, settings), predictor, settings)
    except RequestError as exc:
        return exc.status, exc.body()
    except Exception:
        log.exception("sendtime %s: unexpected error", kind)
        return SERVER_ERROR, {"error": "an unexpected error occurred; see the server log", "details": []}


def as_json(body: BaseModel | dict[str, Any]) -> dict[str, Any]:
    return body.model_dump(mode="json") if isinstance(body, BaseModel) else body


def predict_once(text: str, settings: Settings) -> tuple[int, dict[str, Any]]:
    """`sendtime predict`: validate, load the champion, answer; (status, body) as the HTTP API gives them."""
    try:
        parse(text, PredictRequest, settings)  # a bad request is refused before any model is loaded
    except RequestError as exc:
        return exc.status, exc.body()
    from sendtime.serving.predictor import Predictor

    try:
        predictor = Predictor.from_registry(settings)
    except LookupError as exc:
        return NO_MODEL, {"error": f"no model to serve: {exc}", "details": []}
    status, body = handle("predict", text, predictor, settings, np.random.default_rng())
    return status, as_json(body)
