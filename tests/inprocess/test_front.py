"""``server/front.py``: ``keyturn serve``'s refresh answered in front of FastAPI's and Starlette's layers.

What the skipped layers did for the call is still done: the body cap, the one error body, the 500 body
and its log line, every header of the answer. An app whose stack is not the one ``create_app`` built (a
middleware added to it) keeps the whole path, so the added middleware sees every refresh.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import fastapi
import httpx
import pytest
import starlette
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyturn.errors import ServerError
from keyturn.server.app import create_app
from keyturn.server.login_gate import LoginGate
from keyturn.server.routes._common import cookie_name
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.server.token_reply import CSRF_HEADER
from keyturn.testing import fast_hasher, make_settings

pytestmark = pytest.mark.anyio

_FRAMEWORKS = tuple(str(Path(package.__file__).parent) for package in (starlette, fastapi))
_NOT_LAYERS = ("responses.py", "requests.py", "datastructures.py")


@contextmanager
def framework_layers() -> Iterator[set[str]]:
    """The ASGI layers (``__call__(scope, receive, send)``) of FastAPI and Starlette a call enters."""
    entered: set[str] = set()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if (
            event == "call"
            and code.co_name == "__call__"
            and code.co_filename.startswith(_FRAMEWORKS)
            and not code.co_filename.endswith(_NOT_LAYERS)
            and code.co_varnames[1 : code.co_argcount] == ("scope", "receive", "send")
        ):
            entered.add(code.co_qualname)

    sys.setprofile(profile)
    try:
        yield entered
    finally:
        sys.setprofile(None)


class Seen:
    """A pure ASGI middleware of the application's own: it records the paths it sees."""

    def __init__(self, app: ASGIApp, paths: list[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
async def runtime(anyio_backend: str) -> AsyncIterator[Runtime]:
    rt = await open_runtime(make_settings(), hasher=fast_hasher(), subject_check=None)
    try:
        yield rt
    finally:
        await rt.close()


def client(app: ASGIApp, *, raise_app_exceptions: bool = False, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://keyturn.test")


def served(app: fastapi.FastAPI) -> ASGIApp:
    """What ``keyturn serve`` serves (``cli.cmd_serve``): the app behind the login gate."""
    return LoginGate(app, "/auth/login")


async def test_a_refresh_enters_no_fastapi_or_starlette_layer(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    pair = await runtime.sessions.start("alice")
    async with app.router.lifespan_context(app), client(served(app)) as http:
        with framework_layers() as refresh_layers:
            answer = await http.post("/auth/refresh", json={"refresh_token": pair.refresh_token})
        assert answer.status_code == 200, answer.text
        with framework_layers() as logout_layers:
            assert (await http.post("/auth/logout", json={"refresh_token": "x"})).status_code == 401
    assert refresh_layers == set()
    # Any other call takes the whole way (and the probe sees it).
    assert {"ServerErrorMiddleware.__call__", "Router.__call__"} <= logout_layers


async def test_a_middleware_added_to_the_app_sees_every_refresh(runtime: Runtime) -> None:
    paths: list[str] = []
    app = create_app(runtime=runtime)
    app.add_middleware(Seen, paths=paths)
    pair = await runtime.sessions.start("alice")
    async with app.router.lifespan_context(app), client(served(app)) as http:
        answer = await http.post("/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert answer.status_code == 200, answer.text
    assert paths == ["/auth/refresh"]


def _comparable(answer: httpx.Response) -> list[tuple[str, str]]:
    """The answer's headers, with the values that differ from call to call (tokens, lengths) left out."""
    headers = []
    for name, value in answer.headers.multi_items():
        if name == "content-length":
            value = "*"
        elif name == "set-cookie":
            cookie_name, _, rest = value.partition("=")
            value = f"{cookie_name}=*;{rest.partition(';')[2]}"
        headers.append((name, value))
    return headers


async def _answers(app: fastapi.FastAPI, runtime: Runtime) -> list[httpx.Response]:
    """A refresh in both modes, and the refresh calls' errors: no token, a bad token, a body over the cap
    (declared and chunked), another method."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(300):
            yield b"x" * 1024

    bearer, cookie = await runtime.sessions.start("alice"), await runtime.sessions.start("bob")
    name, csrf = cookie_name(runtime), {CSRF_HEADER: "1"}
    async with app.router.lifespan_context(app), client(served(app)) as http:
        return [
            await http.post("/auth/refresh", json={"refresh_token": bearer.refresh_token}),
            await http.post("/auth/refresh", headers={"Cookie": f"{name}={cookie.refresh_token}", **csrf}),
            await http.post("/auth/refresh", json={}),
            await http.post("/auth/refresh", json={"refresh_token": "x.y.z"}),
            await http.post("/auth/refresh", content=b"{" * (256 * 1024 + 1)),
            await http.post("/auth/refresh", content=chunks()),
            await http.get("/auth/refresh"),
        ]


async def test_the_refresh_answers_carry_the_headers_of_the_whole_path(runtime: Runtime) -> None:
    """The same calls answered in front of the layers and through them (an added middleware keeps the whole
    path): the same statuses, bodies (but the tokens) and headers (but the tokens and lengths)."""
    front = await _answers(create_app(runtime=runtime), runtime)
    whole_app = create_app(runtime=runtime)
    whole_app.add_middleware(Seen, paths=[])
    whole = await _answers(whole_app, runtime)
    assert [a.status_code for a in front] == [200, 200, 400, 401, 413, 413, 405]
    assert [a.status_code for a in front] == [a.status_code for a in whole]
    assert [_comparable(a) for a in front] == [_comparable(a) for a in whole]
    assert [sorted(a.json()) for a in front] == [sorted(a.json()) for a in whole]
    assert [a.json() for a in front[2:]] == [a.json() for a in whole[2:]]
    assert ("cache-control", "no-store") in _comparable(front[0])
    assert any(name == "set-cookie" for name, _ in _comparable(front[1]))


async def test_an_unexpected_exception_on_the_short_path_is_the_500_body_and_is_logged(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug on the refresh path (an injected fault: the subject check raises) answers the one 500 body,
    logs it as the app's server-error handling does, and goes on to the server (which logs it too), as
    Starlette's server-error middleware does."""

    def subject_check(subject: str) -> bool:
        raise RuntimeError("a bug with a secret in it")

    rt = await open_runtime(make_settings(), hasher=fast_hasher(), subject_check=None)
    try:
        app = create_app(runtime=rt, subject_check=subject_check)
        pair = await rt.sessions.start("alice")
        async with app.router.lifespan_context(app):
            async with client(served(app)) as http:
                with framework_layers() as layers, caplog.at_level(logging.ERROR, "keyturn.server"):
                    answer = await http.post("/auth/refresh", json={"refresh_token": pair.refresh_token})
            logged = [r for r in caplog.records if r.name == "keyturn.server"]
            async with client(served(app), raise_app_exceptions=True) as http:
                with pytest.raises(RuntimeError, match="a bug"):
                    await http.post("/auth/refresh", json={"refresh_token": pair.refresh_token})
    finally:
        await rt.close()
    assert layers == set()  # answered on the short path
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "server_error",
        "error_description": ServerError.description,
        "retryable": True,
    }
    assert "secret" not in answer.text
    assert "Traceback" not in answer.text
    assert answer.headers["content-type"] == "application/json"
    assert [r.getMessage() for r in logged] == ["unexpected error: RuntimeError"]
    assert logged[0].exc_info is not None


async def test_the_short_path_matches_below_a_root_path(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    pair = await runtime.sessions.start("alice")
    async with app.router.lifespan_context(app), client(served(app), root_path="/api") as http:
        with framework_layers() as layers:
            answer = await http.post("/api/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert answer.status_code == 200, answer.text
    assert layers == set()


async def test_with_fastapis_telemetry_on_a_refresh_takes_the_whole_path(runtime: Runtime) -> None:
    """FastAPI's native telemetry (here: a tracer provider of its own, a no-op one) sees every call, so with
    it on the refresh goes through FastAPI's layers."""
    app = create_app(runtime=runtime)
    app._telemetry["tracer_provider"] = trace.NoOpTracerProvider()  # FastAPI(telemetry={...})'s setting
    pair = await runtime.sessions.start("alice")
    async with app.router.lifespan_context(app), client(served(app)) as http:
        with framework_layers() as layers:
            answer = await http.post("/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert answer.status_code == 200, answer.text
    assert {"FastAPI.__call__", "ServerErrorMiddleware.__call__"} <= layers


async def test_a_failure_once_the_answer_has_started_sends_no_second_answer(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """An injected fault: the connection breaks while the answer's body is sent. The app's handler logs it,
    no second answer is started, and the error goes on to the server."""
    app = create_app(runtime=runtime)
    pair = await runtime.sessions.start("alice")
    body = json.dumps({"refresh_token": pair.refresh_token}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[str] = []

    async def receive() -> Message:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message["type"])
        if message["type"] == "http.response.body":
            raise OSError("the connection broke")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/auth/refresh",
        "raw_path": b"/auth/refresh",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"x"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    async with app.router.lifespan_context(app):
        with framework_layers() as layers, pytest.raises(OSError, match="broke"):
            await served(app)(scope, receive, send)
    assert layers == set()
    assert sent == ["http.response.start", "http.response.body"]
    logged = [r.getMessage() for r in caplog.records if r.name == "keyturn.server"]
    assert logged == ["unexpected error: OSError"]
