"""The prediction API's handling, shared by `sendtime serve` and `sendtime predict`: a validated request
(`api_models`) in, the one predictor and policy's decisions out (`answer`, `followup`), refusals as
`api_errors.RequestError`. The BentoML service and the CLI only move bytes in and out (`handle`), so
both answer the same request with the same JSON.

Nothing here imports BentoML, MLflow or LightGBM at import time.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from sendtime.configs.settings import Settings
from sendtime.features import local_time
from sendtime.schema import CHANNELS, EMAIL, SMS
from sendtime.serving import policy, quiet_hours
from sendtime.serving.api_errors import NO_MODEL, OK, SERVER_ERROR, RequestError, check_contacts, parse
from sendtime.serving.api_models import (
    Decision,
    FollowupRequest,
    FollowupResponse,
    HourScore,
    ModelInfo,
    ModelMetadata,
    PredictRequest,
    PredictResponse,
    Subscriber,
)
from sendtime.serving.feasibility import feasible_cells
from sendtime.serving.followup import FOLLOWUP_GAIN, FOLLOWUP_SEND, plan_followups
from sendtime.serving.reasons import REASON_NO_REQUESTED_CONTACT

if TYPE_CHECKING:
    from sendtime.serving.contacts import Audience
    from sendtime.serving.predictor import Predictor

log = logging.getLogger(__name__)

_DIGITS = 6  # probabilities are rounded to this many decimals in answers
_SMS_ONLY = np.array([[c == SMS for c in CHANNELS]])  # eligibility of a follow-up's one candidate channel


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
        hour_source=meta.get("hour_source"),
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
    reasons[unasked] = REASON_NO_REQUESTED_CONTACT


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
    hours = local_time.window_hours(*_span(request), now=now)
    subs = request.subscribers
    given = [(s.email, s.phone) for s in subs]
    audience = predictor.resolve([g[0] for g in given], [g[1] for g in given], [s.timezone for s in subs])
    check_contacts(audience, given, "subscribers[{i}]")

    wanted = np.array([request.channels is None or c in request.channels for c in CHANNELS])
    eligible = policy.eligibility(audience.has[:, 0], audience.has[:, 1], request.channels)
    scores = predictor.score(audience, hours, channels=eligible)
    feasible = feasible_cells(audience, hours, settings.policy, eligible=eligible, last_sent=_last_sent(subs))
    d = policy.decide(
        scores, feasible, settings.policy, rng, base_reasons=audience.base_reasons(), eligible=eligible
    )
    reasons = np.asarray(d.reason, dtype=object).copy()
    _unsent_reasons(reasons, audience, eligible, wanted)

    starts, ends = local_time.hour_stamps(hours)
    decided = d.channel >= 0
    pick = np.where(decided, d.hour, 0)
    send_at = np.where(decided, starts[pick], None)
    window_start = np.where(decided, starts[np.where(decided, d.window_start, 0)], None)
    window_end = np.where(decided, ends[np.where(decided, d.window_end - 1, 0)], None)
    names = np.array([*CHANNELS, None], dtype=object)[d.channel.astype(np.int64)]
    expected, propensity = _round(d.expected), _round(d.propensity)
    per_channel = _score_lists(scores, feasible, eligible, starts) if request.include_scores else None

    # every answer is validated against the models /openapi.json declares; the score lists, built here
    # from float arrays and as long as the window, are attached after validation (they would double
    # the cost of a large answer, and the fuzz tests check their schema over HTTP)
    decisions = [
        Decision(
            subscriber_id=audience.subscriber_id[i],
            channel=names[i],
            send_at=send_at[i],
            window_start=window_start[i],
            window_end=window_end[i],
            expected_engagement=expected[i],
            reason=reasons[i],
            explored=bool(d.explored[i]),
            propensity=propensity[i],
        )
        for i in range(len(subs))
    ]
    if per_channel is not None:
        for decision, scores_of in zip(decisions, per_channel, strict=True):
            decision.scores = scores_of
    return PredictResponse(
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
    check_contacts(audience, [(person.email, person.phone)], "subscriber")

    # the e-mail went out, so score it even without a known address (linked profile, cohort or population)
    mailed = replace(audience, has=audience.has | np.array([[True, False]]))
    grid = pd.DatetimeIndex([sent.floor("h"), *hours])
    scores = predictor.score(mailed, grid, channels=np.array([[True, bool(audience.has[0, 1])]]))
    survival = predictor.profiles.kernel[CHANNELS.index(EMAIL)]
    k = int(pol.followup_min_hours)
    email_expected = float(scores[0, 0, 0]) * (float(survival[k]) if k < len(survival) else 0.0)

    # SMS quiet hours only: plan_followups judges the contact (has_sms) and the follow-up window itself
    allowed = feasible_cells(audience, hours, pol, eligible=_SMS_ONLY)[:, CHANNELS.index(SMS)]
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
        send_at=None if pd.isna(send_at) else local_time.utc_stamp(send_at),
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


def _span(request: PredictRequest) -> tuple:
    return (None, None) if request.window is None else (request.window.start, request.window.end)
