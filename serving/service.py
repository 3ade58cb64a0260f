"""`sendtime serve`: the BentoML prediction service, thin on purpose.

The champion and its profile snapshot are loaded once (`ChampionWatch`, which also swaps in a new
champion); each route hands the raw body to `api.handle`, which validates, scores and decides exactly
as `sendtime predict`. A FastAPI app mounted on the service keeps the API's error JSON and GET routes;
`/openapi.json` documents every body, answer, error and the API key (`http`, `auth`). BentoML adds
the probes /readyz (ready once the model is loaded), /livez and /metrics, which need no key.
The settings file comes from the environment variable SENDTIME_CONFIG (set by `sendtime serve`).
"""

from __future__ import annotations

import logging
import os

import anyio
import bentoml
import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sendtime.configs.settings import load_settings
from sendtime.serving import api, api_models, auth
from sendtime.serving.champion_watch import ChampionWatch
from sendtime.serving.http import ERRORS, KEYED, RELOAD_ERRORS, json_body, json_response, openapi

INLINE_BYTES = 2_048  # request bodies up to this size are answered on the event loop itself
app = FastAPI(title="sendtime", description="Which channel and what time to send, per subscriber.")
app.add_exception_handler(auth.KeyRefused, auth.refused)
app.openapi = openapi(app, api_models.PredictRequest, api_models.FollowupRequest)


@bentoml.service(name="sendtime", workers=1, traffic={"timeout": 120})
@bentoml.asgi_app(app, path="/")
class SendTime:
    def __init__(self) -> None:
        _log_level(os.environ.get("SENDTIME_LOG_LEVEL", "INFO"))
        self.settings = load_settings(os.environ.get("SENDTIME_CONFIG") or None)
        self.champion = ChampionWatch(self.settings)
        self.api_key = os.environ.get(self.settings.serving.api_key_env) or None
        self.rng = np.random.default_rng()
        self.limiter = anyio.CapacityLimiter(self.settings.serving.threads)
        self.champion.start_polling()

    def __is_ready__(self) -> bool:
        return getattr(self, "champion", None) is not None

    @bentoml.on_shutdown
    def stop_polling(self) -> None:
        self.champion.stop()

    async def answer(self, kind: str, request: Request) -> Response:
        text = await request.body()
        job = (kind, text, self.champion.predictor, self.settings, self.rng)  # one model a request
        if len(text) <= INLINE_BYTES:  # a few subscribers: a thread hand-off would cost more than the work
            status, body = api.handle(*job)
        else:  # big batches run in a thread, so that probes and small requests are not held up
            status, body = await anyio.to_thread.run_sync(api.handle, *job, limiter=self.limiter)
        return json_response(body, status)


def _log_level(name: str) -> None:
    """BentoML's worker shows other loggers from WARNING up; sendtime's own steps (the model loaded,
    a new champion swapped in) are INFO, the level `sendtime serve --log-level` passes on."""
    level = name.strip().upper()
    logging.getLogger("sendtime").setLevel(
        level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO"
    )


# Plain functions that look the service up (a FastAPI class view's `self` costs a thread-pool hop).
def _service() -> SendTime:
    return bentoml.get_current_service()


keyed = [Depends(auth.dependency(lambda: _service().api_key))]


@app.post("/predict", response_model=api_models.PredictResponse, responses=ERRORS, dependencies=keyed,
          openapi_extra=json_body(api_models.PredictRequest))  # fmt: skip
async def predict(request: Request) -> Response:
    return await _service().answer("predict", request)


@app.post("/followup", response_model=api_models.FollowupResponse, responses=ERRORS, dependencies=keyed,
          openapi_extra=json_body(api_models.FollowupRequest))  # fmt: skip
async def followup(request: Request) -> Response:
    return await _service().answer("followup", request)


@app.get("/model", response_model=api_models.ModelMetadata, responses=KEYED, dependencies=keyed)
async def model() -> Response:
    return json_response(api.model_metadata(_service().champion.predictor))


@app.post("/reload", responses={**KEYED, **RELOAD_ERRORS}, dependencies=keyed)
async def reload() -> Response:
    status, body = await anyio.to_thread.run_sync(_service().champion.reload_answer)
    return JSONResponse(body, status_code=status)
