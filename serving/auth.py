"""The HTTP API's key: when the variable named by `serving.api_key_env` is set, every route but the
probes needs it, in `X-API-Key` or as `Authorization: Bearer <key>`.

The two FastAPI security schemes put both ways into `/openapi.json`; the check itself reads the raw
`X-API-Key` header, so an empty one counts as a (wrong) key, as it always has.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from sendtime.serving.api_errors import UNAUTHORIZED

HEADER = "X-API-Key"
PROBLEM = "missing or wrong API key: send it in the X-API-Key header (or Authorization: Bearer <key>)"
API_KEY = APIKeyHeader(
    name=HEADER, auto_error=False, scheme_name="ApiKey", description="the service's API key"
)
BEARER = HTTPBearer(
    auto_error=False, scheme_name="Bearer", description="the service's API key as a bearer token"
)


class KeyRefused(Exception):
    """Raised by `require_key`; the app answers it with `refused()`."""


def allowed(key: str | None, header: str | None, bearer: str | None) -> bool:
    """No key configured, or the request carries it (the header wins over the bearer token)."""
    if key is None:
        return True
    given = header if header is not None else bearer
    return given is not None and hmac.compare_digest(given.encode(), key.encode())


def dependency(key_of):
    """A FastAPI dependency that raises KeyRefused unless `key_of()` (the configured key, or None) is
    met; declaring both schemes documents them on every route that uses it."""

    async def require_key(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
        _declared: Annotated[str | None, Security(API_KEY)],
    ) -> None:
        token = None if bearer is None else bearer.credentials
        if not allowed(key_of(), request.headers.get(HEADER), token):
            raise KeyRefused

    return require_key


def refused(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"error": PROBLEM, "details": [{"field": HEADER, "message": PROBLEM}]},
        status_code=UNAUTHORIZED,
        headers={"WWW-Authenticate": "Bearer"},
    )
