"""The session contract of ``docs/contract.md`` as Django views: ``keyturn.django.urls`` routes them.

Each endpoint is one flow (:mod:`._flow`): it parses the request, calls the core (``Core`` steps) and
Django (``Orm`` steps), and answers with the bodies, codes and headers ``keyturn serve`` answers with.
Login goes through ``django.contrib.auth.authenticate()``, so every authentication backend of the project
works; the subject of a session is the user's primary key, as a string.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, Field, ValidationError

from ..dpop import Proof
from ..errors import InvalidCredentials, InvalidRequest, KeyturnError, ServerError, StoreUnavailable
from ..http import KEYTURN_ERRORS, ErrorForm, bearer_token_if_any, one_joined_authorization, revocation_token
from ..keys import public_jwks
from ..oauth import dpop_signing_algs
from ..revocation import FEED_BATCH, MAX_SEQ, feed_body, read_feed
from ..server.bodies import malformed
from ..server.presentation import authenticate as authenticate_presented
from ..server.presentation import presented, presents_token
from ..server.runtime import Runtime
from ..server.schemas import LoginRequest, RefreshRequest, session_info
from ..sessions import Authenticated, TokenPair
from ..tokens import RefreshClaims, unverified_refresh_subject
from ..typing import ClientDpop, JSONValue, RefreshLimits
from . import _http
from ._flow import Core, DualView, Flow, Orm, Step, run_async, run_sync
from .service import service
from .users import LoginState, login_state, stored_login_state, subject_allowed, subject_of

__all__ = ["endpoint", "login_flow", "nonce_headers", "password_login", "refreshed", "start_flow"]

JWKS_MAX_AGE = 300
FlowMaker = Callable[..., Flow]


def endpoint(
    methods: tuple[str, ...],
    make: FlowMaker,
    name: str,
    *,
    form: ErrorForm = KEYTURN_ERRORS,
    resource: bool = False,
) -> DualView:
    """A view answering ``methods`` with the flow ``make(request, **kwargs)``, sync or async; its errors in
    ``form`` (``OAUTH_ERRORS``, RFC 6749's, in ``keyturn.django.oauth_urls``). A GET view answers HEAD
    too (RFC 9110 section 9.1; the server leaves the body out), and a 405 names them all in ``Allow``.
    ``resource``: the view takes an access token as ``Bearer`` or ``DPoP``, and its refusals challenge in
    both schemes while DPoP is on (``KEYTURN_ERRORS.at_resource``), and in ``DPoP`` alone a token presented
    so (``ErrorForm.presented``), as ``keyturn serve``'s do."""
    allowed = (*methods, "HEAD") if "GET" in methods and "HEAD" not in methods else methods

    def flow(request: HttpRequest, **kwargs: Any) -> Flow:
        answers = form
        if resource:
            algs = dpop_signing_algs(settings_of())
            answers = form.at_resource(algs).presented(request.headers.get("Authorization"))
        if request.method not in allowed:
            response = _http.error(InvalidRequest("Method Not Allowed"), status=405, form=answers)
            response["Allow"] = ", ".join(allowed)
            return _answer(response)
        return guarded(make(request, **kwargs), form=answers)

    def handler(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return run_sync(flow(request, **kwargs), service().call)

    async def ahandler(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return await run_async(flow(request, **kwargs), service().acall)

    return DualView(handler, ahandler, name)


def _answer(response: HttpResponse) -> Flow:
    return response
    yield  # a flow with no steps


def guarded(flow: Flow, *, form: ErrorForm = KEYTURN_ERRORS) -> Flow:
    """``flow``, with every error it lets through answered with the one error body: a ``KeyturnError``
    with its own code, anything else (a bug, the project's database down) as ``server_error``."""
    try:
        return (yield from flow)
    except KeyturnError as exc:
        return _http.error(exc, _http.too_large_status(exc), form=form)
    except Exception as exc:  # noqa: BLE001  # never Django's HTML 500 page: the one body, and a log line
        _http.logger.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return _http.error(ServerError(), form=form)


def settings_of() -> Any:
    return service().config.settings


# -- login and starting sessions ---------------------------------------------------------------


def start_flow(
    request: HttpRequest,
    user: Any,
    claims: Mapping[str, JSONValue] | None = None,
    *,
    known: LoginState | None = None,
    client_id: str | None = None,
) -> Flow:
    """Start a session for ``user`` (already authenticated by the project) and answer with its tokens.

    With ``known`` (the user's password hash and active flag as the caller checked them), a password
    change or deactivation that raced the start ends the new session at once (``invalid_credentials``).
    ``client_id``: the OAuth 2.0 client the session is for (the built-in ``keyturn`` without one).
    """
    pair = yield from start_pair(request, user, claims, known=known, client_id=client_id)
    return _http.token_response(request, pair, settings_of(), (yield from nonce_headers()))


def start_pair(
    request: HttpRequest,
    user: Any,
    claims: Mapping[str, JSONValue] | None = None,
    *,
    known: LoginState | None = None,
    client_id: str | None = None,
    bound: Bound | None = None,
) -> Generator[Step, Any, TokenPair]:
    """``bound``: the request's proof, already checked (:class:`Bound`); else it is checked here."""
    settings = settings_of()
    subject = subject_of(user)
    ip = _http.client_ip(request, settings)
    agent = request.headers.get("User-Agent")
    if bound is None:

        async def checked(rt: Runtime) -> Bound:  # a required client's session needs a proof
            return await _bound(rt, request, await rt.clients.dpop_policy(client_id))

        bound = yield Core(checked)
    jkt = bound.jkt
    pair: TokenPair = yield Core(
        lambda rt: rt.sessions.start(subject, claims, user_agent=agent, ip=ip, client_id=client_id, jkt=jkt)
    )
    if known is not None:
        now = yield Orm(lambda: stored_login_state(subject))
        if now != known:  # changed (or deleted) between the check and the session: end the session
            yield Core(lambda rt: rt.sessions.revoke(pair.session_id, "password_changed"))
            raise InvalidCredentials()
    yield Orm(lambda: user_logged_in.send(sender=user.__class__, request=request, user=user))
    return pair


@dataclass(frozen=True, slots=True)
class Bound:
    """The key a new session is bound to (``None``: none), from the request's checked DPoP proof."""

    jkt: str | None


async def _bound(rt: Runtime, request: HttpRequest, policy: ClientDpop = "optional") -> Bound:
    """RFC 9449: a session started with a proof is bound to its key (``policy``: the DPoP policy of the
    client the session is for; ``required``: a proof or ``invalid_dpop_proof``)."""
    return Bound(rt.dpop.binding(await request_proof(rt, request, client=policy)))


def login_flow(request: HttpRequest) -> Flow:
    body = _http.json_body(request, LoginRequest, required=True)
    assert body is not None
    credentials = {"username": body.username, "password": body.password}
    pair = yield from password_login(request, credentials, body.username, client_id=body.client_id)
    return _http.token_response(request, pair, settings_of(), (yield from nonce_headers()))


def password_login(
    request: HttpRequest,
    credentials: Mapping[str, str],
    name: str,
    *,
    client_id: str | None = None,
    claims: Callable[[Any], Mapping[str, JSONValue]] | None = None,
) -> Generator[Step, Any, TokenPair]:
    """A login by ``authenticate(request, **credentials)`` (``/login``, SimpleJWT's ``token/``), in
    ``keyturn serve``'s order: the rate limit (``name`` and the address), the client (``client_id``: a
    registered public one, or ``invalid_request``) and the DPoP proof, all before the password hash (the
    costly part), so a bad or replayed proof costs no hashing and tells nothing of the password. Then a
    session (with ``claims(user)``) bound to the proof's key, if any."""
    ip = _http.client_ip(request, settings_of())

    async def admitted(rt: Runtime) -> Bound:
        await rt.limiter.login(name, ip)
        return await _bound(rt, request, await rt.clients.login_policy(client_id))

    bound = yield Core(admitted)
    user = yield Orm(lambda: authenticate(request, **credentials))
    if user is None or not getattr(user, "is_active", True):
        raise InvalidCredentials()
    extra = None if claims is None else claims(user)
    known = login_state(user)
    return (yield from start_pair(request, user, extra, known=known, client_id=client_id, bound=bound))


# -- refresh, me, logout ------------------------------------------------------------------------


def refreshed(
    request: HttpRequest, token: str, *, client_id: str | None = None, dpop: ClientDpop = "optional"
) -> Generator[Step, Any, TokenPair]:
    """``SessionService.refresh`` with the subject check asked on this request's own thread and database
    connection (so it sees what the request, or a test's transaction, sees). ``client_id``: the client
    that ``oauth/token`` authenticated (a session of another client's is ``token_invalid``); ``dpop``: the
    DPoP policy that call is held to (``keyturn.dpop_gate.token_request_policy``).

    The check is asked first, for the subject the token claims, and the core takes its answer (or its
    failure, raised where the check used to be: after the token verified) in the same step that verifies
    and rotates: one trip to the core's thread per refresh, not two. A token whose verified subject is not
    the one it claimed (none, but the check must not trust it) is checked again, as the verified subject.
    """
    ip = _http.client_ip(request, settings_of())
    claimed = unverified_refresh_subject(token)
    early = (yield Orm(lambda: _subject_answer(claimed))) if claimed is not None else None

    async def rotated(rt: Runtime) -> TokenPair | _Verified:
        limits = rt.limiter.refresh(ip)
        claims, now = await rt.sessions.verify_refresh(token, limits=limits)
        jkt = await rt.dpop.refresh_key(request_proof(rt, request, client=dpop), limits, now)
        if early is None or claims.sub != claimed:
            return _Verified(claims, now, limits, jkt)
        if isinstance(early, StoreUnavailable):
            raise early
        return await rt.sessions.refresh_verified(
            claims, now, limits=limits, subject_allowed=early, client_id=client_id, jkt=jkt
        )

    result = yield Core(rotated)
    if isinstance(result, _Verified):
        verified = result
        allowed = yield Orm(lambda: subject_allowed(verified.claims.sub))
        result = yield Core(
            lambda rt: rt.sessions.refresh_verified(
                verified.claims,
                verified.now,
                limits=verified.limits,
                subject_allowed=allowed,
                client_id=client_id,
                jkt=verified.jkt,
            )
        )
    pair: TokenPair = result
    return pair


@dataclass(frozen=True, slots=True)
class _Verified:
    """A refresh token verified (and its DPoP proof, if any), its subject not checked yet."""

    claims: RefreshClaims
    now: float
    limits: RefreshLimits
    jkt: str | None


def _subject_answer(subject: str) -> bool | StoreUnavailable:
    """:func:`subject_allowed`, its failure returned for the core step to raise after the token verified."""
    try:
        return subject_allowed(subject)
    except StoreUnavailable as exc:
        return exc


async def _proof_key(rt: Runtime, request: HttpRequest) -> str | None:
    """The key thumbprint of the request's checked proof, which ending or listing a bound session needs."""
    proof = await request_proof(rt, request)
    return None if proof is None else proof.jkt


async def request_proof(
    rt: Runtime,
    request: HttpRequest,
    *,
    access_token: str | None = None,
    client: ClientDpop = "optional",
) -> Proof | None:
    """The request's checked DPoP proof (``keyturn.dpop_gate``), as ``keyturn.server.dpop`` reads it.

    Its URL is built only for a proof to check: without one there is nothing to compare it with, and
    building it (the host, checked against ``ALLOWED_HOSTS``, and ``request.headers``) cost about a tenth
    of the core's time per refresh (py-spy, bench/compare/profile_django.py)."""
    proof = request.META.get("HTTP_DPOP")  # what ``request.headers.get("DPoP")`` reads
    method = request.method or ""
    if not proof:
        return await rt.dpop.check([], method=method, url="", access_token=access_token, client=client)
    url = request.build_absolute_uri(request.path)
    return await rt.dpop.check([proof], method=method, url=url, access_token=access_token, client=client)


def refresh_flow(request: HttpRequest) -> Flow:
    settings = settings_of()
    body = _http.json_body(request, RefreshRequest, required=False)
    token = _http.require_refresh_token(request, body.refresh_token if body else None, settings)
    pair = yield from refreshed(request, token)
    return _http.token_response(request, pair, settings, (yield from nonce_headers()))


def nonce_headers() -> Generator[Step, Any, dict[str, str]]:
    """``DPoP-Nonce`` for a successful token answer when the service asks for nonces (as ``keyturn
    serve``'s ``token_response``); no step at all when it does not."""
    if not settings_of().dpop_nonces:
        return {}
    headers: dict[str, str] = yield Core(_nonce_headers)
    return headers


async def _nonce_headers(rt: Runtime) -> dict[str, str]:
    return rt.dpop.nonce_headers()


def _authorization(request: HttpRequest) -> str | None:
    """The request's ``Authorization``; ``invalid_request`` if it is several headers, which the WSGI
    server joined with commas (``keyturn.http.joined_authorizations``)."""
    return one_joined_authorization(request.headers.get("Authorization"))


def _bearer(request: HttpRequest) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without one or with another scheme."""
    return bearer_token_if_any(_authorization(request))


async def _presented(rt: Runtime, request: HttpRequest) -> tuple[str, str | None] | None:
    """The access token of ``Authorization`` (``Bearer``, or ``DPoP`` with a proof for this request and
    token), read as ``keyturn serve`` reads it (``keyturn.server.presentation.presented``)."""

    async def proof(token: str) -> Proof | None:
        return await request_proof(rt, request, access_token=token)

    return await presented(_authorization(request), proof)


def me_flow(request: HttpRequest) -> Flow:
    auth = yield Core(lambda rt: _authenticated(rt, request))
    body = {
        "subject": auth.claims.sub,
        "claims": dict(auth.claims.claims),
        "session": session_info(auth.session, auth.session.sid),
    }
    return _http.respond(body, headers=_http.NO_STORE)


async def _authenticated(rt: Runtime, request: HttpRequest) -> Authenticated:
    return await authenticate_presented(rt, await _presented(rt, request))


def _ended(request: HttpRequest, sids: list[str]) -> HttpResponse:
    return _http.ended_response(request, sids, settings_of())


def logout_flow(request: HttpRequest) -> Flow:
    """As ``keyturn serve``: the session is named by the access token (``Authorization``: ``Bearer``, or
    ``DPoP`` with a proof for a bound one), or else by the refresh token of the body or the cookie. A body
    is parsed either way (400 ``invalid_request`` for a malformed one, which ends nothing)."""
    body = _http.json_body(request, RefreshRequest, required=False)
    refresh = None
    if not presents_token(_authorization(request)):
        refresh = _http.require_refresh_token(request, body.refresh_token if body else None, settings_of())

    async def ended(rt: Runtime) -> list[str]:
        if refresh is not None:
            return await rt.sessions.logout(refresh_token=refresh, jkt=await _proof_key(rt, request))
        access = await _presented(rt, request)
        assert access is not None  # the header is there
        return await rt.sessions.logout(access_token=access[0], jkt=access[1])

    sids = yield Core(ended)
    return _ended(request, sids)


def logout_all_flow(request: HttpRequest) -> Flow:
    body = _http.json_body(request, RefreshRequest, required=False)
    token = _managing_token(request, body.refresh_token if body else None)

    async def ended(rt: Runtime) -> list[str]:
        return await rt.sessions.logout_all(refresh_token=token, jkt=await _proof_key(rt, request))

    sids = yield Core(ended)
    return _ended(request, sids)


def _managing_token(request: HttpRequest, from_body: str | None) -> str:
    """The credential that lists and ends sessions: the refresh token (body or cookie), else the bearer
    token, which must then be a refresh token (an access token gets ``insufficient_scope``)."""
    token = _http.refresh_token(request, from_body, settings_of())
    if token is None:
        token = _bearer(request)
    if token is None:
        raise InvalidRequest("No refresh token was given.")
    return token


# -- sessions, revoke, revocations, JWKS --------------------------------------------------------


def sessions_flow(request: HttpRequest) -> Flow:
    token = _managing_token(request, None)

    async def listed(rt: Runtime) -> list[dict[str, object]]:
        claims = await rt.sessions.current_refresh(token, jkt=await _proof_key(rt, request))
        found = await rt.sessions.list_sessions(claims.sub)
        return [session_info(s, claims.sid) for s in found]

    return _http.respond((yield Core(listed)), headers=_http.NO_STORE)


def session_flow(request: HttpRequest, session_id: str) -> Flow:
    token = _managing_token(request, None)

    async def ended(rt: Runtime) -> list[str] | None:
        claims = await rt.sessions.current_refresh(token, jkt=await _proof_key(rt, request))
        try:
            return await rt.sessions.revoke_own(claims.sub, session_id)
        except LookupError:
            return None

    sids = yield Core(ended)
    if sids is None:
        return _http.error(InvalidRequest("The caller has no such session."), status=404)
    return _http.respond({"revoked_sessions": sids}, headers=_http.NO_STORE)


def revoke_flow(request: HttpRequest) -> Flow:
    token = revocation_token(request.content_type or "", _http.raw_body(request))

    async def revoked(rt: Runtime) -> None:
        await rt.sessions.revoke_token(token, jkt=await _proof_key(rt, request))

    yield Core(revoked)
    return _http.respond({}, headers=_http.NO_STORE)


class _FeedQuery(BaseModel):
    since: int = Field(0, ge=0, le=MAX_SEQ)
    limit: int = Field(FEED_BATCH, ge=1, le=FEED_BATCH)


def revocations_flow(request: HttpRequest) -> Flow:
    try:
        query = _FeedQuery.model_validate({k: request.GET[k] for k in ("since", "limit") if k in request.GET})
    except ValidationError as exc:
        raise malformed(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None

    async def page(rt: Runtime) -> object:
        now = rt.sessions.clock.now()
        return feed_body(await read_feed(rt.store, query.since, now, query.limit), now)

    return _http.respond((yield Core(page)), headers=_http.NO_STORE)


def jwks_flow(request: HttpRequest) -> Flow:
    async def keys(rt: Runtime) -> object:
        return public_jwks(await rt.store.list_keys())

    body = yield Core(keys)
    return _http.respond(body, headers={"Cache-Control": f"private, max-age={JWKS_MAX_AGE}"})


def not_found_flow(request: HttpRequest, **_: str) -> Flow:
    return _http.error(InvalidRequest("Not Found"), status=404)
    yield  # a flow with no steps
