"""The soak of ``bench/soak.py``, short: sessions live through faults, a restart and skewed clocks.

The long run (50 clients, 96 lifetimes) is ``python bench/soak.py``; this runs the same code on 10 clients
over 8 lifetimes of 3 s, every burst shortened, and checks issue 5's acceptance 2 on it.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
from bench.soak import (
    REFRESH,
    SUCCESS_TARGET,
    Report,
    SoakConfig,
    own_service,
    read_server_logs,
    run_soak,
)

from keyturn.client import KeyturnAuth, SessionEnded, TokenManager

from ._faults import HttpFaultProxy, http_fault_proxy

QUICK = SoakConfig.quick(seed=5)


def describe(report: Report) -> str:
    return "\n".join(report.lines())


def test_sessions_live_through_faults_a_restart_and_skewed_clocks() -> None:
    report = run_soak(QUICK)
    summary = describe(report)
    tally = report.tally
    # A lost refresh answer retried after the grace period would show here (it used to: the client now
    # retries such a refresh inside the grace period).
    known = report.ends_from_late_retries()
    alive = QUICK.clients - len(known)

    assert not known, summary
    assert not report.unexpected_ends, summary
    # Every refresh cycle of the other sessions succeeded within its retries.
    others = [c for c in report.cycles if c.client not in {end[0] for end in known}]
    assert sum(map(report.succeeded, others)) == len(others), summary
    # Every request of the application got a 2xx in the end, each on its own session.
    assert tally.logical > 0, summary
    assert tally.logical_abandoned <= QUICK.tasks * len(known), summary
    assert tally.logical_ok == tally.logical - tally.logical_abandoned, summary
    assert tally.wrong_session == 0, summary
    assert report.drained == alive, summary
    # What the application saw besides 2xx came from the faults only: no 401 reached it.
    assert not [k for k in tally.app if k.startswith("401")], summary
    # The faults did happen, the restart too, and the client rode them out with retries.
    for fault in ("drop_after", "delay", "status_503", "status_429", "refused"):  # each has a burst
        assert report.faults[fault] > 0, (fault, summary)
    assert report.restart_downtime is not None, summary
    assert tally.degraded_episodes > 0, summary
    # The server agrees: one rotation per refresh the clients stored (and one whose answer never came per
    # known defect), reuse only there, and the logouts at the end.
    assert report.server.events["session.rotated"] == sum(report.refreshes) + len(known), summary
    assert report.server.events["session.reuse_detected"] == len(known), summary
    assert report.server.revoked_reasons == {"logout": alive}, summary
    assert tally.logouts == alive, summary

    assert report.success_rate >= SUCCESS_TARGET, summary
    assert report.passed, summary


class _Ceiling(random.Random):
    """Full jitter that always draws its ceiling: the longest waits the client's backoff allows."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_a_lost_answer_then_an_outage_keeps_the_session() -> None:
    """The refresh reaches the server (rotated) and its answer is lost; the next five attempts find the
    server unreachable; the server is back 16 s after the lost answer, well inside its 30 s grace period.
    The client's sixth retry must come, with the same refresh token, before the grace period is over."""
    config = SoakConfig.quick(clients=1)
    with own_service(config) as service:
        password = service.add_user("soak")
        server = service.start()
        with http_fault_proxy(server.url) as proxy:
            outcome, ended = asyncio.run(_lost_answer_then_outage(proxy, password, config))
        service.stop()
        side = read_server_logs(service.logs)
    assert side.events["session.rotated"] >= 1
    assert (outcome, ended, side.events["session.reuse_detected"]) == ("200", [], 0)


async def _lost_answer_then_outage(
    proxy: HttpFaultProxy, password: str, config: SoakConfig
) -> tuple[str, list[str]]:
    ended: list[str] = []
    async with httpx.AsyncClient(base_url=proxy.url, timeout=config.timeout) as token_http:
        manager = TokenManager(
            proxy.url,
            refresh_margin=config.refresh_margin,
            timeout=config.timeout,
            rng=_Ceiling(),
            on_session_ended=ended.append,
            async_http=token_http,
        )
        await manager.alogin("soak", password)
        async with httpx.AsyncClient(
            base_url=proxy.url, auth=KeyturnAuth(manager), timeout=config.timeout
        ) as api:
            assert (await api.get("/auth/me")).status_code == 200
            await asyncio.sleep(config.access_lifetime)  # the access token is spent: the next call refreshes
            proxy.inject("drop_after", 1, paths=(REFRESH,))  # rotated at the server, answer lost
            proxy.inject("drop_before", 5, paths=(REFRESH,))  # then unreachable for 0.5+1+2+4+8 s
            started = time.monotonic()
            try:
                response = await api.get("/auth/me")
            except SessionEnded:
                outcome = "SessionEnded"
            else:
                outcome = str(response.status_code)
            assert time.monotonic() - started < 60
    return outcome, ended
