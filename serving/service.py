"""`sendtime serve`: the BentoML prediction service.

Thin on purpose: the champion and its profile snapshot are loaded once, each route reads the body and
hands it to `sendtime.serving.api`, which validates, scores and decides exactly as `sendtime predict`.
Routes (a FastAPI app mounted on the service, so that errors keep our JSON shape and GET works):

  POST /predict    decisions for up to `serving.max_subscribers_per_request` subscribers
  POST /followup   whether and when to send an SMS after an unanswered e-mail
  GET  /model      the pinned model version and its metadata
  POST /reload     load what the `champion` alias points to now and swap it in
  GET  /readyz     BentoML's probe: ready once the model is loaded (`__is_ready__`); also /livez, /metrics

When the environment variable named by `serving.api_key_env` (SENDTIME_API_KEY) is set, every route
above except the probes needs the key in `X-API-Key` (or `Authorization: Bearer <key>`), else 401.
Hot swap: a new Predictor is built completely, then assigned to one attribute; each request reads that
attribute once, so it is answered by one model from start to end and no request fails during a swap.
The settings file comes from the environment variable SENDTIME_CONFIG (set by `sendtime serve`).
"""

from __future__ import annotations

import gc
import hmac
import logging
import os
import threading

import anyio
import bentoml
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from sendtime.configs.settings import load_settings
from sendtime.serving import api

log = logging.getLogger(__name__)

INLINE_BYTES = 2_048  # request bodies up to this size are answered on the event loop itself
app = FastAPI(title="sendtime", description="Which channel and what time to send, per subscriber.")
_ERRORS = {
    code: {"description": text, "content": {"application/json": {"example": {"error": "...", "details": []}}}}
    for code, text in ((400, "not JSON"), (401, "API key missing or wrong"), (422, "invalid request"))
}


@bentoml.service(name="sendtime", workers=1, traffic={"timeout": 120})
@bentoml.asgi_app(app, path="/")
class SendTime:
    def __init__(self) -> None:
        from sendtime.serving.predictor import Predictor

        self.settings = load_settings(os.environ.get("SENDTIME_CONFIG") or None)
        self.predictor = Predictor.from_registry(self.settings)  # the champion now, pinned until a swap
        self.api_key = os.environ.get(self.settings.serving.api_key_env) or None
        self.rng = np.random.default_rng()
        self.limiter = anyio.CapacityLimiter(self.settings.serving.threads)
        self._swap = threading.Lock()
        self._stop = threading.Event()
        _freeze()
        log.warning("sendtime: serving model version %s", self.predictor.model_version)
        if self.settings.serving.reload_poll_seconds > 0:
            threading.Thread(target=self._poll, name="sendtime-champion-poll", daemon=True).start()

    def __is_ready__(self) -> bool:
        return getattr(self, "predictor", None) is not None

    @bentoml.on_shutdown
    def stop_polling(self) -> None:
        self._stop.set()

    async def answer(self, kind: str, request: Request) -> Response:
        if denied := self.denied(request):
            return denied
        text = await request.body()
        predictor = self.predictor  # read once: one model answers the whole request
        work = (api.handle, kind, text, predictor, self.settings, self.rng)
        if len(text) <= INLINE_BYTES:  # a few subscribers: a thread hand-off would cost more than the work
            status, body = work[0](*work[1:])
        else:  # big batches run in a thread, so that probes and small requests are not held up
            status, body = await anyio.to_thread.run_sync(*work, limiter=self.limiter)
        return _json(body, status)

    def denied(self, request: Request) -> Response | None:
        """401 unless the API key is off or the request carries it."""
        if self.api_key is None:
            return None
        given = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if given is None and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if given is not None and hmac.compare_digest(given.encode(), self.api_key.encode()):
            return None
        problem = "missing or wrong API key: send it in the X-API-Key header (or Authorization: Bearer <key>)"
        return JSONResponse(
            {"error": problem, "details": [{"field": "X-API-Key", "message": problem}]},
            status_code=api.UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def reload_champion(self) -> tuple[str, str]:
        """Swap in the version `champion` points to now, built completely first; (previous, current)."""
        from sendtime.serving.predictor import Predictor
        from sendtime.training import registry

        with self._swap:
            previous = self.predictor.model_version
            registry.configure_mlflow(self.settings.training.experiment)
            target = registry.champion_version(self.settings.training.registered_model)
            target = None if target is None else str(target)  # MLflow may give the version as a number
            if target is None:
                raise LookupError(f"no '{registry.CHAMPION}' alias: still serving version {previous}")
            if target != previous:
                loaded = Predictor.from_registry(self.settings, version=target)  # built completely first,
                self.predictor = loaded  # then swapped in with one (atomic) assignment
                _freeze()
                log.warning("sendtime: swapped model version %s for %s", previous, target)
            return previous, self.predictor.model_version

    def _poll(self) -> None:
        every = self.settings.serving.reload_poll_seconds
        while not self._stop.wait(every):
            try:
                self.reload_champion()
            except Exception:  # a registry hiccup must not stop serving or polling
                log.exception(
                    "sendtime: champion poll failed; still serving %s", self.predictor.model_version
                )


# ------------------------------------------------------------------------------------------ routes
# Plain functions that look the service up (rather than FastAPI class views, whose `self` dependency
# costs every request a hop through the thread pool).
def _service() -> SendTime:
    return bentoml.get_current_service()


@app.post("/predict", response_model=api.PredictResponse, responses=_ERRORS)
async def predict(request: Request) -> Response:
    return await _service().answer("predict", request)


@app.post("/followup", response_model=api.FollowupResponse, responses=_ERRORS)
async def followup(request: Request) -> Response:
    return await _service().answer("followup", request)


@app.get("/model", response_model=api.ModelMetadata)
async def model(request: Request) -> Response:
    service = _service()
    return service.denied(request) or _json(api.model_metadata(service.predictor))


@app.post("/reload")
async def reload(request: Request) -> Response:
    service = _service()
    if denied := service.denied(request):
        return denied
    try:
        previous, current = await anyio.to_thread.run_sync(service.reload_champion)
    except LookupError as exc:
        return JSONResponse({"error": str(exc), "details": []}, status_code=api.NO_MODEL)
    except Exception as exc:  # e.g. a version trained by an incompatible sendtime: keep the old one
        log.exception("sendtime: reload failed")
        problem = f"reload failed ({exc}); still serving version {service.predictor.model_version}"
        return JSONResponse({"error": problem, "details": []}, status_code=api.SERVER_ERROR)
    return JSONResponse(
        {"model_version": current, "previous_version": previous, "changed": current != previous}
    )


def _freeze() -> None:
    """Keep the loaded model out of the cyclic garbage collector's scans: they cost tens of ms a request."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _json(body: BaseModel | dict, status: int = api.OK) -> Response:
    if isinstance(body, BaseModel):
        return Response(body.model_dump_json(), status_code=status, media_type="application/json")
    return JSONResponse(body, status_code=status)
