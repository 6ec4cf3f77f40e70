"""Acceptance 2 (its server half): unchanged frontends stop forking sessions.

The same refresh token sent 20 times at once through SimpleJWT's ``/api/token/refresh/`` gives 20 answers 200
with one and the same refresh token (one chain), whether it is a Keyturn token or a SimpleJWT token from
before the switch, across processes (gunicorn's two sync workers; uvicorn's two workers).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ._project import ExampleProject

COPIES = 20


def race(url: str, refresh: str) -> list[httpx.Response]:
    """``COPIES`` refreshes of ``refresh``, each on its own connection, released together."""
    start = threading.Barrier(COPIES)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=60) as client:
            client.get("/api/status/")  # connected before the race
            start.wait()
            return client.post("/api/token/refresh/", json={"refresh": refresh})

    with ThreadPoolExecutor(COPIES) as pool:
        return list(pool.map(one, range(COPIES)))


def assert_one_chain(answers: list[httpx.Response]) -> str:
    assert [a.status_code for a in answers] == [200] * COPIES, [
        a.text for a in answers if a.status_code != 200
    ]
    refreshed = {a.json()["refresh"] for a in answers}
    assert len(refreshed) == 1
    return refreshed.pop()


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_twenty_copies_of_one_refresh_token_get_one_answer(project: ExampleProject, server: str) -> None:
    project.manage("migrate", tokens="simplejwt")
    first, second = project.add_users(2)
    with project.serve("simplejwt") as url, httpx.Client(base_url=url, timeout=30) as c:
        old = c.post("/api/token/", json=second.credentials()).json()
    project.manage("migrate")
    with project.serve("keyturn", server=server) as url, httpx.Client(base_url=url, timeout=30) as c:
        pair = c.post("/api/token/", json=first.credentials()).json()
        successor = assert_one_chain(race(url, pair["refresh"]))
        assert c.post("/api/token/refresh/", json={"refresh": successor}).status_code == 200

        exchanged = assert_one_chain(race(url, old["refresh"]))  # a SimpleJWT token from before the switch
        access = c.post("/api/token/refresh/", json={"refresh": exchanged}).json()["access"]
        me = c.get("/api/me/", headers={"Authorization": f"Bearer {access}"})
        assert me.json()["username"] == second.username
