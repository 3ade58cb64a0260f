"""Schema-driven fuzzing of the real service: Schemathesis against `sendtime serve` on loopback.

Every operation `/openapi.json` declares gets generated requests, valid and invalid (Schemathesis's
positive and negative modes), sent with the API key over real HTTP to the session's champion. Each
answer must pass three checks: no server error (5xx), a status code the document declares for the
operation, and a body that conforms to the declared schema of that status. Examples per operation
are bounded (`EXAMPLES`) so the module runs in well under two minutes.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

pytestmark = pytest.mark.integration

EXAMPLES = 40  # per operation and generation mode
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_survives_generated_requests(api_schema, api_key, mode):
    """Hypothesis drives each operation's strategy here (schemathesis.pytest.from_fixture, the lazy
    loader for a schema that a fixture serves, does not run under pytest 9)."""
    operations = _operations(api_schema)
    for operation in operations:
        _check(operation.as_strategy(generation_mode=mode), api_key)


def test_generated_requests_with_readable_contacts_get_answers_that_match_their_schema(
    api_schema, api_key, people
):
    """Valid by the schema is rarely valid by the contract (a random string is no e-mail address, a
    random window rarely holds a clock hour inside years 1678-2261): here the generated bodies keep
    their shape (how many subscribers, which fields, channels, include_scores, engaged) with readable
    contacts, zones and times, so the answers checked are mostly 200s."""
    for operation in _operations(api_schema):
        if operation.method.upper() == "POST" and operation.path in ("/predict", "/followup"):
            _check(operation.as_strategy().map(lambda case: _readable(case, people)), api_key)


def test_the_documented_examples_are_answered(api_schema, api_key):
    for operation in _operations(api_schema):
        for strategy in api_schema.get_strategies_from_examples(operation):
            _check(strategy, api_key, examples=5)


def _operations(api_schema) -> list:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /predict", "POST /followup", "GET /model", "POST /reload"
    }  # fmt: skip
    return operations


def _check(strategy, api_key: str, examples: int = EXAMPLES) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same cases every run: a failure in CI reproduces
        database=None,
    )
    def survives(case) -> None:
        case.call_and_validate(headers={"X-API-Key": api_key}, checks=CHECKS, timeout=60)

    survives()


ZONES = ["America/Chicago", "Europe/London", "Asia/Tokyo"]
SENT = "2026-11-02T10:00:00Z"


def _readable(case, people: list[dict[str, str]]):
    body = case.body
    if not isinstance(body, dict):
        return case

    def person(value, i: int):
        if not isinstance(value, dict):
            return value
        known = people[i % len(people)]
        out = {k: v for k, v in value.items() if k in ("email", "phone", "timezone", "last_sent")}
        out["email"] = known["email"] if i % 3 != 2 else f"new{i}@example.org"  # some it has never seen
        if out.get("phone") is not None:
            out["phone"] = known["phone"]
        if out.get("timezone") is not None:
            out["timezone"] = ZONES[i % len(ZONES)]
        if isinstance(out.get("last_sent"), dict):
            out["last_sent"] = {c: SENT for c, t in out["last_sent"].items() if c in ("email", "sms") and t}
        return out

    if isinstance(body.get("subscribers"), list):
        body["subscribers"] = [person(s, i) for i, s in enumerate(body["subscribers"][:50])]
        if "window" in body:
            body["window"] = WINDOW
    if "subscriber" in body:
        body["subscriber"] = person(body["subscriber"], 0)
        body["email_sent_at"] = "2026-11-03T09:00:00Z"
    return case


@pytest.fixture(scope="module")
def people(small_world) -> list[dict[str, str]]:
    import pandas as pd

    links = pd.read_parquet(small_world / "identity_links.parquet")
    pairs = links[links["address_a"].str.contains("@") & links["address_b"].str.startswith("+1")]
    return [{"email": a, "phone": b} for a, b in zip(pairs["address_a"], pairs["address_b"], strict=True)][
        :40
    ]


WINDOW = {"start": "2026-11-03T05:00:00Z", "end": "2026-11-04T05:00:00Z"}
