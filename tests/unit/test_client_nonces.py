"""The nonces a client's ``Prover`` keeps: the latest per origin, for at most ``NONCE_ORIGINS`` resource
servers (the most recently used) and the token service besides, so that a client that talks to many
servers does not hold a nonce for each forever. (Regression: the map grew without bound.)"""

from __future__ import annotations

import base64
import json

from keyturn.client.dpop import NONCE_ORIGINS, DpopKey, Prover

SERVICE = "https://auth.example.com"


def _nonce(prover: Prover, url: str) -> object:
    """The nonce the proof of a call to ``url`` carries."""
    proof = prover.headers("GET", url)["DPoP"]
    return json.loads(base64.urlsafe_b64decode(proof.split(".")[1] + "==")).get("nonce")


def test_the_nonces_of_the_least_recently_used_resource_servers_are_dropped() -> None:
    prover = Prover(DpopKey.generate(), SERVICE, lambda: 1_800_000_000.0)
    prover.saw("/auth/refresh", "service-nonce")
    servers = [f"https://api{n}.example.com/orders" for n in range(NONCE_ORIGINS + 1)]
    prover.saw(servers[0], "n0")
    prover.saw(servers[1], "n1")
    assert _nonce(prover, servers[0]) == "n0"  # used: now more recent than servers[1]
    for n, url in enumerate(servers[2:], start=2):
        prover.saw(url, f"n{n}")

    assert len(prover._nonces) == NONCE_ORIGINS + 1
    assert _nonce(prover, servers[1]) is None  # the least recently used: dropped
    assert _nonce(prover, servers[0]) == "n0"
    assert _nonce(prover, servers[-1]) == f"n{NONCE_ORIGINS}"
    assert _nonce(prover, "/auth/refresh") == "service-nonce"  # the token service's is always kept
