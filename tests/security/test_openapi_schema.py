"""Schemathesis against the service's own OpenAPI schema: no 5xx, and every answer as the schema says.

The service (``create_app`` on uvicorn, on SQLite, PostgreSQL and Redis; see ``_live.py``) publishes
``/openapi.json``; Schemathesis generates requests for every operation in it, valid ones and (negative
mode) invalid ones, and each answer is checked: not a server error; a status the operation declares; a
declared content type; a body and headers that match the declared schema. Authenticated operations get a
live session's access token, and some requests carry the live session's refresh token, session id or
alice's credentials, so the paths past authentication are exercised too (the session is renewed whenever
one of them ends it). The OAuth 2.0 routes get the same: a form with the live refresh token (token,
revoke) or access token (introspect, with a registered confidential client's Basic credentials).

Every mismatch of every operation is collected and reported together, so one run lists all of them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.errors import FailureGroup

from ..contract.backends import SHARED_BACKENDS, isolated
from ._live import LiveService, live_service

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 20}
"""Examples per operation: the whole module (three backends, both modes) takes about 45 s on a busy
two-core machine."""

BEARER_OPERATIONS = {
    "/auth/me",
    "/auth/sessions",
    "/auth/sessions/{session_id}",
    "/auth/logout",
    "/auth/logout-all",
}
ENDING_OPERATIONS = {
    "/auth/refresh",
    "/auth/logout",
    "/auth/logout-all",
    "/auth/sessions/{session_id}",
    "/auth/revoke",
    "/oauth/token",
    "/oauth/revoke",
}
CLIENT_ID = "schema-rs"


@pytest.fixture(scope="module", params=SHARED_BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    tmp = tmp_path_factory.mktemp(f"openapi-{request.param}")
    with isolated(request.param, tmp) as place, live_service(place.url) as service:
        assert service.runtime is not None
        added = service.on_loop(service.runtime.clients.add(CLIENT_ID, confidential=True))
        assert added is not None
        assert added.secret is not None
        service.client_secret = added.secret  # type: ignore[attr-defined]
        yield service


@dataclass
class Findings:
    """Distinct mismatches, by operation, status and check, with one message each."""

    seen: dict[tuple[str, int, str], str] = field(default_factory=dict)
    calls: int = 0

    def add(self, label: str, status: int, group: FailureGroup) -> None:
        for failure in group.exceptions:
            key = (label, status, failure.title)
            self.seen.setdefault(key, " ".join(failure.message.split())[:300])

    def report(self) -> str:
        return "\n".join(
            f"- {label} -> {status}: {title}: {message}"
            for (label, status, title), message in sorted(self.seen.items())
        )


class Session:
    """The live session whose credentials some requests carry; renewed when a request may have ended it."""

    def __init__(self, live: LiveService) -> None:
        self.live = live
        self.pair = live.start_session()

    def renew(self) -> None:
        self.pair = self.live.start_session()


def with_credentials(case: Any, path: str, session: Session, live: LiveService) -> None:
    """Put the live session's refresh token, session id or alice's credentials where ``case`` has room."""
    if path == "/auth/login" and isinstance(case.body, dict):
        case.body = {**case.body, "username": live.username, "password": live.password}
    elif path in {"/auth/refresh", "/auth/logout", "/auth/logout-all"} and isinstance(case.body, dict):
        case.body = {**case.body, "refresh_token": session.pair.refresh_token}
    elif path == "/auth/sessions/{session_id}" and case.path_parameters is not None:
        case.path_parameters = {**case.path_parameters, "session_id": session.pair.session_id}
    elif path in {"/auth/revoke", "/oauth/revoke"}:
        # RFC 7009's form, with the live session's token, so that the route gets past its 400 too.
        case.media_type = "application/x-www-form-urlencoded"
        case.body = {"token": session.pair.refresh_token}
    elif path == "/oauth/token":
        case.media_type = "application/x-www-form-urlencoded"
        case.body = {"grant_type": "refresh_token", "refresh_token": session.pair.refresh_token}
    elif path == "/oauth/introspect":
        case.media_type = "application/x-www-form-urlencoded"
        case.body = {"token": session.pair.access_token}


def client_basic(live: LiveService) -> str:
    """HTTP Basic of the service's registered confidential client (``client_secret_basic``)."""
    secret: str = live.client_secret  # type: ignore[attr-defined]
    return "Basic " + base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()


def fuzz(
    live: LiveService, operation: Any, mode: GenerationMode, session: Session, findings: Findings
) -> None:
    """Send ``operation`` the requests Schemathesis generates and check every answer."""
    path = operation.path

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # failures are collected, not raised: nothing to shrink
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), credentials=st.booleans(), bearer=st.booleans())
    def run(case: Any, credentials: bool, bearer: bool) -> None:
        headers = {}
        if path in BEARER_OPERATIONS and bearer:
            headers["Authorization"] = f"Bearer {session.pair.access_token}"
        if path == "/oauth/introspect" and bearer:
            headers["Authorization"] = client_basic(live)
        if credentials:
            with_credentials(case, path, session, live)
        response = case.call(base_url=live.url, headers=headers, timeout=60)
        findings.calls += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            findings.add(operation.label, response.status_code, group)
        if path in ENDING_OPERATIONS and response.status_code == 200:
            session.renew()

    try:
        run()
    except Unsatisfiable:
        # Negative mode and an operation with nothing to get wrong (no parameters, no body): no cases.
        assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request could be generated"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_answer_matches_the_openapi_schema_and_none_is_a_server_error(
    live: LiveService, mode: GenerationMode
) -> None:
    """No 500 or 503, and no status, content type, body or header the schema does not describe."""
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    findings, session = Findings(), Session(live)
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        fuzz(live, operation, mode, session, findings)
    assert findings.calls >= 5 * len(operations), "too few requests were sent"
    assert not findings.seen, f"{len(findings.seen)} mismatches with the OpenAPI schema:\n{findings.report()}"
