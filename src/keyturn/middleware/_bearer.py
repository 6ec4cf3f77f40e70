"""The step every adapter takes, written once: a request's ``Authorization`` header -> its verified token.

Which token a request carries, if any, is decided without I/O (:meth:`BearerCheck.token`); the sync and
async shells (:meth:`BearerCheck.verify`, :meth:`BearerCheck.averify`) add only the verifier's call. A
refusal is raised as a ``KeyturnError``, which each adapter answers in its framework's shape with the one
renderer (``keyturn.http``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import AuthorizationRepeated, TokenInvalid, TokenMissing
from ..http import REALM, bearer_token, bearer_token_if_any, is_dpop
from ..tokens import AccessClaims
from ._dpop import BEARER, Presented
from ._paths import Exempt
from .verifier import AccessTokenVerifier

__all__ = ["BearerCheck", "BearerGuard", "BearerRequest", "is_dpop"]


@dataclass(frozen=True, slots=True)
class BearerRequest:
    """What :class:`BearerCheck` reads of a request: its ``Authorization`` header and path and, when it
    presents a DPoP token (:func:`is_dpop`), its method, URL without query and ``DPoP`` header values.
    ``repeated``: the request carries more than one ``Authorization`` (``authorization`` is the first),
    refused as ``invalid_request`` on a path that is not exempt (RFC 6750 section 3.1)."""

    authorization: str | None
    path: str = ""
    method: str = ""
    url: str = ""
    proofs: tuple[str, ...] = ()
    repeated: bool = False


class BearerCheck:
    """How one adapter reads bearer tokens.

    ``exempt`` paths pass without a look at their headers. A request without ``Authorization`` is
    refused (``token_invalid``) when a token is ``required``, else passes with none; more than one is
    ``invalid_request``. Another scheme (Basic, say) is refused as malformed, or, with
    ``other_schemes_pass``, treated as no token, left to another authentication. ``verifier`` may be a
    function giving it, asked only when there is a token to verify.
    """

    __slots__ = ("_averify", "_read", "_verify", "exempt", "required")

    def __init__(
        self,
        verifier: AccessTokenVerifier | Callable[[], AccessTokenVerifier],
        *,
        required: bool = True,
        exempt: Iterable[str] = (),
        other_schemes_pass: bool = False,
    ) -> None:
        self.required = required
        self.exempt = Exempt(exempt)
        self._read = bearer_token_if_any if other_schemes_pass else bearer_token
        self._verify: Callable[[str, Presented], AccessClaims]
        self._averify: Callable[[str, Presented], Awaitable[AccessClaims]]
        if isinstance(verifier, AccessTokenVerifier):
            self._verify, self._averify = verifier.verify, verifier.averify
        else:
            self._verify = lambda token, presented: verifier().verify(token, presented)
            self._averify = lambda token, presented: verifier().averify(token, presented)

    def token(self, authorization: str | None, path: str = "") -> str | None:
        """The token to verify, or None when the request passes without one; ``token_invalid`` if it
        must have one and has none, or its header is malformed."""
        found = self.presented(BearerRequest(authorization, path))
        return None if found is None else found[0]

    def presented(self, request: BearerRequest) -> tuple[str, Presented] | None:
        """:meth:`token`, and how it was presented: ``Bearer``, or ``DPoP`` with the request's method,
        URL and ``DPoP`` header values (RFC 9449 section 7)."""
        if self.exempt and self.exempt(request.path):
            return None
        if request.repeated:
            raise AuthorizationRepeated()
        authorization = request.authorization
        scheme, _, rest = (authorization or "").partition(" ")
        if scheme.lower() == "dpop":
            token = rest.strip()
            if not token:
                raise TokenInvalid("The Authorization header is not 'DPoP <token>'.")
            return token, Presented("dpop", request.method, request.url, request.proofs)
        bearer = self._read(authorization)
        if bearer is None:
            if self.required:
                raise TokenMissing()
            return None
        return bearer, BEARER

    def verify(self, request: BearerRequest) -> AccessClaims | None:
        """The request's verified token (None when it passes without one), or the ``KeyturnError``."""
        found = self.presented(request)
        return None if found is None else self._verify(*found)

    async def averify(self, request: BearerRequest) -> AccessClaims | None:
        """:meth:`verify` for event loops."""
        found = self.presented(request)
        return None if found is None else await self._averify(*found)


App = TypeVar("App")


class BearerGuard(Generic[App]):
    """What the ASGI and WSGI middleware hold: the wrapped app, its verifier, how to read bearer tokens (see
    :class:`BearerCheck` for ``required`` and ``exempt``), the realm of their refusals and the form of
    their answers (``errors``: challenging ``DPoP`` too while the verifier takes it, and in ``DPoP`` alone
    a token presented so: ``errors.presented(authorization)``)."""

    def __init__(
        self,
        app: App,
        verifier: AccessTokenVerifier,
        *,
        required: bool = True,
        exempt: Iterable[str] = (),
        realm: str = REALM,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.check = BearerCheck(verifier, required=required, exempt=exempt)
        self.realm = realm
        self.errors = verifier.errors
