"""Django's users as Keyturn's subjects: the subject is the user's primary key, as a string.

Every function here is sync Django code (the ORM); :mod:`.service` runs the subject check on a small pool
of threads of its own, since the core asks it from its event loop.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist, ValidationError

__all__ = ["LoginState", "find_user", "login_state", "may_hold_session", "subject_of"]

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


def login_state(user: Any) -> LoginState:
    return (str(getattr(user, "password", "") or ""), is_active(user))


def stored_login_state(subject: str) -> LoginState | None:
    user = find_user(subject)
    return None if user is None else login_state(user)
