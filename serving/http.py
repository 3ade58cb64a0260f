"""What the FastAPI app behind `sendtime serve` needs beyond its routes: JSON answers, and an OpenAPI
document that declares the request bodies, answers, error shapes and the API key.

The routes read the raw body and validate it with the request models themselves (`api.handle`), not
through FastAPI's typed body parameters: the models' limits come from the served settings (validation
context), a body is JSON whatever its content type says (as `curl -d` sends it), large batches are
validated off the event loop, and errors keep the API's own JSON and status codes. `json_body` declares
the same models as the request bodies in `/openapi.json`, FastAPI's documented way for a route that
parses its body itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sendtime.serving import api_errors as codes

_REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every refusal: `error` names each field and its problem; `details` lists them one by one."""

    error: str
    details: list[ErrorDetail]


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "model": ErrorBody}


ERRORS = {
    codes.BAD_JSON: _error("not JSON"),
    codes.UNAUTHORIZED: _error("API key missing or wrong"),
    codes.INVALID: _error("invalid request: each field and its problem"),
    codes.SERVER_ERROR: _error("unexpected error (see the server log)"),
}
KEYED = {codes.UNAUTHORIZED: ERRORS[codes.UNAUTHORIZED]}
RELOAD_ERRORS = {
    codes.NO_MODEL: _error("no champion alias: the model being served stays"),
    codes.SERVER_ERROR: _error("the new champion could not be loaded: the model being served stays"),
}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring `model` (added to the components by `openapi`) as the JSON request body."""
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openapi(app: FastAPI, *request_models: type[BaseModel]):
    """`app.openapi`: FastAPI's document plus the request models' schemas."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, defs = models_json_schema([(m, "validation") for m in request_models], ref_template=_REF)
            doc.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = doc
        return app.openapi_schema

    return build


def json_response(body: BaseModel | dict, status: int = codes.OK) -> Response:
    """An answer model (validated when it was built) or a refusal, checked against `ErrorBody`."""
    if isinstance(body, dict) and status >= codes.BAD_JSON:
        body = ErrorBody.model_validate(body)
    if isinstance(body, BaseModel):
        return Response(body.model_dump_json(), status_code=status, media_type="application/json")
    return JSONResponse(body, status_code=status)
