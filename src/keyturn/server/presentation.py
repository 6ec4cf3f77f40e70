"""How an access token was presented (RFC 9449 section 7), read from the ``Authorization`` header without a
framework: ``keyturn serve`` (``server/dpop.py``) and the Django app (``keyturn.django.views``) both read it
here, and both leave the rule to :func:`keyturn.dpop.check_presentation`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..dpop import Proof, check_presentation
from ..errors import (
    DpopError,
    InvalidDpopProofAtResource,
    TokenMissing,
    UseDpopNonce,
    UseDpopNonceAtResource,
)
from ..http import required_bearer_token
from ..sessions import Authenticated
from .runtime import Runtime

__all__ = ["authenticate", "presented", "presents_token"]


def presents_token(authorization: str | None) -> bool:
    """Whether ``authorization`` presents a token, ``Bearer`` or ``DPoP``: what names the session on
    logout; another scheme (Basic, say), like no header, leaves it to the refresh token."""
    return authorization is not None and authorization.partition(" ")[0].lower() in ("bearer", "dpop")


async def presented(
    authorization: str | None, proof: Callable[[str], Awaitable[Proof | None]]
) -> tuple[str, str | None] | None:
    """The access token of an ``Authorization`` header and, when it comes as ``DPoP``, the key of its
    proof, checked for this request and this token (``proof(token)``, with ``ath``); ``(token, None)``
    as ``Bearer``, ``None`` without the header. Whether the token may be used so is
    :func:`keyturn.dpop.check_presentation`'s to say, once the token is decoded (:func:`authenticate`).

    ``invalid_dpop_proof`` (401) for a ``DPoP`` token without a valid proof, ``use_dpop_nonce`` (401, RFC
    9449 section 9: this is a resource, not the token endpoint's 400) for one without the service's nonce,
    ``token_invalid`` for another scheme. The one reading of the header for ``keyturn serve`` and the
    Django app."""
    scheme, _, rest = (authorization or "").partition(" ")
    if scheme.lower() != "dpop":
        return None if authorization is None else (required_bearer_token(authorization), None)
    token = rest.strip()
    try:
        checked = await proof(token)
    except UseDpopNonce as exc:
        raise UseDpopNonceAtResource(exc.nonce, exc.detail) from None
    except DpopError as exc:
        raise InvalidDpopProofAtResource(exc.detail) from None
    if checked is None:
        raise InvalidDpopProofAtResource("A DPoP token needs a DPoP proof.")
    return token, checked.jkt


async def authenticate(rt: Runtime, presented: tuple[str, str | None] | None) -> Authenticated:
    """The ``presented`` access token (:func:`presented`) verified and its session live
    (``SessionService.authenticate``): as ``Bearer``, or, for a token bound to a DPoP key (``cnf.jkt``),
    only as ``DPoP`` with a proof of that key for this request (RFC 9449 section 7);
    ``invalid_dpop_proof`` (401) otherwise."""
    if presented is None:
        raise TokenMissing()
    token, jkt = presented
    auth = await rt.sessions.authenticate(token)
    check_presentation(auth.claims.jkt, "bearer" if jkt is None else "dpop", jkt)
    return auth
