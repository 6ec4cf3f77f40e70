"""Django's users as Keyturn's subjects: the subject is the user's primary key, as a string.

Every function here is sync Django code (the ORM). The routes ask the subject check on the request's own
thread (:func:`subject_allowed`); a refresh made some other way asks it through :mod:`.service`, on a small
pool of threads of its own.

The subject check runs on every refresh, so for a user model of the usual shape (its default manager's
queryset unchanged, a primary key of its own table, ``is_active`` a field of that table or
``AbstractBaseUser``'s constant) it reads the one column it needs with one statement written once
(:class:`ActiveRead`), on the same connection the ORM would use: building and compiling the ORM's query
and making a model instance cost more than the rest of a refresh's work in Django. Any other model is read
through its default manager, as :func:`find_user` reads it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import DatabaseError, connections, models
from django.db.models.manager import BaseManager
from django.db.models.query_utils import DeferredAttribute

from ..errors import StoreUnavailable

__all__ = [
    "ActiveRead",
    "LoginState",
    "find_user",
    "login_state",
    "may_hold_session",
    "subject_allowed",
    "subject_of",
]

LoginState = tuple[str, bool]
"""A user's password hash and whether they are active: a session outlives neither changing."""


def subject_of(user: AbstractBaseUser) -> str:
    return str(user.pk)


def find_user(subject: str) -> Any | None:
    """The user whose primary key is ``subject``, or ``None`` (gone, or not a key of this model)."""
    model = get_user_model()
    try:
        return model._default_manager.get(pk=subject)
    except (ObjectDoesNotExist, ValueError, TypeError, ValidationError):
        return None


def is_active(user: Any) -> bool:
    return bool(getattr(user, "is_active", True))


def may_hold_session(subject: str) -> bool:
    """The subject check: a deleted or deactivated user may hold no session."""
    read = ActiveRead.of(get_user_model())
    if read is not None:
        return read(subject)
    user = find_user(subject)
    return user is not None and is_active(user)


_INTEGER_KEYS = frozenset({"AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField"})
_OTHER_KEYS = frozenset({"CharField", "UUIDField"})


@dataclass(frozen=True, slots=True)
class ActiveRead:
    """Whether the user with a primary key may hold a session, read with one statement.

    The same answer as ``find_user`` and ``is_active``: a key the primary key field refuses, or an integer
    out of its column's range, finds no user (as the ORM's ``get(pk=...)`` finds none), and the user's
    ``is_active`` column (or the model's constant) decides.
    """

    model: type[models.Model]
    key: models.Field[Any, Any]
    key_column: str
    active_column: str | None
    """``None``: the model has no ``is_active`` field; :attr:`constant` answers for every user."""
    constant: bool = True
    _sql: dict[str, str] = field(default_factory=dict, compare=False)

    @staticmethod
    @cache
    def of(model: type[models.Model]) -> ActiveRead | None:
        """The read for ``model``, or ``None`` when its shape asks for the ORM (see the module)."""
        meta = model._meta
        manager = model._default_manager
        key = meta.pk
        if (
            meta.proxy
            or key is None
            or key.model is not model
            or key.column is None
            or key.is_relation
            or key.get_internal_type() not in _INTEGER_KEYS | _OTHER_KEYS
            or type(manager).get_queryset is not BaseManager.get_queryset
            or getattr(manager, "_queryset_class", None) is None
            or manager._queryset_class.__init__ is not models.QuerySet.__init__  # type: ignore[attr-defined]
        ):
            return None
        active = inspect.getattr_static(model, "is_active", True)
        if isinstance(active, bool):  # AbstractBaseUser's constant, or the model's own
            return ActiveRead(model, key, key.column, None, active)
        column = active.field if isinstance(active, DeferredAttribute) else None
        if not isinstance(column, models.BooleanField) or column.model is not model or not column.concrete:
            return None  # a property, another kind of field, another table's: the model instance decides
        return ActiveRead(model, key, key.column, column.column)

    def __call__(self, subject: str) -> bool:
        alias = self.model._default_manager.db
        connection = connections[alias]
        try:
            value = self.key.get_db_prep_value(subject, connection)
        except (ValueError, TypeError, ValidationError):
            return False
        if isinstance(value, int):
            low, high = connection.ops.integer_field_range(self.key.get_internal_type())
            if (low is not None and value < low) or (high is not None and value > high):
                return False
        with connection.cursor() as cursor:
            cursor.execute(self._statement(alias), [value])
            row = cursor.fetchone()
        if row is None:
            return False
        return self.constant if self.active_column is None else bool(row[0])

    def _statement(self, alias: str) -> str:
        sql = self._sql.get(alias)
        if sql is None:
            quote = connections[alias].ops.quote_name
            what = "1" if self.active_column is None else quote(self.active_column)
            table, key = quote(self.model._meta.db_table), quote(self.key_column)
            # Names from the model's own metadata, quoted by the backend; the key is a parameter.
            sql = self._sql[alias] = f"SELECT {what} FROM {table} WHERE {key} = %s"  # noqa: S608
        return sql


def subject_allowed(subject: str) -> bool:
    """:func:`may_hold_session` for a request's flow: the database down is a retryable ``server_error``."""
    try:
        return may_hold_session(subject)
    except DatabaseError as exc:
        raise StoreUnavailable("The project's database is unavailable.") from exc


def login_state(user: Any) -> LoginState:
    return (str(getattr(user, "password", "") or ""), is_active(user))


def stored_login_state(subject: str) -> LoginState | None:
    user = find_user(subject)
    return None if user is None else login_state(user)
