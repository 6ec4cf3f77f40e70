"""A second DRF authentication class that takes ``Bearer`` tokens of its own, as django-oauth-toolkit's
does, for test_simplejwt_compat: ``Bearer other:<username>`` is that user; any other header is None.

Loaded by the example's processes (``_other_bearer_settings``), never by pytest itself.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

PREFIX = "other:"


class OtherBearer(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        scheme, _, token = str(request.META.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme != "Bearer" or not token.startswith(PREFIX):
            return None
        user = get_user_model().objects.filter(username=token.removeprefix(PREFIX)).first()
        if user is None:
            raise AuthenticationFailed("No such user.")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="other"'
