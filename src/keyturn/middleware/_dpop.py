"""DPoP-bound access tokens at a resource server (RFC 9449 section 7): the proof each request carries.

A token with ``cnf.jkt`` is accepted only as ``Authorization: DPoP <token>`` with one ``DPoP`` proof for
this very request (method and URL), signed by the bound key, carrying ``ath`` (the token's hash), and
never seen before by this process (a bounded in-process replay cache; each proof is accepted once, by
one process, for as long as its ``iat`` window lasts). A token without ``cnf`` is a bearer token and is
refused in the DPoP scheme: a client that has bound its tokens always sends them bound. Which scheme goes
with which token is :func:`keyturn.dpop.check_presentation`, the service's own rule too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..dpop import Proof, ProofRules, Scheme, check_presentation, check_proof
from ..errors import DpopError, InvalidDpopProofAtResource
from ..tokens import AccessClaims
from ..typing import Clock

__all__ = ["Presented", "ReplayCache", "ResourceProofs"]


@dataclass(frozen=True, slots=True)
class Presented:
    """How a request presented its token: the ``Authorization`` scheme, and for DPoP the request's
    method, URL and ``DPoP`` header values."""

    scheme: Scheme = "bearer"
    method: str = ""
    url: str = ""
    proofs: tuple[str, ...] = ()


BEARER = Presented()


class ReplayCache:
    """Proofs seen lately, at most ``size`` of them (the oldest forgotten first); safe between threads."""

    def __init__(self, size: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen > now:
                return False
            self._seen[key] = expires_at
            self._seen.move_to_end(key)
            while len(self._seen) > self._size or (self._seen and next(iter(self._seen.values())) <= now):
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._seen)


class ResourceProofs:
    """Checks the proof of a request whose token is bound (see the module)."""

    def __init__(
        self, clock: Clock, *, max_age: float = 60.0, leeway: float = 5.0, cache_size: int = 100_000
    ):
        """``leeway``: the ``LEEWAY`` setting; a proof's ``iat`` may be that far ahead, at least 5 s, at
        most 60 (:meth:`ProofRules.ahead`)."""
        self.clock = clock
        self.rules = ProofRules(max_age=max_age, leeway=ProofRules.ahead(leeway))
        self.replays = ReplayCache(cache_size)

    def check(self, claims: AccessClaims, token: str, presented: Presented) -> None:
        """Return if ``token`` (``claims``) may be used as ``presented``; else ``invalid_dpop_proof``."""
        now, proof = self.clock.now(), None
        if claims.jkt is not None and presented.scheme == "dpop":
            proof = self._proof(token, presented, now)
        check_presentation(claims.jkt, presented.scheme, None if proof is None else proof.jkt)
        if proof is not None and not self.replays.first_use(
            proof.replay_key(), self.rules.remember_until(proof), now
        ):
            raise InvalidDpopProofAtResource("The DPoP proof was used before.")

    def _proof(self, token: str, presented: Presented, now: float) -> Proof:
        """The one proof of ``presented``, checked against this request and ``token`` (``ath``)."""
        if len(presented.proofs) != 1:
            raise InvalidDpopProofAtResource("The request needs exactly one DPoP proof.")
        try:
            return check_proof(
                presented.proofs[0],
                method=presented.method,
                url=presented.url,
                now=now,
                rules=self.rules,
                access_token=token,
            )
        except DpopError as exc:
            raise InvalidDpopProofAtResource(exc.detail) from None
