"""The step every adapter takes, written once: a request's ``Authorization`` header -> its verified token.

Which token a request carries, if any, is decided without I/O (:meth:`BearerCheck.token`); the sync and
async shells (:meth:`BearerCheck.verify`, :meth:`BearerCheck.averify`) add only the verifier's call. A
refusal is raised as a ``KeyturnError``, which each adapter answers in its framework's shape with the one
renderer (``keyturn.http``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from ..errors import TokenInvalid
from ..http import NO_TOKEN, REALM, bearer_token, bearer_token_if_any
from ..tokens import AccessClaims
from ._paths import Exempt
from .verifier import AccessTokenVerifier

__all__ = ["NO_TOKEN", "BearerCheck", "BearerGuard"]


class BearerCheck:
    """How one adapter reads bearer tokens.

    ``exempt`` paths pass without a look at their headers. A request without ``Authorization`` is
    refused (``token_invalid``) when a token is ``required``, else passes with none. Another scheme
    (Basic, say) is refused as malformed, or, with ``other_schemes_pass``, treated as no token, left to
    another authentication. ``verifier`` may be a function giving it, asked only when there is a token
    to verify.
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
        if isinstance(verifier, AccessTokenVerifier):
            self._verify, self._averify = verifier.verify, verifier.averify
        else:
            self._verify = lambda token: verifier().verify(token)
            self._averify = lambda token: verifier().averify(token)

    def token(self, authorization: str | None, path: str = "") -> str | None:
        """The token to verify, or None when the request passes without one; ``token_invalid`` if it
        must have one and has none, or its header is malformed."""
        if self.exempt and self.exempt(path):
            return None
        token = self._read(authorization)
        if token is None and self.required:
            raise TokenInvalid(NO_TOKEN)
        return token

    def verify(self, authorization: str | None, path: str = "") -> AccessClaims | None:
        """The request's verified token (None when it passes without one), or the ``KeyturnError``."""
        token = self.token(authorization, path)
        return None if token is None else self._verify(token)

    async def averify(self, authorization: str | None, path: str = "") -> AccessClaims | None:
        """:meth:`verify` for event loops."""
        token = self.token(authorization, path)
        return None if token is None else await self._averify(token)


App = TypeVar("App")


class BearerGuard(Generic[App]):
    """What the ASGI and WSGI middleware hold: the wrapped app, its verifier, how to read bearer tokens (see
    :class:`BearerCheck` for ``required`` and ``exempt``) and the realm of their refusals."""

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
