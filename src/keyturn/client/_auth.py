"""What ``KeyturnAuth`` (httpx) and ``KeyturnRequestsAuth`` (requests) share: the manager, the caller's
retry bound, and the flow of one request."""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from typing import Self

from . import _flow
from ._flow import RetryPolicy
from ._steps import Answer, Flow, SendRequest
from .manager import TokenManager

__all__ = ["BearerFlow"]


class BearerFlow:
    """Bearer tokens from ``manager``, and the bound on retries of a request.

    ``retries``: how many times a request may be sent again after its first try for a temporary failure
    (no answer, 429, 502, 503, 504); ``deadline``: no such retry starts later than this many seconds after
    the first try; ``retry_unsafe``: every request may be repeated, whatever its method (else only GET,
    HEAD, OPTIONS, PUT, DELETE, and requests sent with :meth:`safe_to_retry`).
    """

    def __init__(
        self,
        manager: TokenManager,
        *,
        retries: int = 4,
        deadline: float = 30.0,
        retry_unsafe: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.manager = manager
        self.policy = RetryPolicy(retries, deadline)
        self.retry_unsafe = retry_unsafe
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets

    def safe_to_retry(self) -> Self:
        """The same auth for requests the caller says may be sent twice (a POST with an idempotency key,
        say): pass it per request, ``client.post(url, auth=auth.safe_to_retry())``."""
        twin = copy.copy(self)
        twin.retry_unsafe = True
        return twin

    def authorization(self, method: str, url: str, token: str) -> dict[str, str]:
        """The headers that send ``token``: ``Bearer``, or for a token bound to the client's DPoP key
        (``cnf.jkt``), ``DPoP`` with a new proof of that key for this very call (RFC 9449 section 7)."""
        prover = self.manager._session.dpop
        if prover is None or not _flow.proves(self.manager._session, token):
            return {"Authorization": f"Bearer {token}"}
        return {"Authorization": f"DPoP {token}", **prover.headers(method, url, access_token=token)}

    def _hand_over(self, url: str, token: str, status: int, headers: Mapping[str, str]) -> bool:
        """Whether the first answer to a request to ``url`` with ``token`` goes to the application as it
        is (:func:`_flow.settled`, its nonce kept: :func:`_flow.heard`); else the request's flow, made
        by :meth:`_request_flow`, judges it."""
        if not _flow.settled(status):
            return False
        _flow.heard(self.manager._session, url, token, headers)
        return True

    def _request_flow(
        self, method: str, url: str, token: str, started: float, *, replayable: bool
    ) -> Flow[Answer]:
        """The flow of a request to ``url`` first sent with ``token`` at ``started``, positioned after
        that send; ``replayable``: whether the driver can send the request again as it was (its body in
        memory, or a file it rewinds)."""
        flow = _flow.request(
            self.manager._session,
            self.policy,
            method,
            retry_safe=self.retry_unsafe,
            rng=self._rng,
            token=token,
            started=started,
            url=url,
            replayable=replayable,
        )
        first = self.manager._driver.advance(flow, None)
        assert isinstance(first, SendRequest)  # the send made before the flow
        return flow
