"""``KeyturnAuth``: an ``httpx.Auth`` that sends a fresh access token with every request (sync and async).

::

    manager = TokenManager("https://auth.example.com", store=FileTokenStore("~/.myapp/tokens.json"))
    manager.login(username, password)           # once; the pair is kept in the store
    with httpx.Client(auth=KeyturnAuth(manager)) as http:
        http.get("https://api.example.com/orders")

- the token is checked (and refreshed ahead of time if due) just before each request is sent;
- a 401 ``token_expired`` for the current token: one refresh, one retry; a 401 for an older token
  (another request refreshed meanwhile): one retry with the current one; never a loop;
- a 401 ``token_revoked``/``token_invalid`` for the current token ends the session (as DESIGN section 3
  says a client does), and the response is returned;
- 429 and 5xx answers to idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE) are retried up to
  ``retries`` times with backoff; others only with ``retry_unsafe=True``. Connection errors are httpx's
  to retry (``httpx.HTTPTransport(retries=...)`` retries failed connections).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Generator

import httpx

from ._endpoints import backoff, retry_after
from ._flow import IDEMPOTENT, Verdict, judge_response
from .manager import TokenManager

__all__ = ["KeyturnAuth"]


class KeyturnAuth(httpx.Auth):
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

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.manager.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        replaced = failures = 0
        while True:
            if response.status_code == 401:
                response.read()
            verdict = judge_response(self.manager, response, token, self._may_retry(request))
            if verdict is Verdict.DONE:
                return
            if verdict is Verdict.RETRY_LATER:
                failures += 1
                if failures > self.retries:
                    return
                time.sleep(backoff(failures, self._rng, retry_after(response.headers)))
            else:
                replaced += 1
                if replaced > 1:
                    return
                if verdict is Verdict.REFRESH:
                    token = self.manager.replace_rejected(token)
                else:
                    token = self.manager.access_token()
                request.headers["Authorization"] = f"Bearer {token}"
            response = yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.manager.aaccess_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        replaced = failures = 0
        while True:
            if response.status_code == 401:
                await response.aread()
            verdict = judge_response(self.manager, response, token, self._may_retry(request))
            if verdict is Verdict.DONE:
                return
            if verdict is Verdict.RETRY_LATER:
                failures += 1
                if failures > self.retries:
                    return
                await asyncio.sleep(backoff(failures, self._rng, retry_after(response.headers)))
            else:
                replaced += 1
                if replaced > 1:
                    return
                if verdict is Verdict.REFRESH:
                    token = await self.manager.areplace_rejected(token)
                else:
                    token = await self.manager.aaccess_token()
                request.headers["Authorization"] = f"Bearer {token}"
            response = yield request

    def _may_retry(self, request: httpx.Request) -> bool:
        return self.retry_unsafe or request.method in IDEMPOTENT
