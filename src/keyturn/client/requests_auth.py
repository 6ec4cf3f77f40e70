"""``KeyturnRequestsAuth``: ``KeyturnAuth``'s behaviour for ``requests`` (a ``requests.auth.AuthBase``).

::

    session = requests.Session()
    session.auth = auth = KeyturnRequestsAuth(manager)
    session.mount("http://", KeyturnHTTPAdapter())    # retry dropped connections too
    session.mount("https://", KeyturnHTTPAdapter())
    session.get(url)
    session.post(url, json=order, auth=auth.safe_to_retry())

The decisions are ``_flow.request``'s, as for httpx; the response hook below only sends the request
again through the adapter that sent it, and sleeps.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from ._auth import BearerFlow
from ._drive import Driver
from ._steps import Answer, Flow, NoAnswer, Reply, SendRequest

__all__ = ["KeyturnHTTPAdapter", "KeyturnRequestsAuth"]


class KeyturnRequestsAuth(BearerFlow, AuthBase):
    """Bearer tokens from ``manager`` for requests; ``retries``, ``deadline``, ``retry_unsafe`` and
    :meth:`safe_to_retry` as ``KeyturnAuth``'s."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        flow = self._request_flow(request.method or "GET")
        step = self.manager._driver.advance(flow, None)
        if not isinstance(step, SendRequest):  # a flow always sends its request once
            raise RuntimeError("the request flow ended before sending the request")
        request.headers["Authorization"] = f"Bearer {step.token}"
        request.register_hook("response", _Resend(self.manager._driver, flow))  # type: ignore[no-untyped-call]
        return request


class _Resend:
    """The response hook: answers the flow, and sends the request again as long as it asks."""

    def __init__(self, driver: Driver, flow: Flow[Answer]) -> None:
        self.driver = driver
        self.flow = flow

    def __call__(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        while True:
            step = self.driver.advance(self.flow, _answer(response))
            if isinstance(step, NoAnswer):
                raise step.error
            if not isinstance(step, SendRequest):
                return response
            retry = response.request.copy()
            retry.headers["Authorization"] = f"Bearer {step.token}"
            response.content  # noqa: B018 - read the body so the connection can be reused
            response.close()
            adapter = response.connection
            assert adapter is not None
            again: requests.Response = adapter.send(retry, **kwargs)
            again.history = [*response.history, response]
            again.request = retry
            response = again


def _answer(response: requests.Response) -> Answer:
    if isinstance(response, _NoAnswer):
        return NoAnswer(response.error)
    content = response.content if response.status_code == 401 else b""
    return Reply(response.status_code, response.headers, content or b"")


class _NoAnswer(requests.Response):
    """What :class:`KeyturnHTTPAdapter` gives the hook for a request that got no answer."""

    def __init__(self, request: requests.PreparedRequest, adapter: HTTPAdapter, error: BaseException) -> None:
        super().__init__()
        self.status_code = 0
        self.reason = "no answer"
        self.request = request
        self.url = request.url or ""
        self.connection = adapter
        self.error = error
        self._content = b""
        self._content_consumed = True  # nothing to read, no connection to release


class KeyturnHTTPAdapter(HTTPAdapter):
    """requests' adapter, handing a failed or dropped connection of a ``KeyturnRequestsAuth`` request to
    its flow as an answer, so that it can be retried; other requests see requests' errors as before."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().send(request, *args, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if not any(isinstance(hook, _Resend) for hook in request.hooks.get("response", ())):
                raise
            return _NoAnswer(request, self, exc)
