"""A ``postgresql://`` URL as the PostgreSQL store connects with it: libpq's connection string, with
Keyturn's time limits where the URL sets none, and Keyturn's own ``pooler`` parameter taken out of it.

``pooler=transaction`` says a pooler in transaction mode (PgBouncer's ``pool_mode = transaction``) is
between the store and PostgreSQL, and may run each transaction, or each statement outside one, on another
server connection. The store then keeps nothing in a server connection's session:

- the statement timeout is not sent as a startup ``options`` parameter, which such a pooler refuses
  (PgBouncer: "unsupported startup parameter") or, listed in its ``ignore_startup_parameters``, drops: set
  it on the role instead (``ALTER ROLE … SET statement_timeout = '5s'``); every call is still bounded by
  the store's own limit, which cancels the statement;
- no statement is prepared (psycopg's ``prepare_threshold=None``): a statement prepared on one server
  connection is not there on the next (PgBouncer before 1.21, or without ``max_prepared_statements``).

``pooler=session`` (a pooler that keeps each connection's session, or none) is the same as leaving it out.
"""

from __future__ import annotations

from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import ConfigError

CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 5000
POOLER_MODES = ("session", "transaction")
"""Values of a ``postgresql://`` URL's ``pooler`` parameter (Keyturn's own; see ``conninfo_from_url``)."""


def conninfo_from_url(url: str) -> str:
    """``url`` as a libpq connection string, with Keyturn's time limits where the URL sets none.

    ``pooler=transaction`` (Keyturn's own parameter, taken out of the URL: libpq knows no such name) says a
    pooler in transaction mode (PgBouncer's ``pool_mode = transaction``) is between the store and
    PostgreSQL: the statement timeout is then not sent as a startup ``options`` parameter, which such a
    pooler refuses or drops (set it on the role, ``ALTER ROLE … SET statement_timeout``), and the store
    prepares no statement (see :func:`pooler_from_url`). ``pooler=session`` is the same as none.
    """
    url, pooler = _split_pooler(url)
    params = _params(url)
    limits: dict[str, str | int] = {}
    if "connect_timeout" not in params:
        limits["connect_timeout"] = CONNECT_TIMEOUT_S
    options = str(params.get("options") or "")
    if pooler != "transaction" and "statement_timeout" not in options:
        limits["options"] = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
    return make_conninfo(url, **limits)


def pooler_from_url(url: str) -> str:
    """The URL's ``pooler`` (``session`` unless it says ``transaction``); ``ConfigError`` for another."""
    return _split_pooler(url)[1]


def _split_pooler(url: str) -> tuple[str, str]:
    """``url`` without its ``pooler`` parameter, and that parameter's value (``session`` if none)."""
    base, _, rest = url.partition("?")
    query, hash_, fragment = rest.partition("#")
    pairs = [pair.partition("=") for pair in query.split("&") if pair]
    found = [unquote(value) for name, _, value in pairs if unquote(name) == "pooler"]
    if not found:
        return url, "session"
    if found[-1] not in POOLER_MODES:
        raise ConfigError(f"the PostgreSQL URL's pooler must be session or transaction, not {found[-1]!r}")
    kept = "&".join("".join(pair) for pair in pairs if unquote(pair[0]) != "pooler")
    return f"{base}{'?' if kept else ''}{kept}{hash_}{fragment}", found[-1]


def _params(url: str) -> dict[str, object]:
    try:
        return dict(conninfo_to_dict(url))
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"not a valid PostgreSQL URL: {reason(exc)}") from exc


def reason(exc: BaseException) -> str:
    """The first line of a driver's message (libpq's go on with hints), or the kind of timeout."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "CONNECT_TIMEOUT_S",
    "POOLER_MODES",
    "STATEMENT_TIMEOUT_MS",
    "conninfo_from_url",
    "pooler_from_url",
    "reason",
]
