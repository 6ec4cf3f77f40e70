"""`GET /auth/revocations?since=N`: what validators poll to honour logouts and revocations."""

from __future__ import annotations

import pytest

from ._http import assert_error, bearer, jwt_parts, login
from .conftest import Cluster


def test_feed_lists_revoked_sessions_and_tokens_in_order_and_pages(one_server: Cluster) -> None:
    """A validator that polls with the last sequence number it saw gets each revocation exactly once."""
    with one_server.server.client() as http:
        start = http.get("/auth/revocations").json()
        assert start["revocations"] == []
        assert start["last_seq"] == 0
        assert start["more"] is False

        first = login(http, one_server.username, one_server.password)
        second = login(http, one_server.username, one_server.password)
        third = login(http, one_server.username, one_server.password)
        assert http.post("/auth/logout", headers=bearer(first["access_token"])).status_code == 200
        assert http.post("/auth/revoke", json={"token": second["access_token"]}).status_code == 200
        assert http.post("/auth/logout", headers=bearer(third["access_token"])).status_code == 200

        feed = http.get("/auth/revocations", params={"since": 0})
        assert feed.status_code == 200
        assert feed.headers["cache-control"] == "no-store"
        entries = feed.json()["revocations"]
        assert [(e["kind"], e["value"]) for e in entries] == [
            ("sid", first["session_id"]),
            ("jti", jwt_parts(second["access_token"])[1]["jti"]),
            ("sid", third["session_id"]),
        ]
        seqs = [e["seq"] for e in entries]
        assert seqs == sorted(seqs)
        assert all(e["expires_at"] > feed.json()["server_time"] for e in entries)

        page = http.get("/auth/revocations", params={"since": 0, "limit": 2}).json()
        assert [e["seq"] for e in page["revocations"]] == seqs[:2]
        assert page["more"] is True
        rest = http.get("/auth/revocations", params={"since": page["last_seq"], "limit": 2}).json()
        assert [e["seq"] for e in rest["revocations"]] == seqs[2:]
        assert rest["more"] is False
        done = http.get("/auth/revocations", params={"since": rest["last_seq"]}).json()
        assert done["revocations"] == []
        assert done["last_seq"] == rest["last_seq"]

        # A cursor past every number the store has given: the store was reset since the validator read
        # it (the same answer as to a validator of the store it replaced). The feed starts again.
        reset = http.get("/auth/revocations", params={"since": seqs[-1] + 1000}).json()
        assert [e["seq"] for e in reset["revocations"]] == seqs
        assert (reset["last_seq"], reset["more"]) == (seqs[-1], False)


@pytest.mark.parametrize(
    "query", ["since=-1", "since=abc", "since=100000000000000000000", "limit=0", "limit=1001"]
)
def test_feed_refuses_bad_parameters(one_server: Cluster, query: str) -> None:
    """A malformed poll is the caller's bug: 400 invalid_request, never a 500."""
    with one_server.server.client() as http:
        assert_error(http.get(f"/auth/revocations?{query}"), 400, "invalid_request")
