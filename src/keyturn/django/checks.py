"""Django system checks: the ``SIMPLE_JWT`` settings a project set that Keyturn does not read, and which
change what a frontend or the project sees after the switch (docs/django.md, SimpleJWT's settings).

Warnings, not errors: each names what Keyturn does instead; ``SILENCED_SYSTEM_CHECKS`` silences one once
it is understood. Registered by the app's ``ready()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage
from django.core.checks import Warning as CheckWarning

from . import conf

__all__ = ["simplejwt_settings"]

SERIALIZERS = {
    "TOKEN_OBTAIN_SERIALIZER": "rest_framework_simplejwt.serializers.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "rest_framework_simplejwt.serializers.TokenRefreshSerializer",
    "TOKEN_VERIFY_SERIALIZER": "rest_framework_simplejwt.serializers.TokenVerifySerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "rest_framework_simplejwt.serializers.TokenBlacklistSerializer",
}
"""SimpleJWT's defaults for the serializers of the four routes Keyturn's views replace."""
DEFAULT_RULE = "rest_framework_simplejwt.authentication.default_user_authentication_rule"


def simplejwt_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A warning for each setting of ``SIMPLE_JWT`` Keyturn does not honour that a project relied on."""
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
    lifetime = given.get("ACCESS_TOKEN_LIFETIME")
    keyturns = conf.load().settings.access_token_lifetime
    if isinstance(lifetime, timedelta) and lifetime.total_seconds() != keyturns:
        found.append(
            CheckWarning(
                f"SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'] is {lifetime.total_seconds():g} s, but Keyturn's "
                f"access tokens live KEYTURN['ACCESS_TOKEN_LIFETIME'], {keyturns} s.",
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
