"""Access-token validation on a resource server: ``AccessTokenVerifier`` against the bare signature check.

    python bench/verify.py                       # ES256, the default
    python bench/verify.py --alg EdDSA --tokens 20000 --rounds 5
    python bench/verify.py --dpop                # and DPoP-bound tokens, each call with a new proof
    python bench/verify.py --dpop --json         # the figures as JSON (bench/compare/run.py keeps them)

In one run, alternating in rounds, it measures per second:

- raw: ``cryptography`` verifying the signature of one token (the signature already decoded to DER):
  the one cost no validator can avoid;
- first-seen: ``AccessTokenVerifier.verify`` on tokens it has never seen (parse, header checks, signature,
  claims, cache insertion, revocation check);
- repeated: ``verify`` on a token seen before: the validated-token cache, with expiry and revocation
  still checked on every hit (the revocation set holds ``--revoked`` entries).

Targets (issue 4): first-seen at least 60% of raw, repeated at least 10 times raw.

With ``--dpop`` (RFC 9449, issue 17) two more, in the same rounds: ``dpop first-seen`` and ``dpop repeated``,
tokens bound to a key (``cnf.jkt``) presented as ``DPoP`` with a proof made beforehand for each call (the
client's signing is not the server's cost): the proof's parse, ES256 signature, claims, ``ath`` and the
replay cache come on top of the token's own check, on every call, cached token or not.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import statistics
import time
from collections.abc import Callable, Iterator

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from keyturn.client.dpop import DpopKey
from keyturn.clock import SystemClock
from keyturn.middleware import AccessTokenVerifier, StoreKeys, StoreRevocations
from keyturn.middleware._dpop import Presented
from keyturn.testing import make_service
from keyturn.typing import AccessAlgorithm


def raw_verifier(token: str, public_key: object, alg: str) -> Callable[[], None]:
    """The bare signature check of ``token`` with ``cryptography``, everything else done beforehand."""
    header_payload, _, signature = token.rpartition(".")
    message = header_payload.encode()
    sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    if alg == "ES256":
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        algorithm = ec.ECDSA(hashes.SHA256())
        return lambda: public_key.verify(der, message, algorithm)
    if alg == "EdDSA":
        assert isinstance(public_key, ed25519.Ed25519PublicKey)
        return lambda: public_key.verify(sig, message)
    assert isinstance(public_key, rsa.RSAPublicKey)
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    return lambda: public_key.verify(sig, message, pkcs1, sha256)


def rate(work: Callable[[int], None], count: int) -> float:
    started = time.perf_counter()
    work(count)
    return count / (time.perf_counter() - started)


URL = "https://api.example.test/orders"


def presented(key: DpopKey, token: str) -> Presented:
    """A call with ``token`` as ``DPoP``, with a new proof of ``key`` for it."""
    proof = key.proof("GET", URL, now=time.time(), access_token=token)
    return Presented("dpop", "GET", URL, (proof,))


async def prepare(
    alg: AccessAlgorithm, tokens: int, revoked: int, key: DpopKey | None = None
) -> tuple[AccessTokenVerifier, list[str], object, list[str]]:
    ts = await make_service(algorithm=alg, clock=SystemClock())
    now = ts.clock.now()
    for _ in range(revoked):  # a realistic revocation set: lookups are not against an empty one
        await ts.store.revoke_access_token(secrets.token_urlsafe(16), now + 900)
    minted = [ts.tokens.access_token() for _ in range(tokens)]
    bound = []
    if key is not None:
        cnf = {"cnf": {"jkt": key.thumbprint}}
        bound = [ts.tokens.access_token(ts.tokens.access_claims(**cnf)) for _ in range(tokens)]
    verifier = AccessTokenVerifier(
        StoreKeys(ts.store),
        StoreRevocations(ts.store, ts.clock.now),
        issuer=ts.settings.issuer,
        audience=ts.settings.audience,
    )
    return verifier, minted, ts.tokens.keys.active_access.public_key, bound


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alg", choices=["ES256", "EdDSA", "RS256"], default="ES256")
    parser.add_argument("--tokens", type=int, default=10_000, help="first-seen tokens per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--revoked", type=int, default=10_000, help="entries in the revocation set")
    parser.add_argument("--dpop", action="store_true", help="DPoP-bound tokens too (RFC 9449)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()

    key = DpopKey.generate() if args.dpop else None
    total = args.tokens * args.rounds
    verifier, minted, public_key, bound = asyncio.run(prepare(args.alg, total, args.revoked, key))
    with verifier:
        deadline = time.monotonic() + 10
        while verifier.status()["revocations"] != args.revoked and time.monotonic() < deadline:
            time.sleep(0.05)
        status = verifier.status()
        assert status["revocations"] == args.revoked, status
        raw = raw_verifier(minted[0], public_key, args.alg)
        seen = minted[0]
        verifier.verify(seen)
        verify = verifier.verify

        def raw_work(n: int) -> None:
            for _ in range(n):
                raw()

        batches = iter([minted[1 + i * args.tokens : 1 + (i + 1) * args.tokens] for i in range(args.rounds)])

        def first_seen_work(n: int) -> None:
            for token in next(batches)[:n]:
                verify(token)

        def repeated_work(n: int) -> None:
            for _ in range(n):
                verify(seen)

        results: dict[str, list[float]] = {"raw": [], "first-seen": [], "repeated": []}
        calls: list[tuple[str, Presented]] = []
        if key is not None:
            results |= {"dpop first-seen": [], "dpop repeated": []}
            calls = [(token, presented(key, token)) for token in bound[1:]]
            verifier.verify(bound[0], presented(key, bound[0]))
            again = [(bound[0], presented(key, bound[0])) for _ in range(total)]
        bound_batches = iter([calls[i * args.tokens : (i + 1) * args.tokens] for i in range(args.rounds)])
        again_batches = (
            iter([again[i * args.tokens : (i + 1) * args.tokens] for i in range(args.rounds)])
            if key
            else iter(())
        )

        def bound_work(batches: Iterator[list[tuple[str, Presented]]]) -> Callable[[int], None]:
            def work(n: int) -> None:
                for token, shown in next(batches)[:n]:
                    verify(token, shown)

            return work

        for _ in range(args.rounds):
            n = args.tokens - 1
            results["raw"].append(rate(raw_work, n))
            results["first-seen"].append(rate(first_seen_work, n))
            results["repeated"].append(rate(repeated_work, n * 10))
            if key is not None:
                results["dpop first-seen"].append(rate(bound_work(bound_batches), n))
                results["dpop repeated"].append(rate(bound_work(again_batches), n))

    medians = {name: statistics.median(values) for name, values in results.items()}
    raw_rate = medians["raw"]
    if args.json:
        settings = {"alg": args.alg, "tokens": args.tokens, "rounds": args.rounds, "revoked": args.revoked}
        print(json.dumps({"settings": settings, "per_second": medians, "rounds_per_second": results}))
        return
    print(
        f"access-token validation, {args.alg}, median of {args.rounds} rounds, "
        f"{args.revoked} revocations held"
    )
    print(f"{'':>15} {'per second':>12} {'us each':>9} {'vs raw':>8}")
    for name, value in medians.items():
        print(f"{name:>15} {value:>12,.0f} {1e6 / value:>9.1f} {value / raw_rate:>7.2f}x")
    first, repeated = medians["first-seen"] / raw_rate, medians["repeated"] / raw_rate
    print(
        f"targets: first-seen >= 0.60x raw: {'met' if first >= 0.6 else 'MISSED'} ({first:.2f}x); "
        f"repeated >= 10x raw: {'met' if repeated >= 10 else 'MISSED'} ({repeated:.1f}x)"
    )


if __name__ == "__main__":
    main()
