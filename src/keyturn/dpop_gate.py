"""The service's DPoP rules (``KEYTURN_DPOP*``) and the one check of a request's proof, with its I/O.

:meth:`DpopGate.check` is what every endpoint that starts or refreshes a session calls (``/auth/login``,
``/auth/refresh``, an application's own login through ``Keyturn.start``, and ``/oauth/token`` later): the
pure check of :func:`keyturn.dpop.check_proof`, then the proof's ``jti`` remembered in the store, so that
of every process of the service exactly one accepts it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import Settings
from .dpop import Nonces, Proof, ProofRules, check_proof
from .errors import InvalidDpopProof, KeyturnError
from .typing import ClientDpop, ClientRecord, Clock, DpopMode, DpopStore, RefreshLimits

__all__ = ["DpopGate", "nonce_key", "proof_required", "registrable", "token_request_policy"]

OFF_BUT_REQUIRED = "This client requires DPoP, which the service has turned off (KEYTURN_DPOP=off)."


def proof_required(service: DpopMode, client: ClientDpop) -> bool:
    """Whether a session started for a client whose policy is ``client`` needs a DPoP proof under the
    service's ``service`` mode. A client's policy only tightens the service's: ``optional`` under a
    ``required`` service is required. A ``required`` client under ``off`` can start no session at all
    (``invalid_dpop_proof``): failing closed, since the proof it demands would bind nothing."""
    if client == "required" and service == "off":
        raise InvalidDpopProof(OFF_BUT_REQUIRED)
    return service == "required" or client == "required"


def token_request_policy(client: ClientRecord) -> ClientDpop:
    """The DPoP policy a token request (``/oauth/token``) by ``client`` is held to, once it authenticated.

    A confidential client authenticates on every token request, and its sessions are started by the
    application's code, not by the client: so its own policy is checked where it calls, and ``required``
    makes each of its token requests carry a proof (``invalid_dpop_proof`` without, as a login of a
    ``required`` public client). A public client is only named there; its policy binds its sessions when
    they start (a bound session's refresh needs a proof by its key already: ``refresh_token_bound``)."""
    return client.dpop if client.confidential else "optional"


def registrable(service: DpopMode, client: ClientDpop) -> None:
    """``ValueError`` for a client policy the service could never honour: ``required`` under ``off``."""
    if client == "required" and service == "off":
        raise ValueError("--dpop required needs KEYTURN_DPOP=optional or required (it is off)")


def nonce_key(secret: str) -> bytes:
    """The key DPoP nonces are derived from: the same in every process of one service."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyturn/v1 dpop nonces")
    return hkdf.derive(secret.encode())


class DpopGate:
    """Checks the ``DPoP`` header of the calls that start and refresh sessions, as the settings say."""

    def __init__(self, settings: Settings, store: DpopStore, clock: Clock, *, key: bytes) -> None:
        self.mode: DpopMode = settings.dpop
        self.rules = ProofRules(
            max_age=settings.dpop_proof_max_age,
            leeway=ProofRules.ahead(settings.leeway),
            nonces=Nonces(key) if settings.dpop_nonces else None,
        )
        self._store = store
        self._clock = clock

    def nonce_headers(self) -> dict[str, str]:
        """``DPoP-Nonce`` for a successful answer when the service asks for nonces (RFC 9449 section 8)."""
        nonces = self.rules.nonces
        return {} if nonces is None else {"DPoP-Nonce": nonces.current(self._clock.now())}

    def nothing_to_check(self, headers: Sequence[str], client: ClientDpop = "optional") -> bool:
        """Whether a request whose ``DPoP`` header values are ``headers`` has no proof and needs none (by the
        service, or by ``client``: the policy of the registered client a session is being started for): its
        :meth:`check` is ``None`` at once, so a caller may skip it (and build nothing for it)."""
        required = self.mode == "required" or (client == "required" and proof_required(self.mode, client))
        return not (headers or required)

    async def check(
        self,
        headers: Sequence[str],
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        client: ClientDpop = "optional",
    ) -> Proof | None:
        """The checked proof of a request whose ``DPoP`` header values are ``headers``; ``None`` when it
        has none and none is required (by the service, or by ``client``: the policy of the registered
        client a session is being started for). Raises ``InvalidDpopProof`` (replayed, wrong, several,
        missing where required) or ``UseDpopNonce``."""
        if self.nothing_to_check(headers, client):
            return None
        if not headers:
            raise InvalidDpopProof("A DPoP proof is required.")
        if len(headers) > 1:
            raise InvalidDpopProof("The request carries more than one DPoP header.")
        now = self._clock.now()
        proof = check_proof(
            headers[0], method=method, url=url, now=now, rules=self.rules, access_token=access_token
        )
        if not await self._store.use_dpop_jti(proof.replay_key(), self.rules.remember_until(proof), now):
            raise InvalidDpopProof("The DPoP proof was used before.")
        return proof

    @staticmethod
    async def refresh_key(proof: Awaitable[Proof | None], limits: RefreshLimits, now: float) -> str | None:
        """The key thumbprint of a refresh call's checked ``proof`` (``None`` without one). A bad proof
        takes from the address's bucket, as a refresh token that does not verify does, and is raised."""
        try:
            checked = await proof
        except KeyturnError:
            await limits.take(limits.takes(None, now))
            raise
        return None if checked is None else checked.jkt

    def binding(self, proof: Proof | None) -> str | None:
        """The key a session started with ``proof`` is bound to: none when DPoP is ``off``."""
        return None if proof is None or self.mode == "off" else proof.jkt
