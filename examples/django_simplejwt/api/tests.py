"""The project's own tests, with Django's test runner: ``TOKENS=keyturn python manage.py test api``."""

from django.contrib.auth import get_user_model
from django.test import TestCase
from django.test.utils import override_settings


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class TokensTests(TestCase):
    def setUp(self) -> None:
        get_user_model().objects.create_user("carol", "carol@example.com", "carol's password")

    def test_login_refresh_and_me(self) -> None:
        pair = self.client.post(
            "/api/token/",
            {"username": "carol", "password": "carol's password"},
            content_type="application/json",
        ).json()
        assert set(pair) == {"access", "refresh"}
        refreshed = self.client.post(
            "/api/token/refresh/", {"refresh": pair["refresh"]}, content_type="application/json"
        )
        assert refreshed.status_code == 200
        again = self.client.post(
            "/api/token/refresh/", {"refresh": pair["refresh"]}, content_type="application/json"
        )
        assert again.json()["refresh"] == refreshed.json()["refresh"]  # the grace period
        me = self.client.get("/api/me/", headers={"Authorization": f"Bearer {refreshed.json()['access']}"})
        assert me.json()["username"] == "carol"

    def test_a_wrong_password_is_refused(self) -> None:
        refused = self.client.post(
            "/api/token/", {"username": "carol", "password": "wrong"}, content_type="application/json"
        )
        assert refused.status_code == 401
