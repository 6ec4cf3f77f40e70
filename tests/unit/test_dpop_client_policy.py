"""A registered client's own DPoP policy (``keyturn clients add --dpop required``): the pure decision, the
gate that applies it, and the registry that keeps it (issue 17)."""

from __future__ import annotations

import pytest

from keyturn.clients import LIST_HEADER, ClientRegistry, listed
from keyturn.clock import FrozenClock
from keyturn.dpop_gate import DpopGate, proof_required, registrable, token_request_policy
from keyturn.errors import InvalidDpopProof, InvalidRequest
from keyturn.store.memory import MemoryStore
from keyturn.testing import make_settings
from keyturn.typing import ClientDpop, ClientRecord, DpopMode

from .._dpop import URL, make_proof

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("service", "client", "required"),
    [
        ("optional", "optional", False),
        ("optional", "required", True),
        ("required", "optional", True),  # a client's policy never loosens the service's
        ("required", "required", True),
        ("off", "optional", False),
    ],
)
def test_a_client_policy_only_tightens_the_service_setting(
    service: DpopMode, client: ClientDpop, required: bool
) -> None:
    """The service's rule and the client's together: a proof is needed when either asks for one."""
    assert proof_required(service, client) is required


def test_a_required_client_under_dpop_off_starts_no_session_and_cannot_be_registered() -> None:
    """Fail closed: a proof that would bind nothing is no reason to let the client in unbound."""
    with pytest.raises(InvalidDpopProof, match="turned off"):
        proof_required("off", "required")
    with pytest.raises(ValueError, match="off"):
        registrable("off", "required")
    registrable("off", "optional")
    registrable("optional", "required")


def gate(mode: DpopMode) -> DpopGate:
    return DpopGate(make_settings(dpop=mode), MemoryStore(), FrozenClock(NOW), key=b"k" * 32)


async def test_the_gate_refuses_a_required_clients_start_without_a_proof(anyio_backend: str) -> None:
    """Under the default ``optional``, no proof is fine for other clients and refused for a required one,
    with the code ``KEYTURN_DPOP=required`` gives (one way for clients to handle both)."""
    optional = gate("optional")
    assert await optional.check([], method="POST", url=URL) is None
    assert await optional.check([], method="POST", url=URL, client="optional") is None
    with pytest.raises(InvalidDpopProof, match="required") as refused:
        await optional.check([], method="POST", url=URL, client="required")
    assert (refused.value.code, refused.value.status) == ("invalid_dpop_proof", 400)
    proof = await optional.check([make_proof(now=NOW)], method="POST", url=URL, client="required")
    assert proof is not None
    assert optional.binding(proof) == proof.jkt


async def test_the_gate_refuses_a_required_clients_start_when_dpop_is_off(anyio_backend: str) -> None:
    off = gate("off")
    assert await off.check([], method="POST", url=URL) is None
    for headers in ([], [make_proof(now=NOW)]):
        with pytest.raises(InvalidDpopProof, match="turned off"):
            await off.check(headers, method="POST", url=URL, client="required")


async def test_the_registry_keeps_and_lists_a_clients_policy(anyio_backend: str) -> None:
    """Stored with the client, read back by the lookup that starts sessions, shown by ``clients list``."""
    registry = ClientRegistry(MemoryStore(), b"k" * 32, clock=FrozenClock(NOW))
    assert await registry.add("spa", confidential=False, dpop="required") is not None
    assert await registry.add("web", confidential=False) is not None
    assert await registry.dpop_policy("spa") == "required"
    assert await registry.dpop_policy("web") == "optional"
    assert await registry.dpop_policy(None) == "optional"
    assert await registry.dpop_policy("keyturn") == "optional"
    assert await registry.dpop_policy("nobody") == "optional"
    assert LIST_HEADER.split("\t") == ["CLIENT", "TYPE", "CREATED", "DPOP"]
    lines = [[*listed(c).split("\t")[:2], listed(c).split("\t")[3]] for c in await registry.list()]
    assert lines == [
        ["keyturn", "public", "optional"],
        ["spa", "public", "required"],
        ["web", "public", "optional"],
    ]


async def test_a_required_client_cannot_be_registered_while_dpop_is_off(anyio_backend: str) -> None:
    store = MemoryStore()
    registry = ClientRegistry(store, b"k" * 32, dpop="off")
    with pytest.raises(ValueError, match="off"):
        await registry.add("spa", confidential=False, dpop="required")
    assert await store.list_clients() == []


@pytest.mark.parametrize(
    ("secret_hash", "policy", "held_to"),
    [
        ("hmac-sha256:x", "required", "required"),  # a confidential client: its own policy, every call
        ("hmac-sha256:x", "optional", "optional"),
        (None, "required", "optional"),  # a public client: its policy bound the session when it started
        (None, "optional", "optional"),
    ],
)
def test_a_token_request_is_held_to_a_confidential_clients_own_policy(
    secret_hash: str | None, policy: ClientDpop, held_to: ClientDpop
) -> None:
    """A confidential client starts no session itself, so ``--dpop required`` must act where it calls."""
    client = ClientRecord("rs", NOW, secret_hash, policy)
    assert client.confidential is (secret_hash is not None)
    assert token_request_policy(client) == held_to


async def test_a_logins_policy_is_its_named_public_clients_or_invalid_request(anyio_backend: str) -> None:
    """One rule for ``keyturn serve``'s login and ``keyturn.django``'s (``/login``, SimpleJWT's ``token/``):
    no ``client_id`` or the built-in one is ``optional``, a registered public client's is its own, and an
    unknown or confidential id is 400 ``invalid_request`` (docs/oauth.md), where ``dpop_policy`` (an
    application's own ``start_session``) takes an unknown id as ``optional``. Before: the rule was written
    twice, in ``UserLogin.dpop_policy`` and ``keyturn.django.views``."""
    registry = ClientRegistry(MemoryStore(), b"k" * 32, clock=FrozenClock(NOW))
    assert await registry.add("spa", confidential=False, dpop="required") is not None
    assert await registry.add("rs", confidential=True) is not None
    assert await registry.login_policy("spa") == "required"
    assert await registry.login_policy(None) == "optional"
    assert await registry.login_policy("keyturn") == "optional"
    for refused in ("nobody", "rs", "not a valid id"):
        with pytest.raises(InvalidRequest, match="no registered public client"):
            await registry.login_policy(refused)
