"""``settings.KEYTURN`` and the project's database, read at start-up: a database Keyturn cannot keep its
tables in is named in a clear ``ImproperlyConfigured``, never met at the first request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from keyturn.django.conf import store_url_for

from ._project import python_path


def test_a_sqlite_database_is_its_file() -> None:
    """The store opens the project's own SQLite file."""
    url = store_url_for({"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/app/db.sqlite3"})

    assert url == "sqlite:////srv/app/db.sqlite3"


def test_a_postgresql_database_keeps_its_credentials_and_options() -> None:
    """User, password (quoted), host, port, name and libpq options carry over; Django's own options do not."""
    url = store_url_for(
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "app",
            "USER": "web",
            "PASSWORD": "p@ss/word",
            "HOST": "db.internal",
            "PORT": 5433,
            "OPTIONS": {"options": "-c search_path=tenant", "sslmode": "require", "pool": True},
        }
    )

    assert url == (
        "postgresql://web:p%40ss%2Fword@db.internal:5433/app?options=-c%20search_path%3Dtenant&sslmode=require"
    )


@pytest.mark.parametrize(
    "pooled",
    [{"DISABLE_SERVER_SIDE_CURSORS": True}, {"OPTIONS": {"prepare_threshold": None}}],
    ids=["server-side-cursors-off", "prepared-statements-off"],
)
def test_a_postgresql_database_behind_a_transaction_pooler_gets_a_store_for_one(
    pooled: dict[str, object],
) -> None:
    """What Django's documentation (server-side cursors off) or psycopg's (prepared statements off) has a
    database behind a pooler in transaction mode set makes the store's URL say so (``pooler=transaction``);
    ``prepare_threshold`` is psycopg's, never a libpq parameter."""
    database = {"ENGINE": "django.db.backends.postgresql", "NAME": "app", "HOST": "pgbouncer", "PORT": 6432}
    assert store_url_for({**database, **pooled}) == "postgresql://pgbouncer:6432/app?pooler=transaction"
    direct = store_url_for({**database, "OPTIONS": {"prepare_threshold": 5}})
    assert direct == "postgresql://pgbouncer:6432/app"


@pytest.mark.parametrize(
    "engine", ["django.db.backends.mysql", "django.db.backends.oracle", "mssql", "django_cockroachdb"]
)
def test_an_unsupported_engine_is_named_at_start_up(engine: str) -> None:
    """MySQL and the rest: the error names the engine and what to do instead."""
    with pytest.raises(ImproperlyConfigured, match=rf"engine {engine!r} is not supported.*STORE_URL"):
        store_url_for({"ENGINE": engine, "NAME": "app"})


@pytest.mark.parametrize("name", [":memory:", "file:memorydb_default?mode=memory&cache=shared"])
def test_an_in_memory_sqlite_database_gets_the_memory_store(name: str) -> None:
    """Django's test runner makes one for SQLite: the process's own memory store lives as long."""
    assert store_url_for({"ENGINE": "django.db.backends.sqlite3", "NAME": name}) == "memory://"


SETUP = """
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="x" * 50,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "keyturn.django"],
    DATABASES={"default": {"ENGINE": "othersql", "NAME": "app"}},
)
django.setup()
"""


def test_django_refuses_to_start_on_an_unsupported_database(tmp_path: Path) -> None:
    """The app's ``ready()`` reads the settings: ``django.setup()`` itself fails, naming the engine.

    ``othersql`` stands for MySQL (whose driver is not installed here): a backend Django can load, that
    Keyturn cannot keep its tables in.
    """
    engine = tmp_path / "othersql"
    engine.mkdir()
    (engine / "__init__.py").write_text("")
    (engine / "base.py").write_text("from django.db.backends.sqlite3.base import *  # noqa: F403\n")
    env = {**os.environ, "PYTHONPATH": python_path(tmp_path)}

    done = subprocess.run(
        [sys.executable, "-c", SETUP], capture_output=True, text=True, timeout=60, check=False, env=env
    )

    assert done.returncode != 0
    assert "ImproperlyConfigured: keyturn.django keeps its tables in PostgreSQL or SQLite" in done.stderr
    assert "'othersql' is not supported (MySQL, MariaDB and Oracle are not)" in done.stderr
