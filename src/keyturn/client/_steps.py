"""The steps a client flow yields and the answers it receives: the whole vocabulary between the I/O-free
flows (``_flow.py``) and their drivers (``_drive.py``, ``httpx_auth.py``, ``requests_auth.py``).

A flow is a generator, as httpx writes ``Auth.auth_flow``: it yields a step, the driver does it (sends a
call, sleeps, takes the refresh lock) and sends back what came of it.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, TypeVar

T = TypeVar("T")

__all__ = ["BUSY", "Answer", "Call", "Exclusive", "Flow", "NoAnswer", "Reply", "SendRequest", "Sleep", "Step"]


@dataclass(frozen=True, slots=True)
class Call:
    """A call to the token service (log in, refresh, log out): ``POST path`` with a JSON body."""

    path: str
    body: Mapping[str, str] = field(repr=False)  # holds a refresh token or a password
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send the application's request (again), with ``token`` as its bearer token."""

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Exclusive:
    """Run ``flow`` holding the refresh lock; with ``wait=False`` answer :data:`BUSY` if it is taken."""

    flow: Generator[Any, Any, Any]
    wait: bool = True


class _Busy:
    def __repr__(self) -> str:
        return "BUSY"


BUSY: Final = _Busy()
"""The answer to ``Exclusive(..., wait=False)`` when another caller holds the lock."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: its status, headers (names in lower case) and body.

    The drivers read the body of a token-service answer always, of an application's answer only when the
    flow needs it (a 401): elsewhere ``content`` is empty.
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = field(default=b"", repr=False)

    def json(self) -> object:
        """The body as JSON, or None if it is not JSON."""
        try:
            return json.loads(self.content or b"null")
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """No answer came: the connection failed, timed out, or dropped (the table's ``status 0``)."""

    error: BaseException
    maybe_applied: bool = True
    """The request may have reached the server (and been acted on) though no answer came back."""


Answer: TypeAlias = Reply | NoAnswer
Step: TypeAlias = Call | SendRequest | Sleep | Exclusive
Flow: TypeAlias = Generator[Step, Any, T]
