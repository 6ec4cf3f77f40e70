"""Many tabs refresh the same token at once: they converge on one chain and the session lives on."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from ._http import bearer, fp, login, me, refreshed, why
from ._server import Cluster, run_cli

CALLERS = 50
BARRIER_TIMEOUT = 120


def refresh_all_at_once(urls: list[str], refresh_token: str) -> list[httpx.Response]:
    """``CALLERS`` threads, each on its own connection (round-robin over ``urls``), refresh together."""
    barrier = threading.Barrier(CALLERS, timeout=BARRIER_TIMEOUT)

    def call(index: int) -> httpx.Response:
        with httpx.Client(base_url=urls[index % len(urls)], timeout=60) as http:
            # Open the connection first, so that the refreshes leave together once every thread is ready.
            assert http.get("/healthz").status_code == 200
            barrier.wait()
            return http.post("/auth/refresh", json={"refresh_token": refresh_token})

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        futures = [pool.submit(call, i) for i in range(CALLERS)]
        return [f.result(timeout=BARRIER_TIMEOUT + 60) for f in futures]


def assert_converged_and_alive(group: Cluster) -> None:
    """Log in, refresh one token concurrently from every server, then check the session end to end."""
    urls = [s.url for s in group.servers]
    with group.server.client() as http:
        first = login(http, group.username, group.password)
        sid = first["session_id"]

        answers = refresh_all_at_once(urls, first["refresh_token"])

        problems = [why(a) for a in answers if a.status_code != 200]
        assert problems == [], f"{len(problems)} of {CALLERS} refreshes failed: {sorted(set(problems))}"
        bodies = [a.json() for a in answers]
        successors = {fp(b["refresh_token"]) for b in bodies}
        assert len(successors) == 1, f"{len(successors)} different refresh tokens came back"
        assert successors != {fp(first["refresh_token"])}
        assert {b["session_id"] for b in bodies} == {sid}
        successor = bodies[0]["refresh_token"]

        # Every answer's access token works, on every server.
        for index, body in enumerate(bodies[:: max(1, CALLERS // 10)]):
            with httpx.Client(base_url=urls[index % len(urls)], timeout=30) as other:
                assert me(other, body["access_token"]).status_code == 200

        # The chain goes on from the one successor.
        after = refreshed(http, successor)
        assert fp(after["refresh_token"]) not in successors
        assert after["session_id"] == sid
        checked = me(http, after["access_token"])
        assert checked.status_code == 200, why(checked)
        assert checked.json()["session"]["state"] == "active"

        listed = http.get("/auth/sessions", headers=bearer(after["refresh_token"]))
        assert listed.status_code == 200, why(listed)
        mine = [s for s in listed.json() if s["session_id"] == sid]
        assert len(mine) == 1
        assert mine[0]["state"] == "active"
        assert mine[0]["revoked_reason"] is None

    cli = run_cli(group.data_dir, "sessions", "list", "--user", group.username, "--all")
    assert cli.returncode == 0, cli.stderr
    rows = [line.split("\t") for line in cli.stdout.splitlines()[1:]]
    states = {row[0]: row[2] for row in rows}
    assert states.get(sid) == "active", states.get(sid)


def test_fifty_simultaneous_refreshes_converge_on_one_successor(one_server: Cluster) -> None:
    """Tabs and retries that refresh one token together must get one chain, not a reuse alarm."""
    assert_converged_and_alive(one_server)


def test_fifty_simultaneous_refreshes_across_two_processes_converge(two_servers: Cluster) -> None:
    """Two processes on one SQLite file behave as one service under a concurrent refresh storm."""
    assert_converged_and_alive(two_servers)


def test_old_token_after_concurrent_storm_still_replays_within_grace(one_server: Cluster) -> None:
    """After the storm the original token, retried within the grace period, still gets the same head."""
    with one_server.server.client() as http:
        first = login(http, one_server.username, one_server.password)
        answers = refresh_all_at_once([one_server.server.url], first["refresh_token"])
        assert all(a.status_code == 200 for a in answers), sorted({why(a) for a in answers})
        head = answers[0].json()["refresh_token"]
        again = refreshed(http, first["refresh_token"])
        assert fp(again["refresh_token"]) == fp(head)
        # The head itself rotates normally; now the original is two generations back and still replays
        # to the current head, never to a stale one.
        newer = refreshed(http, head)["refresh_token"]
        replayed = refreshed(http, first["refresh_token"])
        assert fp(replayed["refresh_token"]) == fp(newer)
