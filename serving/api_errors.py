"""How the prediction API refuses a request: status codes, and 4xx bodies that name each field.

Status codes (the same for HTTP and `sendtime predict`):
  200  an answer;
  400  the body is not JSON (or nests deeper than JSON readers go);
  401  an API key is configured and the request does not carry it (HTTP only);
  422  the JSON does not validate: `{"error": "<field>: <problem>", "details": [{"field", "message"}]}`,
       every message naming the field with its index, e.g. `subscribers[3]: needs an email or a phone`;
  503  no model to serve (no `champion` yet);
  500  anything else (a bug: the body says to look at the server log).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ValidationError

from sendtime.configs.settings import Settings
from sendtime.schema import CHANNELS, EMAIL

if TYPE_CHECKING:
    from sendtime.serving.contacts import Audience

OK = 200
BAD_JSON = 400
UNAUTHORIZED = 401
INVALID = 422
NO_MODEL = 503
SERVER_ERROR = 500

_CONTACT_FIELDS = ("email", "phone")  # request field per channel, in schema.CHANNELS order
_SHOWN = 5  # problems spelt out in the error message; `details` lists them all


class RequestError(Exception):
    """A request the API refuses: HTTP status plus the error body."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details if details is not None else []

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "details": self.details}


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
    return _invalid(
        [{"field": _where(e["loc"]), "message": _message(e)} for e in exc.errors(include_url=False)]
    )


def _invalid(details: list[dict[str, str]]) -> RequestError:
    lines = [f"{d['field']}: {d['message']}" for d in details]
    more = f" (and {len(lines) - _SHOWN} more)" if len(lines) > _SHOWN else ""
    return RequestError(INVALID, "; ".join(lines[:_SHOWN]) + more, details)


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
    except RecursionError:  # the parser recurses per level; no request of ours nests deeper than a few
        raise _body_error("nested too deeply") from None
    except ValueError as exc:  # valid syntax the parser still refuses: an integer of 4,300+ digits
        raise _body_error(f"not readable JSON ({exc})") from None
    if _ESCAPED_SURROGATE.search(text):  # rare: look for the string that is not Unicode only then
        _refuse_surrogates(data)
    try:
        return model.model_validate(data, context={"serving": settings.serving})
    except ValidationError as exc:
        raise validation_error(exc) from None


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # JSON's \uD800-\uDFFF escapes


def _refuse_surrogates(data: Any) -> None:
    """422 naming every string (or key) holding a lone surrogate: JSON can spell one (`"\\ud800"`) but it
    is not text, and it could not be hashed, looked up or echoed back in an answer."""
    details, stack = [], [((), data)]
    while stack:  # by hand, not recursively: any nesting json.loads accepted is walked safely
        loc, value = stack.pop()
        items = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        )
        for key, item in items:
            where = (*loc, _printable(key) if isinstance(key, str) else key)
            if isinstance(key, str) and not _is_text(key):
                details.append(
                    {"field": _where(where), "message": "the field name is not valid Unicode text"}
                )
            elif isinstance(item, str) and not _is_text(item):
                details.append(
                    {"field": _where(where), "message": "not valid Unicode text (a lone surrogate)"}
                )
            elif isinstance(item, dict | list):
                stack.append((where, item))
    if details:
        raise _invalid(sorted(details, key=lambda d: d["field"]))


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(value: str) -> str:
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def check_contacts(audience: Audience, given: list[tuple[str | None, str | None]], prefix: str) -> None:
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
    raise _invalid(details)
