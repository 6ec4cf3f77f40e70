"""Soak: many Python clients keep their sessions alive through a day of token lifetimes and faults.

    python bench/soak.py [--clients 50] [--lifetimes 96] [--access-lifetime 3] [--seed N] [--quick]

Issue 5, acceptance 2. The script starts its own ``keyturn serve`` (SQLite in a temporary data directory,
users made with the ``keyturn`` CLI, access tokens of ``--access-lifetime`` seconds, a leeway of 1 s, the
access log on) and puts the fault proxy of ``tests/e2e/_faults.py`` in front of it. Then ``--clients``
clients, each with its own ``TokenManager`` and its own session (logged in through the proxy, users
shared round-robin), call ``GET /auth/me`` through the proxy with ``httpx.AsyncClient`` and
``KeyturnAuth`` every quarter of a lifetime or so (``--tasks`` requests in flight per client), for
``--lifetimes`` lifetimes: 96 lifetimes of the default 15-minute token are 24 hours. A third of the
clients have a clock 10 minutes fast, a third 10 minutes slow. Their ``refresh_margin`` is scaled with
the lifetime (300 s of 900 s), so that ``min(refresh_margin, lifetime / 3)`` applies as it does by
default.

Faults, all through the proxy: a background of dropped connections (before and after the server saw the
request), delayed answers, 503 and 429 on every path (5.5% of requests); and bursts, evenly spaced: 503
on everything for 2 lifetimes, 429 on everything for 1, everything down for 1.5, the server restarted
once in the middle (stopped, started again on the same data directory on a new port, the proxy pointed at
it), lost refresh answers (half of ``/auth/refresh`` answered by the server, then the connection
dropped) for 2, every answer later than the client's timeout for 1 (see :func:`schedule` for the order).
Then the faults stop and each client goes on until a request of its own succeeds and its manager is
``active`` again (the drain); then each logs out.

What is counted:

- requests: each logical request of the application is one ``GET /auth/me`` that the application
  retries itself (backoff) until it gets a 2xx; its attempts are counted by what the application saw
  (2xx, 401 by code, 5xx/429 after ``KeyturnAuth``'s own retries, transport errors, timeouts,
  ``RefreshUnavailable``, ``SessionEnded``).
- refresh attempts: every ``POST /auth/refresh`` a client sent, by outcome, counted at its transport.
- **refresh cycles**: a cycle is one client's refresh of one refresh token, from its first attempt until
  a new pair is stored (``TokenManager.refreshes`` counts these). A cycle **succeeds within its retries**
  when the new pair is stored while the session is alive and without the client having given up on it
  meanwhile (``RefreshUnavailable``: no usable access token after ``max_wait`` = 60 s of retries);
  a cycle still open after the drain failed. The rate is succeeded cycles / cycles; target >= 99.9%.
- session ends (``on_session_ended``): none is expected during the run (target 0 unexpected); the
  logouts after it are counted apart.
- at the server: ``POST /auth/refresh`` lines of the access log by status, and the rotation, grace-replay
  and reuse events of its log. Each successful cycle is exactly one rotation.

The shared implementation is :func:`run_soak`; ``tests/e2e/test_soak.py`` runs a short version of it.
No token or password is printed or logged: tokens are told apart by a hash kept in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The parts: the settings and fault schedule (_soak_config.py), one client and what it counts
# (_soak_client.py), the server and its logs (_soak_server.py), the figures and verdict (_soak_report.py).
# This module runs them together; what the tests and users import is re-exported here (__all__).
from bench._soak_client import SoakClient, Tally, Window  # noqa: E402
from bench._soak_config import BACKGROUND, REFRESH, SUCCESS_TARGET, SoakConfig, schedule  # noqa: E402
from bench._soak_report import Report  # noqa: E402
from bench._soak_server import Service, own_service, read_server_logs  # noqa: E402
from tests.e2e._faults import HttpFaultProxy, http_fault_proxy  # noqa: E402

__all__ = [
    "REFRESH",
    "SUCCESS_TARGET",
    "Report",
    "SoakConfig",
    "main",
    "own_service",
    "read_server_logs",
    "run_soak",
]


# -- the run ---------------------------------------------------------------------------------------------


@dataclass
class _Run:
    clients: list[SoakClient]
    tally: Tally
    start: float
    wall_start: float
    duration: float
    faults_off: float
    phases: list[tuple[str, float, float]]
    drain: float
    downtime: float | None
    drained: int


async def _drive(
    config: SoakConfig,
    service: Service,
    proxy: HttpFaultProxy,
    users: list[tuple[str, str]],
    say: Callable[[str], None],
) -> _Run:
    tally = Tally()
    lifetime = float(config.access_lifetime)
    clients = [SoakClient(i, config, proxy.url, tally) for i in range(config.clients)]
    try:
        gate = asyncio.Semaphore(4)

        async def login(client: SoakClient) -> None:
            name, password = users[client.index % len(users)]
            async with gate:
                await client.login(name, password)

        await asyncio.gather(*(login(c) for c in clients))
        say(f"{len(clients)} clients logged in; faults on for {config.lifetimes:g} lifetimes")
        phases, final_gap = schedule(config)
        proxy.faults = BACKGROUND
        start, wall_start = time.monotonic(), time.time()
        for client in clients:
            client.started = start
        window = Window(start + config.lifetimes * lifetime, config.drain_timeout)
        pause = config.request_every * lifetime
        downtime: list[float] = []
        done: list[tuple[str, float, float]] = []

        async def restart() -> None:
            began = time.monotonic()
            await asyncio.to_thread(service.stop)
            server = await asyncio.to_thread(service.start)
            proxy.set_upstream(server.url)
            downtime.append(time.monotonic() - began)

        async def faults() -> None:
            for phase in phases:
                await asyncio.sleep(phase.gap * lifetime)
                began = time.monotonic()
                say(f"{began - start:6.1f} s  {phase.name}")
                if phase.restart:
                    await restart()
                elif phase.down:
                    await asyncio.to_thread(proxy.down)
                else:
                    assert phase.faults is not None
                    proxy.faults = phase.faults
                await asyncio.sleep(max(0.0, began + phase.length * lifetime - time.monotonic()))
                proxy.up()
                proxy.faults = BACKGROUND
                done.append((phase.name, began - start, time.monotonic() - began))
            # A restart that took long moves the end on: the last stretch of background is never cut short.
            window.stop_at = max(window.stop_at, time.monotonic() + final_gap * lifetime)
            await asyncio.sleep(max(0.0, window.stop_at - time.monotonic()))
            proxy.clear()
            proxy.up()
            say(f"{time.monotonic() - start:6.1f} s  faults off")

        runs = [c.run(window, pause) for c in clients for _ in range(config.tasks)]
        await asyncio.gather(faults(), *runs)
        stopped = time.monotonic()
        say(f"{stopped - start:6.1f} s  every request task done; draining")
        drain_until = stopped + config.drain_timeout
        drained = await asyncio.gather(*(c.drain(drain_until, pause) for c in clients))
        drain = time.monotonic() - stopped
        for client in clients:
            if client.ended is None:
                client.logging_out = True
                await client.manager.alogout()
        return _Run(
            clients=clients,
            tally=tally,
            start=start,
            wall_start=wall_start,
            duration=stopped - start,
            faults_off=window.stop_at - start,
            phases=done,
            drain=drain,
            downtime=downtime[0] if downtime else None,
            drained=sum(drained),
        )
    finally:
        for client in clients:
            await client.aclose()


def run_soak(config: SoakConfig, say: Callable[[str], None] = lambda _: None) -> Report:
    """Start a server and the proxy, run the clients through the faults, stop everything, count."""
    with own_service(config) as service:
        count = max(1, min(config.users, config.clients))
        users = [(f"soak{i}", service.add_user(f"soak{i}")) for i in range(count)]
        server = service.start()
        with http_fault_proxy(server.url, seed=config.seed) as proxy:
            run = asyncio.run(_drive(config, service, proxy, users, say))
            history = proxy.history()
            faults = proxy.counts()
        service.stop()
        side = read_server_logs(service.logs)
    return Report(
        config=config,
        phases=run.phases,
        faults_off=run.faults_off,
        start=run.start,
        wall_start=run.wall_start,
        duration=run.duration,
        drain=run.drain,
        restart_downtime=run.downtime,
        tally=run.tally,
        cycles=[cycle for c in run.clients for cycle in c.cycles.values()],
        refreshes=[c.manager.refreshes for c in run.clients],
        drained=run.drained,
        faults=faults,
        faults_by_path=Counter(f"{path} {outcome}" for _, path, outcome in history if outcome != "forwarded"),
        server=side,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, help="clients, each its own session (50; --quick: 10)")
    parser.add_argument(
        "--lifetimes", type=float, help="run length in access-token lifetimes (96; --quick: 10)"
    )
    parser.add_argument(
        "--access-lifetime", type=int, default=3, help="server's access-token lifetime, s (3)"
    )
    parser.add_argument("--tasks", type=int, default=2, help="requests in flight per client (2)")
    parser.add_argument("--seed", type=int, default=1, help="faults, jitter and pauses (1)")
    parser.add_argument("--quick", action="store_true", help="the short version the tests run")
    parser.add_argument("--quiet", action="store_true", help="only the figures")
    args = parser.parse_args()
    changes: dict[str, object] = {
        "access_lifetime": args.access_lifetime,
        "tasks": args.tasks,
        "seed": args.seed,
    }
    if args.clients is not None:
        changes["clients"] = args.clients
    if args.lifetimes is not None:
        changes["lifetimes"] = args.lifetimes
    config = SoakConfig.quick(**changes) if args.quick else SoakConfig(**changes)  # type: ignore[arg-type]

    def say(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    report = run_soak(config, say)
    print("\n".join(report.lines()))
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
