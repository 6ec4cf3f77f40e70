"""Django's users rule Keyturn's sessions: a password change, deactivation or deletion ends them all.

- a password set with ``set_password()`` and saved (the admin's form, ``changepassword``, the project's
  own views) ends every session of the user with reason ``password_changed``; a hash upgrade Django makes
  at login is not a change (Django itself tells them apart);
- a user saved inactive who was active when loaded ends them with ``subject_disabled``;
- a deleted user's sessions end with ``subject_disabled``.

Each ends once the transaction that made the change commits (at once in autocommit), so a rolled-back
change ends nothing and a login racing the change is caught by the login's own check. Changes that bypass
``save()`` (``QuerySet.update()``) send no signal: the subject check at the next refresh refuses such a
user's sessions all the same.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_init, post_save

from ..errors import KeyturnError
from ..typing import RevokedReason
from .service import service
from .users import is_active, subject_of

__all__ = ["connect"]

logger = logging.getLogger("keyturn.django")

_WAS_ACTIVE = "_keyturn_was_active"


def end_sessions(subject: str, reason: RevokedReason) -> None:
    """End every Keyturn session of ``subject`` now."""
    try:
        service().run(lambda rt: rt.sessions.revoke_all(subject, reason))
    except KeyturnError as exc:  # the store is down: the subject check refuses them at refresh anyway
        logger.error("ending the sessions of a user failed: %s", exc.code)


def _later(instance: Any, reason: RevokedReason) -> None:
    subject = subject_of(instance)
    transaction.on_commit(lambda: end_sessions(subject, reason), using=instance._state.db)


def _loaded(sender: Any, instance: Any, **_: Any) -> None:
    setattr(instance, _WAS_ACTIVE, is_active(instance))


def _saved(sender: Any, instance: Any, created: bool, **_: Any) -> None:
    if created:
        return
    if getattr(instance, "_password", None) is not None:  # set_password() since the last save
        _later(instance, "password_changed")
    elif getattr(instance, _WAS_ACTIVE, True) and not is_active(instance):
        _later(instance, "subject_disabled")
    setattr(instance, _WAS_ACTIVE, is_active(instance))


def _deleted(sender: Any, instance: Any, **_: Any) -> None:
    _later(instance, "subject_disabled")


def connect() -> None:
    """Listen to the project's user model (``AUTH_USER_MODEL``)."""
    model = get_user_model()
    post_init.connect(_loaded, sender=model, dispatch_uid="keyturn.django.loaded")
    post_save.connect(_saved, sender=model, dispatch_uid="keyturn.django.saved")
    post_delete.connect(_deleted, sender=model, dispatch_uid="keyturn.django.deleted")
