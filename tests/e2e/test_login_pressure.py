"""Logins under pressure: a flood inside every rate limit must not make a real user's login take seconds.

argon2 runs a few hashes a second per core; 240 logins from 8 addresses (each inside its limits) queued
behind one another for 7 to 14 s. The queue is bounded: past it a login is answered at once with 503
``server_error`` and ``Retry-After``, which a client honours, and a real login either gets in within a
second or is told at once to come back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import re
import time
from pathlib import Path

import httpx
import pytest

from ._server import add_user, start_server, stop_server

# Measures response times (a deadline the feature promises): never beside another timing test (one
# pytest-xdist worker runs the "timing" group's tests one after another).
pytestmark = pytest.mark.xdist_group("timing")

ATTACKERS = [f"203.0.113.{i}" for i in range(1, 9)]
FLOOD = 240


async def _flood(url: str) -> list[int]:
    limits = httpx.Limits(max_connections=FLOOD, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(i: int) -> int:
            address = ATTACKERS[i % len(ATTACKERS)]
            response = await client.post(
                "/auth/login",
                json={"username": f"guess-{i}", "password": "not-the-password"},
                headers={"X-Forwarded-For": address},
            )
            return response.status_code

        return await asyncio.gather(*(one(i) for i in range(FLOOD)))


def run_flood(url: str) -> list[int]:
    """In a process of its own, so that its client's work does not delay the real user's client."""
    return asyncio.run(_flood(url))


async def _real_logins(
    url: str, password: str, flood: concurrent.futures.Future[list[int]]
) -> list[tuple[int, float, str | None]]:
    """The real user logs in again and again while the flood lasts: status, seconds taken, Retry-After."""
    seen: list[tuple[int, float, str | None]] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while not flood.done():
            started = time.monotonic()
            response = await client.post(
                "/auth/login",
                json={"username": "alice", "password": password},
                headers={"X-Forwarded-For": "198.51.100.7"},
            )
            seen.append(
                (response.status_code, time.monotonic() - started, response.headers.get("retry-after"))
            )
            if response.status_code == 503:
                assert response.json()["error"] == "server_error"
                assert response.json()["retryable"] is True
            await asyncio.sleep(0.3)
    return seen


async def _login_honouring_retry_after(url: str, password: str, budget: float) -> float:
    """A login that, refused with 503, waits Retry-After and tries again: the seconds until it got in."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while True:
            response = await client.post(
                "/auth/login",
                json={"username": "alice", "password": password},
                headers={"X-Forwarded-For": "198.51.100.8"},
            )
            if response.status_code == 200:
                return time.monotonic() - started
            assert response.status_code == 503, response.text
            assert time.monotonic() - started < budget, "never got in"
            await asyncio.sleep(float(response.headers["retry-after"]))


def _timed_login(url: str, password: str) -> float:
    started = time.monotonic()
    response = httpx.post(
        url + "/auth/login",
        json={"username": "alice", "password": password},
        headers={"X-Forwarded-For": "198.51.100.9"},
    )
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def test_a_real_login_stays_fast_during_a_login_flood(tmp_path: Path) -> None:
    data = tmp_path / "data"
    password = add_user(data, "alice")
    server = start_server(data, {"KEYTURN_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        # A login alone, on this machine as loaded as it is now: the yardstick for "answers at once".
        alone = min(_timed_login(server.url, password) for _ in range(3))
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            assert pool.submit(time.time).result(timeout=60)  # the process is up before the flood starts
            flooding = pool.submit(run_flood, server.url)
            time.sleep(0.2)  # the flood is under way
            real = asyncio.run(_real_logins(server.url, password, flooding))
            flood = flooding.result(timeout=300)
        patient = asyncio.run(_login_honouring_retry_after(server.url, password, budget=60))
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        stop_server(server)

    assert set(flood) <= {401, 503}, set(flood)
    assert flood.count(503) > 0, "the flood never met the bound: the test proves nothing"
    # Within 1 s, as the issue asks, on a machine where a login alone is fast. On a loaded one (shared CI),
    # within eight logins' time: during the flood its hashing holds every slot and its client takes a core,
    # so one login's hash there took up to four times ``alone`` (CI at load 9: 1.2 s against 0.3 s), and it
    # may wait ~0.1 s of others' hashing at that speed. Before the bound it took 7 to 14 s (70 to 140
    # logins' time).
    within = max(1.0, 8 * alone)
    for status, seconds, retry_after in real:
        if status == 200:
            assert seconds < within, (real, alone)
        else:
            assert status == 503, real
            assert seconds < 0.5, real
            assert retry_after == "1", real
    assert real, "the flood was over before the real user tried: the test proves nothing"
    assert patient < 30
    failed = re.search(
        r'^keyturn_login_failures_total\{reason="unknown_user"\} (\S+)$', metrics, re.MULTILINE
    )
    assert failed is not None
    assert float(failed.group(1)) == flood.count(401)
    overloaded = re.search(r"^keyturn_logins_overloaded_total (\S+)$", metrics, re.MULTILINE)
    assert overloaded is not None
    assert float(overloaded.group(1)) >= flood.count(503)
    log = server.log.read_text()
    assert log.count("login.failed") >= flood.count(401)
    assert "guess-1" not in log  # the usernames tried are logged as keyed hashes only
    assert "not-the-password" not in log
