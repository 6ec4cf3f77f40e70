"""The application's hooks, and the two ways a login starts a session.

An application gives plain functions, sync or async (a sync one runs in a worker thread, as FastAPI
runs sync dependencies, so a blocking database call does not stall the event loop):

- ``authenticate(request, credentials) -> subject | None``: the login body (a JSON object) checked the
  application's way; ``None`` (or an empty subject) is ``invalid_credentials``;
- ``subject_check(subject) -> bool``: asked on every refresh, may this subject still hold a session?
- ``claims(subject) -> dict``: the claims (roles, scopes, tenant) of every new access token, asked at
  login and at each refresh.

:class:`AppLogin` turns ``authenticate`` into a login; :class:`UserLogin` is the built-in user store's
(``keyturn serve``), which checks the password itself so that a password change racing the login wins.
The login route checks the request's DPoP proof (and its nonce) before either is called: a bad or replayed
proof costs no password hash and learns nothing of whether the credentials were right.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeAlias, TypeVar, cast

from fastapi import Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidCredentials
from ..sessions import ClaimsSource, TokenPair
from ..typing import ClientDpop, JSONValue, SubjectCheck
from .bodies import malformed
from .dpop import request_proof
from .routes._common import client_ip
from .runtime import Runtime
from .schemas import LoginRequest

__all__ = [
    "AppLogin",
    "AuthenticateHook",
    "ClaimsHook",
    "Credentials",
    "Login",
    "SubjectCheckHook",
    "UserLogin",
    "begin",
    "begin_bound",
    "claims_source",
    "subject_check",
]

T = TypeVar("T")

Credentials: TypeAlias = dict[str, JSONValue]
"""The login body: a JSON object whose fields the application chooses."""
AuthenticateHook: TypeAlias = Callable[[Request, Credentials], "str | Awaitable[str | None] | None"]
SubjectCheckHook: TypeAlias = Callable[[str], "bool | Awaitable[bool]"]
ClaimsHook: TypeAlias = Callable[[str], "Mapping[str, JSONValue] | Awaitable[Mapping[str, JSONValue]]"]

LOGIN_NAMES = ("username", "email")
"""The credentials' field the per-name login rate limit counts, the first one present as a string."""


def _is_async(hook: object) -> bool:
    # An object whose __call__ is async counts too (inspect only looks at functions).
    call = type(hook).__call__ if not inspect.isfunction(hook) and callable(hook) else None
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(call)


async def _call(hook: Callable[..., T | Awaitable[T]], *args: object) -> T:
    """``hook(*args)``: awaited if it is async, else in a worker thread."""
    if _is_async(hook):
        result = hook(*args)
    else:
        result = await run_in_threadpool(hook, *args)
    if inspect.isawaitable(result):  # a sync function that hands back a coroutine
        return cast(T, await result)
    return result


def subject_check(hook: SubjectCheckHook) -> SubjectCheck:
    """The application's ``subject_check`` as the core asks it."""
    if _is_async(hook):
        return cast(SubjectCheck, hook)

    async def check(sub: str) -> bool:
        return bool(await _call(hook, sub))

    return check


def claims_source(hook: ClaimsHook) -> ClaimsSource:
    """The application's ``claims`` as the core asks them."""

    async def claims(sub: str) -> Mapping[str, JSONValue]:
        found = await _call(hook, sub)
        if not isinstance(found, Mapping):
            raise TypeError(f"claims({sub!r}) must return a dict, not {type(found).__name__}")
        return found

    return claims


async def begin(rt: Runtime, request: Request, subject: str, client_id: str | None = None) -> TokenPair:
    """Start a session of ``subject`` for the caller of ``request`` (its claims from the claims hook).

    The subject check is asked again once the session exists: a subject disabled while it logged in
    keeps no session (the same guarantee the built-in user store gives against a password change).
    """
    if not isinstance(subject, str) or not subject:
        raise TypeError("a subject is a non-empty string")
    jkt = rt.dpop.binding(await request_proof(rt, request, client=await rt.clients.dpop_policy(client_id)))
    return await begin_bound(rt, request, subject, client_id, jkt)


async def begin_bound(
    rt: Runtime, request: Request, subject: str, client_id: str | None, jkt: str | None
) -> TokenPair:
    """:func:`begin`, with the request's proof already checked: the session is bound to ``jkt``."""
    if not isinstance(subject, str) or not subject:
        raise TypeError("a subject is a non-empty string")
    sessions = rt.sessions
    agent, ip = request.headers.get("user-agent"), client_ip(request, rt.settings)
    pair = await sessions.start(subject, user_agent=agent, ip=ip, client_id=client_id, jkt=jkt)
    check = sessions.subject_check
    if check is not None and not await check(subject):
        await sessions.revoke(pair.session_id, "subject_disabled")
        raise InvalidCredentials()
    return pair


class Login(Protocol):
    """How the login route checks credentials and starts a session."""

    @property
    def schema(self) -> dict[str, Any]:
        """The login body's JSON schema, for the OpenAPI document."""

    def name(self, credentials: Credentials) -> str:
        """The name the per-name login rate limit counts (``invalid_request`` for a malformed body)."""

    async def dpop_policy(self, rt: Runtime, credentials: Credentials) -> ClientDpop:
        """The DPoP policy of the client the login is for, which the route checks the proof by before
        any credential is looked at."""

    async def __call__(
        self, rt: Runtime, request: Request, credentials: Credentials, jkt: str | None
    ) -> TokenPair:
        """The new session's tokens (bound to ``jkt``, the checked proof's key), or
        ``invalid_credentials``."""


class AppLogin:
    """A login by the application's ``authenticate`` hook."""

    def __init__(self, authenticate: AuthenticateHook, schema: Mapping[str, Any] | None = None) -> None:
        self._authenticate = authenticate
        self.schema: dict[str, Any] = dict(schema or {"type": "object", "additionalProperties": True})

    def name(self, credentials: Credentials) -> str:
        for field in LOGIN_NAMES:
            value = credentials.get(field)
            if isinstance(value, str):
                return value
        return ""

    async def dpop_policy(self, rt: Runtime, credentials: Credentials) -> ClientDpop:
        return await rt.clients.dpop_policy(None)

    async def __call__(
        self, rt: Runtime, request: Request, credentials: Credentials, jkt: str | None
    ) -> TokenPair:
        subject = await _call(self._authenticate, request, credentials)
        if subject is None or subject == "":
            raise InvalidCredentials()
        return await begin_bound(rt, request, subject, None, jkt)


class UserLogin:
    """The built-in user store's login: ``{username, password}``, argon2id."""

    schema: dict[str, Any] = LoginRequest.model_json_schema()

    def name(self, credentials: Credentials) -> str:
        return self._parse(credentials).username

    async def dpop_policy(self, rt: Runtime, credentials: Credentials) -> ClientDpop:
        return await rt.clients.login_policy(self._parse(credentials).client_id)

    async def __call__(
        self, rt: Runtime, request: Request, credentials: Credentials, jkt: str | None
    ) -> TokenPair:
        body = self._parse(credentials)
        return await rt.users.login(
            body.username,
            body.password,
            user_agent=request.headers.get("user-agent"),
            ip=client_ip(request, rt.settings),
            client_id=body.client_id,
            jkt=jkt,
        )

    @staticmethod
    def _parse(credentials: Credentials) -> LoginRequest:
        try:
            return LoginRequest.model_validate(credentials)
        except ValidationError as exc:
            raise malformed(exc.errors(include_input=False)) from None
