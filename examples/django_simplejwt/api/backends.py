"""The project's own authentication backend: sign in with an email address instead of a username."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest


class EmailBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if not username or "@" not in username or password is None:
            return None
        user = get_user_model()._default_manager.filter(email__iexact=username).first()
        if user is not None and user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
