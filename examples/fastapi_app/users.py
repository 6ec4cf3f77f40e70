"""The application's own users table: email, argon2 password hash, roles, a disabled flag.

Nothing here knows about Keyturn; ``app.py`` hands three of these functions to it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, String, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import PoolProxiedConnection


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def role_list(self) -> list[str]:
        return sorted(r for r in self.roles.split(",") if r)


class Users:
    """The users table behind one SQLAlchemy engine (made on first use, so forks and threads are fine)."""

    def __init__(self, url: str, hasher: PasswordHasher | None = None) -> None:
        self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(self.engine, "connect", _wal)
        Base.metadata.create_all(self.engine)
        self.hasher = hasher or PasswordHasher()
        self._dummy = self.hasher.hash("no such user")  # unknown emails cost one verification too
        # argon2 takes tens of megabytes and a core per check: a burst of logins queues here instead of
        # taking every worker thread (and gigabytes) at once.
        self._hashing = threading.BoundedSemaphore(os.cpu_count() or 2)
        self._reader: PoolProxiedConnection | None = None

    def add(self, email: str, password: str, roles: list[str] | None = None) -> int | None:
        """The new user's id; ``None`` if the email is taken."""
        try:
            with Session(self.engine) as db, db.begin():
                user = User(
                    email=email, password_hash=self.hasher.hash(password), roles=",".join(roles or [])
                )
                db.add(user)
                db.flush()
                return user.id
        except IntegrityError:
            return None

    def get(self, user_id: str) -> User | None:
        if not user_id.isdigit():
            return None
        with Session(self.engine, expire_on_commit=False) as db:
            return db.get(User, int(user_id))

    def standing(self, user_id: str) -> tuple[bool, list[str]] | None:
        """Whether the user is disabled, and their roles; ``None`` for no such user.

        What the refresh hooks ask on every refresh, from the event loop, so kept lean: one indexed read
        with a DB-API cursor of a connection kept for it (autocommit, so each read sees the latest
        writes). SQLAlchemy's execution layer would cost several times the read itself.
        """
        if not user_id.isdigit():
            return None
        if self._reader is None:
            self._reader = self.engine.raw_connection()
            self._reader.driver_connection.isolation_level = None  # autocommit: no read snapshot kept
        row = self._reader.cursor().execute(STANDING, (int(user_id),)).fetchone()
        if row is None:
            return None
        return bool(row[0]), sorted(r for r in row[1].split(",") if r)

    def by_email(self, email: str) -> User | None:
        with Session(self.engine, expire_on_commit=False) as db:
            return db.scalars(select(User).where(User.email == email)).first()

    def check_password(self, email: str, password: str) -> User | None:
        """The enabled user with this email and password, else ``None``."""
        user = self.by_email(email)
        try:
            with self._hashing:
                ok = self.hasher.verify(user.password_hash if user else self._dummy, password)
        except (VerificationError, InvalidHashError):
            ok = False
        return user if ok and user is not None and not user.disabled else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.engine.dispose()

    def update(self, email: str, *, roles: list[str] | None = None, disabled: bool | None = None) -> bool:
        with Session(self.engine) as db, db.begin():
            user = db.scalars(select(User).where(User.email == email)).first()
            if user is None:
                return False
            if roles is not None:
                user.roles = ",".join(roles)
            if disabled is not None:
                user.disabled = disabled
            return True


STANDING = "SELECT disabled, roles FROM users WHERE id = ?"


def _wal(connection: Any, _record: object) -> None:
    """Readers never wait for a writer (the refresh hooks read while an admin writes)."""
    connection.execute("PRAGMA journal_mode=WAL")
