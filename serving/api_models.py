"""The JSON of the public HTTP API (../shared/CONTRACT.md) as pydantic models: requests and answers.

Shared by `sendtime serve`, whose `/openapi.json` declares them, and `sendtime predict`. Field types
refuse what the contract refuses (naive timestamps, unknown zones and channels) with messages that name
the problem; timestamps and windows follow the rules of `sendtime schedule` (`campaign_options`); limits that settings configure (`serving.max_subscribers_per_request`,
`serving.max_window_days`) come in as validation context (`api_errors.parse`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from sendtime.configs.settings import ServingSettings
from sendtime.features import local_time
from sendtime.schema import CHANNELS
from sendtime.serving.campaign_options import read_instant, window_hours


# ------------------------------------------------------------------------------------ field types
def _timestamp(value: Any) -> datetime | None:
    """`campaign_options.read_instant`, the CLI's rule too: naive, unreadable or out-of-range is refused."""
    if value is None:
        return None
    try:
        return read_instant(value)
    except ValueError as exc:
        raise ValueError(f"cannot read timestamp {value!r}: {exc}") from None


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
        window_hours(self.start, self.end, _serving(info).max_window_days)  # the CLI's rules
        return self


class PredictRequest(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subscribers": [{"email": "ana@example.com", "phone": "+12125550123"}],
                    "window": {"start": "2026-11-03T05:00:00Z", "end": "2026-11-04T05:00:00Z"},
                    "channels": ["email", "sms"],
                    "include_scores": True,
                }
            ]
        },
    )

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
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"subscriber": {"email": "ana@example.com", "phone": "+12125550123"},
                 "email_sent_at": "2026-11-03T14:00:00Z", "engaged": False}
            ]
        },
    )  # fmt: skip

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
    hour_source: dict[str, str] | None = Field(
        None, description="per channel, who ranks its hours: model, or profile (training/hour_guard.py)"
    )


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
