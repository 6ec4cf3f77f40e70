"""Django's users as Keyturn's subjects: the subject is the user's primary key, as a string.

Every function here is sync Django code (the ORM). The routes ask the subject check on the request's own
thread (:func:`subject_allowed`); a refresh made some other way asks it through :mod:`.service`, on a small
pool of threads of its own.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import DatabaseError

from ..errors import StoreUnavailable

__all__ = [
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
    user = find_user(subject)
    return user is not None and is_active(user)


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
