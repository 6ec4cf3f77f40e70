"""The server starts, logs in and refreshes: the floor every other e2e test stands on."""

from __future__ import annotations

from .conftest import Cluster


def test_login_then_refresh_rotates(one_server: Cluster) -> None:
    """A login's refresh token rotates once into a new one that works."""
    with one_server.servers[0].client() as http:
        login = http.post("/auth/login", json={"username": "alice", "password": one_server.password})
        assert login.status_code == 200, login.text
        first = login.json()
        refreshed = http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["refresh_token"] != first["refresh_token"]
        assert refreshed.json()["session_id"] == first["session_id"]
