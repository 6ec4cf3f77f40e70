"""The DPoP proof of a Starlette request (RFC 9449): the edge of :class:`keyturn.dpop_gate.DpopGate`."""

from __future__ import annotations

from starlette.requests import Request

from ..dpop import Proof
from ..http import one_authorization
from ..sessions import Authenticated
from ..typing import ClientDpop, RefreshLimits
from .presentation import authenticate, presented
from .runtime import Runtime

__all__ = ["authenticated", "presented_access_token", "proof_key", "refresh_key", "request_proof"]


async def request_proof(
    rt: Runtime, request: Request, *, access_token: str | None = None, client: ClientDpop = "optional"
) -> Proof | None:
    """The checked proof of ``request`` (its method and URL, without query), or ``None`` if it has none
    and neither the service nor ``client`` (the DPoP policy of the client a session starts for) requires
    one; ``invalid_dpop_proof`` or ``use_dpop_nonce`` otherwise.

    The one call for every endpoint that starts or refreshes a session (``/oauth/token`` too)."""
    proofs = request.headers.getlist("dpop")
    # The URL only for a proof to check: building it cost about 2.5% of a refresh's CPU (py-spy).
    url = str(request.url) if proofs else ""
    return await rt.dpop.check(
        proofs, method=request.method, url=url, access_token=access_token, client=client
    )


async def refresh_key(
    rt: Runtime, request: Request, limits: RefreshLimits, now: float, *, client: ClientDpop = "optional"
) -> str | None:
    """The key thumbprint of the checked proof of a call that refreshes a session (``DpopGate.refresh_key``:
    a bad proof takes from the address's bucket), ``None`` without one. A call without a proof where none
    is required (by the service, or by ``client``: the policy of the client that authenticated at
    ``/oauth/token``, ``keyturn.dpop_gate.token_request_policy``) is answered from its headers alone: a
    refresh without DPoP pays for no more."""
    if rt.dpop.nothing_to_check(request.headers.getlist("dpop"), client):
        return None
    return await rt.dpop.refresh_key(request_proof(rt, request, client=client), limits, now)


async def proof_key(rt: Runtime, request: Request) -> str | None:
    """The key thumbprint of ``request``'s checked proof, ``None`` without one: what a call that ends or
    lists sessions by a refresh token shows of the key a bound session needs."""
    proof = await request_proof(rt, request)
    return None if proof is None else proof.jkt


async def presented_access_token(rt: Runtime, request: Request) -> tuple[str, str | None] | None:
    """The access token of ``request``'s ``Authorization`` header and the key of its proof
    (``keyturn.server.presentation.presented``)."""

    async def proof(token: str) -> Proof | None:
        return await request_proof(rt, request, access_token=token)

    return await presented(one_authorization(request.headers.getlist("authorization")), proof)


async def authenticated(rt: Runtime, request: Request) -> Authenticated:
    """The caller's access token, verified and its session live, Bearer or DPoP as it must be
    (``keyturn.server.presentation.authenticate``)."""
    return await authenticate(rt, await presented_access_token(rt, request))
