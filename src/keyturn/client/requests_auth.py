"""``KeyturnRequestsAuth``: ``KeyturnAuth``'s behaviour for ``requests`` (a ``requests.auth.AuthBase``).

::

    session = requests.Session()
    session.auth = KeyturnRequestsAuth(manager)
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.auth import AuthBase

from ._endpoints import backoff, retry_after
from ._flow import IDEMPOTENT, Verdict, judge_response
from .manager import TokenManager

__all__ = ["KeyturnRequestsAuth"]


class KeyturnRequestsAuth(AuthBase):
    def __init__(
        self,
        manager: TokenManager,
        *,
        retries: int = 2,
        retry_unsafe: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.manager = manager
        self.retries = retries
        self.retry_unsafe = retry_unsafe
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.manager.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        request.register_hook("response", self._make_hook(token))  # type: ignore[no-untyped-call]
        return request

    def _make_hook(self, first_token: str) -> Any:
        attempt = _Attempt(first_token)

        def hook(response: requests.Response, **kwargs: Any) -> requests.Response:
            request = response.request
            may_retry = self.retry_unsafe or (request.method or "").upper() in IDEMPOTENT
            verdict = judge_response(self.manager, response, attempt.token, may_retry)
            if verdict is Verdict.DONE:
                return response
            if verdict is Verdict.RETRY_LATER:
                attempt.failures += 1
                if attempt.failures > self.retries:
                    return response
                time.sleep(backoff(attempt.failures, self._rng, retry_after(response.headers)))
            else:
                attempt.replaced += 1
                if attempt.replaced > 1:
                    return response
                if verdict is Verdict.REFRESH:
                    attempt.token = self.manager.replace_rejected(attempt.token)
                else:
                    attempt.token = self.manager.access_token()
            retry = request.copy()
            retry.headers["Authorization"] = f"Bearer {attempt.token}"
            response.content  # noqa: B018 - read the body so the connection can be reused
            response.close()
            assert response.connection is not None
            again: requests.Response = response.connection.send(retry, **kwargs)
            again.history.append(response)
            again.request = retry
            return hook(again, **kwargs)

        return hook


@dataclass
class _Attempt:
    """One request's retries so far, and the token it last carried."""

    token: str
    replaced: int = 0
    failures: int = 0
