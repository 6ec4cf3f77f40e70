"""The pair a client holds, what the refresh endpoint answers, and where the pair is kept.

Times are in the server's clock: ``access_expires_at`` comes from the server (``server_time + expires_in``
or the access token's ``exp``), so a client whose own clock is minutes off still refreshes on time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

__all__ = ["FileTokenStore", "MemoryTokenStore", "TokenStore", "Tokens", "unverified_claims"]


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str = ""
    access_expires_at: float = 0.0
    """When the access token expires, in server time (epoch seconds)."""
    lifetime: float = 0.0
    """The access token's whole lifetime (seconds), for the refresh margin's ``lifetime / 3`` cap."""
    refresh_expires_at: float | None = None
    """When the refresh token expires, in server time, if the server said."""
    session_id: str | None = None
    clock_offset: float = 0.0
    """``server_time - local_time`` measured when this pair arrived (at the midpoint of the call)."""
    min_clock_offset: float | None = None
    """The least the offset can be: ``server_time`` minus the local time the answer arrived (the service
    read its clock before that). DPoP proofs take their ``iat`` from it, so never ahead of the service's
    clock; ``None`` in a pair stored before it was kept (``clock_offset`` stands in)."""

    def __repr__(self) -> str:  # never show the tokens themselves
        return f"Tokens(session_id={self.session_id!r}, access_expires_at={self.access_expires_at})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Tokens:
        """A pair read back from storage; ``ValueError`` if it is not one."""
        if not isinstance(data, dict):
            raise ValueError("stored tokens are not an object")
        names = {f.name for f in fields(cls)}
        if not isinstance(data.get("access_token"), str) or not data["access_token"]:
            raise ValueError("stored tokens have no access token")
        if not isinstance(data.get("refresh_token"), str):
            raise ValueError("stored tokens have no refresh token")
        optional = ("refresh_expires_at", "min_clock_offset")
        for name in ("access_expires_at", "lifetime", "clock_offset", *optional):
            value = data.get(name)
            if value is None and name in optional:
                continue
            if not isinstance(data.get(name, 0.0), int | float) or isinstance(value, bool):
                raise ValueError(f"stored tokens have a bad {name}")
        if not isinstance(data.get("session_id"), str | None):
            raise ValueError("stored tokens have a bad session_id")
        return cls(**{k: v for k, v in data.items() if k in names})


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, not verified: only the client's own scheduling reads it (``exp``, ``iat``)."""
    try:
        payload = token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return value if isinstance(value, dict) else {}


class TokenStore(Protocol):
    """Where a :class:`~keyturn.client.TokenManager` keeps its pair between calls (and runs)."""

    def load(self) -> Tokens | None: ...

    def save(self, tokens: Tokens) -> None: ...

    def clear(self) -> None: ...


class MemoryTokenStore:
    def __init__(self, tokens: Tokens | None = None) -> None:
        self._tokens = tokens

    def load(self) -> Tokens | None:
        return self._tokens

    def save(self, tokens: Tokens) -> None:
        self._tokens = tokens

    def clear(self) -> None:
        self._tokens = None


class FileTokenStore:
    """A JSON file readable by its owner only (0600), replaced atomically on every save.

    A file that cannot be read as a pair is treated as no pair (and replaced at the next save). A leading
    ``~`` in ``path`` is the user's home directory, as in a shell.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()

    def load(self) -> Tokens | None:
        try:
            return Tokens.from_json(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # unreadable, not UTF-8, not JSON, not a pair: no session
            return None

    def save(self, tokens: Tokens) -> None:
        data = json.dumps(tokens.to_json()).encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".keyturn-", dir=self.path.parent)  # made 0600
            try:
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def clear(self) -> None:
        with self._lock, contextlib.suppress(FileNotFoundError):
            self.path.unlink()
