"""The DPoP proof of a Starlette request (RFC 9449): the edge of :class:`keyturn.dpop_gate.DpopGate`."""

from __future__ import annotations

from starlette.requests import Request

from ..dpop import Proof
from .runtime import Runtime

__all__ = ["request_proof"]


async def request_proof(rt: Runtime, request: Request, *, access_token: str | None = None) -> Proof | None:
    """The checked proof of ``request`` (its method and URL, without query), or ``None`` if it has none
    and the service requires none; ``invalid_dpop_proof`` or ``use_dpop_nonce`` otherwise.

    The one call for every endpoint that starts or refreshes a session (``/oauth/token`` too)."""
    return await rt.dpop.check(
        request.headers.getlist("dpop"),
        method=request.method,
        url=str(request.url),
        access_token=access_token,
    )
