"""DPoP-bound access tokens (RFC 9449 section 7) at ``AccessTokenVerifier`` and the shared bearer step:
``DPoP <token>`` with a proof of the bound key for this request, carrying ``ath``, accepted once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from keyturn.client.dpop import DpopKey
from keyturn.errors import InvalidDpopProof, KeyturnError
from keyturn.middleware import AccessTokenVerifier
from keyturn.middleware._bearer import BearerCheck, BearerRequest
from keyturn.middleware._dpop import Presented, ReplayCache
from keyturn.testing import TestService, make_service, make_settings

pytestmark = pytest.mark.anyio

URL = "https://api.example.test/orders"


@dataclass
class Scene:
    ts: TestService
    verifier: AccessTokenVerifier
    key: DpopKey
    bound: str
    plain: str

    def proof(self, key: DpopKey | None = None, *, token: str | None = None, method: str = "GET") -> str:
        return (key or self.key).proof(method, URL, now=self.ts.clock.now(), access_token=token or self.bound)

    def dpop(self, proofs: list[str], token: str | None = None, method: str = "GET") -> Presented:
        return Presented("dpop", method, URL, tuple(proofs))


@pytest.fixture
async def scene() -> AsyncIterator[Scene]:
    ts = await make_service(make_settings(dpop_bind_access_tokens=True))
    key = DpopKey.generate()
    bound = await ts.service.start("alice", jkt=key.thumbprint)
    plain = await ts.service.start("bob")
    assert (bound.token_type, plain.token_type) == ("DPoP", "Bearer")
    verifier = AccessTokenVerifier.for_store(ts.store, clock=ts.clock, revocation_poll_interval=0.05)
    try:
        yield Scene(ts, verifier, key, bound.access_token, plain.access_token)
    finally:
        verifier.close()


def code(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except KeyturnError as exc:
        refused = exc
    else:
        return "ok"
    assert refused.status == 401 or not isinstance(refused, InvalidDpopProof)  # a resource server's 401
    return refused.code


async def test_a_bound_token_with_a_proof_of_its_key_is_accepted_once(scene: Scene) -> None:
    proof = scene.proof()
    claims = scene.verifier.verify(scene.bound, scene.dpop([proof]))
    assert claims.jkt == scene.key.thumbprint
    assert code(lambda: scene.verifier.verify(scene.bound, scene.dpop([proof]))) == "invalid_dpop_proof"
    assert (await scene.verifier.averify(scene.bound, scene.dpop([scene.proof()]))).sub == "alice"


@pytest.mark.parametrize(
    "case",
    ["as bearer", "no proof", "two proofs", "another key", "no ath", "another method", "another token's ath"],
)
async def test_a_bound_token_without_a_right_proof_is_refused(scene: Scene, case: str) -> None:
    thief = DpopKey.generate()
    presented = {
        "as bearer": Presented(),
        "no proof": scene.dpop([]),
        "two proofs": scene.dpop([scene.proof(), scene.proof()]),
        "another key": scene.dpop([scene.proof(thief)]),
        "no ath": scene.dpop([scene.key.proof("GET", URL, now=scene.ts.clock.now())]),
        "another method": scene.dpop([scene.proof(method="DELETE")]),
        "another token's ath": scene.dpop([scene.proof(token=scene.plain)]),
    }[case]
    assert code(lambda: scene.verifier.verify(scene.bound, presented)) == "invalid_dpop_proof"


async def test_an_unbound_token_stays_bearer(scene: Scene) -> None:
    assert scene.verifier.verify(scene.plain).sub == "bob"
    presented = scene.dpop([scene.proof(token=scene.plain)])
    assert code(lambda: scene.verifier.verify(scene.plain, presented)) == "invalid_dpop_proof"


async def test_the_bearer_step_reads_the_dpop_scheme(scene: Scene) -> None:
    check = BearerCheck(scene.verifier)
    request = BearerRequest(f"DPoP {scene.bound}", method="GET", url=URL + "?page=2", proofs=(scene.proof(),))
    claims = check.verify(request)
    assert claims is not None
    assert claims.sub == "alice"
    assert code(lambda: check.verify(BearerRequest(f"Bearer {scene.bound}"))) == "invalid_dpop_proof"
    assert code(lambda: check.verify(BearerRequest("DPoP "))) == "token_invalid"


async def test_one_proof_sent_from_many_threads_at_once_passes_once(scene: Scene) -> None:
    proof = scene.proof()
    scene.verifier.verify(scene.plain)  # started, keys loaded
    answers: list[str] = []
    lock, start = threading.Lock(), threading.Barrier(8, timeout=30)

    def call() -> None:
        start.wait()
        got = code(lambda: scene.verifier.verify(scene.bound, scene.dpop([proof])))
        with lock:
            answers.append(got)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert Counter(answers) == {"ok": 1, "invalid_dpop_proof": 7}


def test_the_replay_cache_is_bounded_and_forgets_what_expired() -> None:
    cache = ReplayCache(size=3)
    for n in range(5):
        assert cache.first_use(f"k{n}", 100.0, 0.0)
    assert len(cache) == 3
    assert not cache.first_use("k4", 100.0, 1.0)
    assert cache.first_use("k4", 200.0, 100.0)  # expired: a new window
    assert cache.first_use("k9", 300.0, 150.0)
    assert len(cache) <= 3
