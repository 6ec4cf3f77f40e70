"""The example Django project (``examples/django_simplejwt``) on real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..contract.backends import POSTGRES_URL, _ensure_postgres_database
from ._project import ExampleProject

DATABASES = ("sqlite", "postgresql")


@contextlib.contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """The example project's ``DATABASE``: a SQLite file in ``tmp_path``, or a PostgreSQL schema of its own,
    dropped at the end."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    import psycopg
    from psycopg import sql

    _ensure_postgres_database()
    schema = f"ktdj_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield f"{POSTGRES_URL.split('?')[0]}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The example project's ``DATABASE``: a SQLite file, or a PostgreSQL schema of this test's own."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def project(tmp_path: Path, database: str) -> ExampleProject:
    """The example project on ``database``, not migrated yet."""
    return ExampleProject(tmp_path, database)


@pytest.fixture
def keyturn_project(project: ExampleProject) -> ExampleProject:
    """The example project migrated on ``keyturn.django`` (Keyturn's tables and SimpleJWT's)."""
    project.manage("migrate")
    return project


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Iterator[ExampleProject]:
    """The example project on SQLite alone, migrated with both token services' tables."""
    with database_url("sqlite", tmp_path) as url:
        project = ExampleProject(tmp_path, url)
        project.manage("migrate")
        yield project
