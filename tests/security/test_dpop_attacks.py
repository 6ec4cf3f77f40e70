"""DPoP (RFC 9449) section 11's attacks: on the proof checker itself, and on a real ``keyturn serve``.

Replayed proofs (11.1), proofs for another URL or method, too old or from the future (11.1), proofs signed
by another key than the one they carry or than the one the session is bound to (11.2, 11.4: a stolen
token), ``alg: none``, an HMAC or a private key in ``jwk``, and a missing or wrong ``ath`` (11.7). Each
is refused with its code; none of them ends the real user's session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyturn.client.dpop import DpopKey
from keyturn.clock import FrozenClock
from keyturn.config import Settings
from keyturn.dpop import ProofRules, access_token_hash, check_proof
from keyturn.dpop_gate import DpopGate
from keyturn.errors import InvalidDpopProof
from keyturn.store import MemoryStore

from .._dpop import URL, b64, ec_jwk, make_proof
from ._services import Service, running_service

NOW = 1_800_000_000.0
RULES = ProofRules(max_age=60, leeway=5)


def refused(proof: str, **kwargs: Any) -> str:
    options: dict[str, Any] = {"method": "POST", "url": URL, "now": NOW, "rules": RULES, **kwargs}
    with pytest.raises(InvalidDpopProof) as caught:
        check_proof(proof, **options)
    return caught.value.detail


KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("attack", "proof", "options"),
    [
        ("another URL", make_proof(KEY, now=NOW, url="https://api.example.test/auth/logout"), {}),
        ("another host", make_proof(KEY, now=NOW, url="https://evil.example.test/auth/refresh"), {}),
        ("another method", make_proof(KEY, now=NOW, method="GET"), {}),
        ("method in lower case", make_proof(KEY, now=NOW, method="post"), {}),
        ("too old", make_proof(KEY, now=NOW - 61), {}),
        ("from the future", make_proof(KEY, now=NOW + 6), {}),
        ("iat as text", make_proof(KEY, now=NOW, claims={"iat": str(int(NOW))}), {}),
        ("no jti", make_proof(KEY, now=NOW, drop=("jti",)), {}),
        ("no iat", make_proof(KEY, now=NOW, drop=("iat",)), {}),
        ("no typ", make_proof(KEY, now=NOW, drop=("typ",)), {}),
        ("typ JWT", make_proof(KEY, now=NOW, header={"typ": "JWT"}), {}),
        ("alg none", make_proof(KEY, now=NOW, header={"alg": "none"}), {}),
        ("alg HS256", make_proof(KEY, now=NOW, header={"alg": "HS256"}), {}),
        ("alg RS256", make_proof(KEY, now=NOW, header={"alg": "RS256"}), {}),
        ("private key in jwk", make_proof(KEY, now=NOW, header={"jwk": ec_jwk(KEY, private=True)}), {}),
        ("symmetric jwk", make_proof(KEY, now=NOW, header={"jwk": {"kty": "oct", "k": b64(b"k" * 32)}}), {}),
        ("no jwk", make_proof(KEY, now=NOW, drop=("jwk",)), {}),
        ("jwk by reference", make_proof(KEY, now=NOW, drop=("jwk",), header={"kid": "k1"}), {}),
        ("critical header", make_proof(KEY, now=NOW, header={"crit": ["exp"]}), {}),
        (
            "signed by another key than its jwk",
            make_proof(KEY, now=NOW, sign_with=ec.generate_private_key(ec.SECP256R1())),
            {},
        ),
        ("missing ath", make_proof(KEY, now=NOW), {"access_token": "a.b.c"}),
        (
            "ath of another token",
            make_proof(KEY, now=NOW, claims={"ath": access_token_hash("x.y.z")}),
            {"access_token": "a.b.c"},
        ),
        ("not a JWS", "not-a-proof", {}),
        ("a JWE", "a.b.c.d.e", {}),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_the_checker_refuses(attack: str, proof: str, options: dict[str, Any]) -> None:
    assert refused(proof, **options)


@pytest.mark.anyio
async def test_a_replayed_proof_is_refused_by_the_gate() -> None:
    """The gate remembers each proof's jti in the store: the second use of one proof is refused."""
    store = MemoryStore()
    gate = DpopGate(
        Settings(secret_key="s" * 32, store_url="memory://"), store, FrozenClock(NOW), key=b"k" * 32
    )
    proof = make_proof(KEY, now=NOW)
    assert await gate.check([proof], method="POST", url=URL) is not None
    with pytest.raises(InvalidDpopProof, match="used before"):
        await gate.check([proof], method="POST", url=URL)
    with pytest.raises(InvalidDpopProof, match="more than one"):
        await gate.check([make_proof(KEY, now=NOW), make_proof(KEY, now=NOW)], method="POST", url=URL)


# -- on a real keyturn serve ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service("sqlite", tmp_path_factory.mktemp("dpop-attacks")) as running:
        yield running


def call(service: Service, path: str, body: dict[str, str], proof: str | None) -> httpx.Response:
    headers = {} if proof is None else {"DPoP": proof}
    return httpx.post(service.url + path, json=body, headers=headers, timeout=30)


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("error")


def test_attacks_on_a_bound_session_are_refused_and_it_keeps_refreshing(service: Service) -> None:
    key = DpopKey.generate()
    url = service.url + "/auth/refresh"

    def proof(method: str = "POST", at: str = url, age: float = 0, by: DpopKey = key) -> str:
        return by.proof(method, at, now=time.time() - age)

    login = call(
        service,
        "/auth/login",
        service.credentials(),
        key.proof("POST", service.url + "/auth/login", now=time.time()),
    )
    assert login.status_code == 200
    token = login.json()["refresh_token"]
    used = proof()
    first = call(service, "/auth/refresh", {"refresh_token": token}, used)
    assert first.status_code == 200
    token = first.json()["refresh_token"]
    body = {"refresh_token": token}
    attacks = {
        "replayed proof": (call(service, "/auth/refresh", body, used), (400, "invalid_dpop_proof")),
        "proof for another URL": (
            call(service, "/auth/refresh", body, proof(at=service.url + "/auth/login")),
            (400, "invalid_dpop_proof"),
        ),
        "proof for another method": (
            call(service, "/auth/refresh", body, proof("GET")),
            (400, "invalid_dpop_proof"),
        ),
        "proof too old": (call(service, "/auth/refresh", body, proof(age=300)), (400, "invalid_dpop_proof")),
        "no proof": (call(service, "/auth/refresh", body, None), (401, "refresh_token_bound")),
        "another key's proof": (
            call(service, "/auth/refresh", body, proof(by=DpopKey.generate())),
            (401, "refresh_token_bound"),
        ),
    }
    for attack, (answer, expected) in attacks.items():
        assert error(answer) == expected, attack
    again = call(service, "/auth/refresh", body, proof())
    assert again.status_code == 200, "the real session goes on"
