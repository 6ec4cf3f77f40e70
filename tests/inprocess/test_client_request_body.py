"""A request whose body cannot be sent twice (chunks from a generator; a file httpx streams) is sent once:
the 401 that would have had it sent again (a resource server's ``use_dpop_nonce``, a ``token_expired``)
goes to the application as it came, after the nonce is kept or the tokens refreshed, so that its next
request goes through at once. A file requests can rewind is sent again, whole.

(Regressions: httpx raised ``StreamConsumed`` on the second sending; requests sent a generator's body
again empty, a POST carried out with no body and answered 200, and a file's from its end, short of its
``Content-Length``, hanging until the read timeout.)
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from keyturn.client import KeyturnAuth

from .._threaded import serving
from ._client_live import Harness, LiveService, live_service
from ._resource import MODES, Resource, send

pytestmark = pytest.mark.anyio

DATA = b'{"order": "' + b"x" * 5000 + b'"}'
TIMEOUT = 10.0
"""A resend short of its body would wait for this long, then fail."""


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    """The token service with bound access tokens and nonces of its own."""
    with live_service(dpop_bind_access_tokens=True, dpop_nonces=True) as live:
        yield live


@pytest.mark.parametrize("mode", MODES)
async def test_a_streamed_body_asked_for_a_nonce_gets_the_401_and_the_next_request_the_nonce(
    ah: Harness, mode: str
) -> None:
    resource = Resource(ah.live)
    manager = ah.manager(dpop=True, asynchronous=mode == "httpx-async")
    ah.login(manager)
    with serving(resource.app()) as base:
        streamed = await send(
            manager, mode, base + "/orders", "POST", body="generator", data=DATA, read_timeout=TIMEOUT
        )
        later = await send(
            manager, mode, base + "/orders", "POST", body="bytes", data=DATA, read_timeout=TIMEOUT
        )
    assert (streamed.status, streamed.json, streamed.answers) == (401, {"error": "use_dpop_nonce"}, 1)
    assert (later.status, later.answers) == (200, 1)
    assert resource.bodies == [DATA, DATA]
    assert resource.nonces_sent == [None, resource.nonce()]


@pytest.mark.parametrize("mode", MODES)
async def test_a_streamed_body_refused_as_expired_gets_the_401_after_the_refresh(
    ah: Harness, mode: str
) -> None:
    resource = Resource(ah.live)
    manager = ah.manager(dpop=True, asynchronous=mode == "httpx-async")
    ah.login(manager)
    with serving(resource.app()) as base:
        assert (await send(manager, mode, base + "/orders")).status == 200  # its nonce learnt
        ah.advance(120)  # the refresh then brings a token that lives longer
        resource.expire = 1
        streamed = await send(
            manager, mode, base + "/orders", "POST", body="generator", data=DATA, read_timeout=TIMEOUT
        )
        refreshes = ah.live.refreshes()
        later = await send(
            manager, mode, base + "/orders", "POST", body="bytes", data=DATA, read_timeout=TIMEOUT
        )
    assert (streamed.status, streamed.json, streamed.answers) == (401, {"error": "token_expired"}, 1)
    assert refreshes == 1  # before the 401 went back: the next request carries the new token
    assert (later.status, later.answers) == (200, 1)
    assert resource.bodies[2:] == [DATA, DATA]
    assert resource.tokens[3] != resource.tokens[2]
    assert ah.ended == []


@pytest.mark.parametrize("mode", ["httpx-sync", "requests"])
async def test_a_file_body_is_sent_again_whole_where_the_library_rewinds_it(ah: Harness, mode: str) -> None:
    """requests rewinds a file body to where it started (as for a redirect): sent again after the nonce,
    whole. httpx streams a file as it reads it: sent once, the 401 handed back."""
    resource = Resource(ah.live)
    manager = ah.manager(dpop=True)
    ah.login(manager)
    with serving(resource.app()) as base:
        sent = await send(
            manager, mode, base + "/orders", "POST", body="file", data=DATA, read_timeout=TIMEOUT
        )
    if mode == "requests":
        assert (sent.status, sent.answers) == (200, 2)
        assert resource.bodies == [DATA, DATA]
    else:
        assert (sent.status, sent.json, sent.answers) == (401, {"error": "use_dpop_nonce"}, 1)
        assert resource.bodies == [DATA]


class OneWay(io.RawIOBase):
    """A file that reads once and cannot seek, as a pipe or a socket reads."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


async def test_an_httpx_multipart_upload_is_sent_again_when_its_files_can_seek(ah: Harness) -> None:
    """httpx rewinds each file of a ``files=`` upload before it sends it: one whose files can seek (and
    bytes parts) is sent again after the resource's nonce, whole (the same body twice), as requests sends
    ``files=`` again. One holding a pipe, which cannot be read twice, is sent once, the 401 handed back.
    (Regression: every multipart upload was taken as spent, so after a refresh its 401 came back.)"""
    resource = Resource(ah.live)
    manager = ah.manager(dpop=True)
    ah.login(manager)

    def upload(url: str, with_pipe: bool) -> tuple[int, int]:
        with tempfile.TemporaryFile() as file, OneWay(DATA) as pipe:
            file.write(DATA)
            file.seek(0)
            files = {"file": file, "raw": b"raw part", **({"pipe": pipe} if with_pipe else {})}
            with httpx.Client(auth=KeyturnAuth(manager), timeout=TIMEOUT) as http:
                answer = http.post(url, files=files)
                return answer.status_code, len(answer.history) + 1

    other = Resource(ah.live)  # another origin: its nonce unknown to the client too
    with serving(resource.app()) as base, serving(other.app()) as other_base:
        seekable = await anyio.to_thread.run_sync(upload, base + "/orders", False)
        with_pipe = await anyio.to_thread.run_sync(upload, other_base + "/orders", True)
    assert seekable == (200, 2)
    assert len(resource.bodies) == 2
    assert resource.bodies[0] == resource.bodies[1]
    assert DATA in resource.bodies[0]
    assert with_pipe == (401, 1)
    assert len(other.bodies) == 1
