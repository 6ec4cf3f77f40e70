"""``KeyturnRequestsAuth``: ``KeyturnAuth``'s behaviour for ``requests`` (a ``requests.auth.AuthBase``).

::

    session = requests.Session()
    session.auth = auth = KeyturnRequestsAuth(manager)
    session.mount("http://", KeyturnHTTPAdapter())    # retry dropped connections too
    session.mount("https://", KeyturnHTTPAdapter())
    session.get(url)
    session.post(url, json=order, auth=auth.safe_to_retry())

The decisions are ``_flow.request``'s, as for httpx; the response hook below only sends the request
again through the adapter that sent it (a file body rewound first), and sleeps. A request whose body
cannot be sent twice (read from a generator, or a file that cannot be rewound) is sent once: its 401 is
handed back after the refresh or the nonce it called for.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.utils import rewind_body

from ._auth import BearerFlow
from ._steps import Answer, NoAnswer, Reply, SendRequest

__all__ = ["KeyturnHTTPAdapter", "KeyturnRequestsAuth"]


class KeyturnRequestsAuth(BearerFlow, AuthBase):
    """Bearer tokens from ``manager`` for requests; ``retries``, ``deadline``, ``retry_unsafe`` and
    :meth:`safe_to_retry` as ``KeyturnAuth``'s."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token, started = self.manager.access_token(), self.manager.clock.now()
        request.headers.update(self.authorization(request.method or "GET", request.url or "", token))
        request.register_hook("response", _Resend(self, token, started))  # type: ignore[no-untyped-call]
        return request


class _Resend:
    """The response hook: hands a settled answer over, else makes the request's flow, answers it, and
    sends the request again through the adapter that sent it as long as the flow asks."""

    def __init__(self, auth: KeyturnRequestsAuth, token: str, started: float) -> None:
        self.auth = auth
        self.token = token
        self.started = started

    def __call__(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        sent = response.request
        if self.auth._hand_over(sent.url or "", self.token, response.status_code, response.headers):
            return response
        flow = self.auth._request_flow(
            sent.method or "GET", sent.url or "", self.token, self.started, replayable=_replayable(sent)
        )
        driver = self.auth.manager._driver
        while True:
            step = driver.advance(flow, _answer(response))
            if isinstance(step, NoAnswer):
                raise step.error
            if not isinstance(step, SendRequest):
                return response
            retry = response.request.copy()
            retry.headers.update(self.auth.authorization(retry.method or "GET", retry.url or "", step.token))
            if not _in_memory(retry.body):
                rewind_body(retry)  # a file (the flow resends only one that can be rewound), from its start
            response.content  # noqa: B018 - read the body so the connection can be reused
            response.close()
            adapter = response.connection
            assert adapter is not None
            again: requests.Response = adapter.send(retry, **kwargs)
            again.history = [*response.history, response]
            again.request = retry
            response = again


def _in_memory(body: object) -> bool:
    return body is None or isinstance(body, bytes | bytearray | str)


def _replayable(request: requests.PreparedRequest) -> bool:
    """Whether ``request`` can be sent again as it was: its body is in memory (none, ``data=`` bytes, str
    or a form, ``json=``, ``files=``: requests encodes them ahead) or a file requests can rewind to where
    it started (it noted its position, as for a redirect: ``requests.utils.rewind_body``). A body read
    from a generator or a pipe is sent once: a second sending would go out empty, or short of its
    ``Content-Length`` and hang."""
    if _in_memory(request.body):
        return True
    position = getattr(request, "_body_position", None)  # set by requests for a file body
    return callable(getattr(request.body, "seek", None)) and isinstance(position, int)


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
