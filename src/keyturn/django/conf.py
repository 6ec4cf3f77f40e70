"""``settings.KEYTURN`` to Keyturn's settings, and the project's database to a store URL.

Every key of ``settings.KEYTURN`` is a ``KEYTURN_*`` name without its prefix (``ACCESS_TOKEN_LIFETIME``,
``GRACE_PERIOD``, ``COOKIE_MODE``...), plus:

- ``DATABASE``: the alias in ``settings.DATABASES`` Keyturn keeps its tables in (default ``"default"``);
- ``SIMPLEJWT_MIGRATION_UNTIL``: an ISO 8601 date or time; until then SimpleJWT tokens issued before the
  switch are accepted (``keyturn.django.simplejwt``).

``STORE_URL`` overrides ``DATABASE`` (a Redis store, say). ``SECRET_KEY`` defaults to Django's own. Only
``settings.KEYTURN`` counts: the ``KEYTURN_*`` environment is not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from pydantic import ValidationError

from ..config import Settings

__all__ = ["DjangoKeyturn", "load", "store_url_for"]

SQLITE_ENGINES = ("django.db.backends.sqlite3", "django.contrib.gis.db.backends.spatialite")
POSTGRES_ENGINES = ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis")
_DJANGO_ONLY_OPTIONS = frozenset(
    {
        "pool",
        "server_side_binding",
        "assume_role",
        "isolation_level",
        "cursor_factory",
        "init_command",
        "prepare_threshold",
    }
)
"""Keys of a PostgreSQL database's ``OPTIONS`` that are Django's or psycopg's, not libpq's."""
_OWN_KEYS = ("DATABASE", "SIMPLEJWT_MIGRATION_UNTIL")


@dataclass(frozen=True, slots=True)
class DjangoKeyturn:
    """What ``settings.KEYTURN`` says, checked."""

    settings: Settings
    database: str
    """The alias of the database the store lives in, unless ``STORE_URL`` names another place."""
    store_url: str
    own_store_url: bool
    """``STORE_URL`` was set: the store is not in ``database``."""
    migration_until: datetime | None


def load() -> DjangoKeyturn:
    """Read and check ``settings.KEYTURN``; ``ImproperlyConfigured`` says what is wrong."""
    raw: Mapping[str, Any] = getattr(django_settings, "KEYTURN", None) or {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("settings.KEYTURN must be a dict")
    options = {str(k).upper(): v for k, v in raw.items()}
    database = str(options.pop("DATABASE", "default"))
    until = _until(options.pop("SIMPLEJWT_MIGRATION_UNTIL", None))
    if database not in connections.settings:
        raise ImproperlyConfigured(f"settings.KEYTURN['DATABASE'] names no database: {database!r}")
    own_store_url = bool(options.get("STORE_URL"))
    store_url = options.get("STORE_URL") or store_url_for(connections.settings[database])
    options["STORE_URL"] = store_url
    options.setdefault("SECRET_KEY", django_settings.SECRET_KEY)
    try:
        # model_validate, not Settings(...): the KEYTURN_* environment must not leak in.
        settings = Settings.model_validate({k.lower(): v for k, v in options.items()})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'KEYTURN'}: {e['msg']}" for e in exc.errors()
        )
        raise ImproperlyConfigured(f"settings.KEYTURN: {problems}") from None
    return DjangoKeyturn(settings, database, str(store_url), own_store_url, until)


def store_url_for(database: Mapping[str, Any]) -> str:
    """The Keyturn store URL of a Django database (its ``settings.DATABASES`` entry)."""
    engine = str(database.get("ENGINE", ""))
    name = database.get("NAME")
    if engine in SQLITE_ENGINES:
        path = str(name or "")
        if not path or path == ":memory:" or "mode=memory" in path:
            # Django's test runner's database for SQLite: one process, gone at its end. Keyturn's
            # memory store lives as long and is shared by that process alone, as the database is.
            return "memory://"
        if path.startswith("file:"):
            raise ImproperlyConfigured(
                f"keyturn.django needs the SQLite database as a path, not a URI: {path!r}"
            )
        return f"sqlite:///{path}"
    if engine in POSTGRES_ENGINES:
        host = str(database.get("HOST") or "")
        port = str(database.get("PORT") or "")
        user = quote(str(database.get("USER") or ""), safe="")
        password = quote(str(database.get("PASSWORD") or ""), safe="")
        query: dict[str, str] = {}
        if host.startswith("/"):  # a Unix socket directory
            query["host"], host = host, ""
        options = database.get("OPTIONS") or {}
        for key, value in options.items():
            if key not in _DJANGO_ONLY_OPTIONS and isinstance(value, str | int):
                query[key] = str(value)
        # A pooler in transaction mode: what Django's documentation has such a database set (server-side
        # cursors off), or psycopg's (prepared statements off). The store then keeps nothing in a
        # server connection's session either (docs/contract.md, the postgresql:// store).
        if database.get("DISABLE_SERVER_SIDE_CURSORS") or (
            "prepare_threshold" in options and options["prepare_threshold"] is None
        ):
            query["pooler"] = "transaction"
        auth = f"{user}{':' + password if password else ''}@" if user else ""
        where = f"{host}{':' + port if port else ''}"
        url = f"postgresql://{auth}{where}/{quote(str(name or ''), safe='')}"
        return f"{url}?{urlencode(query, quote_via=quote)}" if query else url
    raise ImproperlyConfigured(
        f"keyturn.django keeps its tables in PostgreSQL or SQLite; the database engine {engine!r} "
        "is not supported (MySQL, MariaDB and Oracle are not). Set settings.KEYTURN['STORE_URL'] to a "
        "postgresql://, sqlite:/// or redis:// store, or KEYTURN['DATABASE'] to a supported database."
    )


def _until(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ImproperlyConfigured(
                f"settings.KEYTURN['SIMPLEJWT_MIGRATION_UNTIL'] is not an ISO 8601 date or time: {value!r}"
            ) from None
    else:
        raise ImproperlyConfigured("settings.KEYTURN['SIMPLEJWT_MIGRATION_UNTIL'] must be an ISO 8601 string")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
