"""Django system checks: the ``SIMPLE_JWT`` settings a project set that Keyturn does not read, and which
change what a frontend or the project sees after the switch (docs/django.md, SimpleJWT's settings). Only
in a project that used SimpleJWT (a ``SIMPLE_JWT`` setting, or one of its apps installed): one that never
did has nothing to switch from, and gets no warning.

Warnings, not errors: each names what Keyturn does instead; ``SILENCED_SYSTEM_CHECKS`` silences one once
it is understood. Registered by the app's ``ready()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage
from django.core.checks import Warning as CheckWarning

from . import conf

__all__ = ["simplejwt_in_use", "simplejwt_settings"]

SERIALIZERS = {
    "TOKEN_OBTAIN_SERIALIZER": "rest_framework_simplejwt.serializers.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "rest_framework_simplejwt.serializers.TokenRefreshSerializer",
    "TOKEN_VERIFY_SERIALIZER": "rest_framework_simplejwt.serializers.TokenVerifySerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "rest_framework_simplejwt.serializers.TokenBlacklistSerializer",
}
"""SimpleJWT's defaults for the serializers of the four routes Keyturn's views replace."""
DEFAULT_RULE = "rest_framework_simplejwt.authentication.default_user_authentication_rule"
ACCESS_TOKEN_LIFETIME = timedelta(minutes=5)
"""SimpleJWT's default ``ACCESS_TOKEN_LIFETIME`` (its ``settings.DEFAULTS``, 5.5.1): the lifetime its
access tokens had in a project whose ``SIMPLE_JWT`` does not set one."""
SIMPLEJWT_APP = "rest_framework_simplejwt"


def simplejwt_in_use() -> bool:
    """Whether the project used SimpleJWT: a ``SIMPLE_JWT`` setting, or SimpleJWT or one of its apps
    (``rest_framework_simplejwt.token_blacklist``) in ``INSTALLED_APPS``."""
    if hasattr(settings, "SIMPLE_JWT"):
        return True
    names = (config.name for config in apps.get_app_configs())
    return any(name == SIMPLEJWT_APP or name.startswith(SIMPLEJWT_APP + ".") for name in names)


def simplejwt_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A warning for each setting of ``SIMPLE_JWT`` Keyturn does not honour that a project relied on (its
    value, or SimpleJWT's default for it); none in a project that never used SimpleJWT."""
    if not simplejwt_in_use():
        return []
    raw = getattr(settings, "SIMPLE_JWT", None)
    given: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    found: list[CheckMessage] = []
    if given.get("ROTATE_REFRESH_TOKENS") is not True:
        found.append(
            CheckWarning(
                "SIMPLE_JWT['ROTATE_REFRESH_TOKENS'] is not True, but Keyturn rotates on every refresh: "
                "a frontend that keeps sending its first refresh token is refused as a reuse once "
                "GRACE_PERIOD has passed, and the session ends.",
                hint="Make the frontend store the 'refresh' of each token/refresh/ answer, then set "
                "ROTATE_REFRESH_TOKENS to True.",
                id="keyturn.W001",
            )
        )
    for name, default in SERIALIZERS.items():
        if name in given and _path(given[name]) != default:
            found.append(
                CheckWarning(
                    f"SIMPLE_JWT[{name!r}] is a serializer of your own, which Keyturn's views do not run "
                    "(claims it adds are not in Keyturn's tokens).",
                    hint="Add claims with keyturn.django.start_session(request, user, claims) in a view "
                    "of your own.",
                    id="keyturn.W002",
                )
            )
    if "USER_AUTHENTICATION_RULE" in given and _path(given["USER_AUTHENTICATION_RULE"]) != DEFAULT_RULE:
        found.append(
            CheckWarning(
                "SIMPLE_JWT['USER_AUTHENTICATION_RULE'] is a rule of your own, which Keyturn does not run: "
                "it refuses users who are gone or inactive (SimpleJWT's default rule).",
                id="keyturn.W003",
            )
        )
    lifetime = given.get("ACCESS_TOKEN_LIFETIME", ACCESS_TOKEN_LIFETIME)
    keyturns = conf.load().settings.access_token_lifetime
    if isinstance(lifetime, timedelta) and lifetime.total_seconds() != keyturns:
        source = "" if "ACCESS_TOKEN_LIFETIME" in given else " (SimpleJWT's default)"
        found.append(
            CheckWarning(
                f"SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'] is {lifetime.total_seconds():g} s{source}, "
                f"but Keyturn's access tokens live KEYTURN['ACCESS_TOKEN_LIFETIME'], {keyturns} s.",
                hint="Set KEYTURN['ACCESS_TOKEN_LIFETIME'] to the lifetime you want, in seconds.",
                id="keyturn.W004",
            )
        )
    return found


def _path(value: object) -> str:
    """A dotted path as SimpleJWT takes it: a string, or the object it names."""
    if isinstance(value, str):
        return value
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
