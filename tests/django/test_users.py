"""Acceptance 3 of issue 14: Django's own users rule Keyturn's sessions.

Login through the project's custom authentication backend; a deactivated user, a password changed in the
admin, a deleted user: each ends the user's sessions or refuses them with the documented code.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from ._project import ExampleProject, User

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def sign_in(c: httpx.Client, user: User) -> dict[str, str]:
    answer = c.post("/api/token/", json=user.credentials())
    assert answer.status_code == 200, answer.text
    pair: dict[str, str] = answer.json()
    return pair


def assert_ended(c: httpx.Client, pair: dict[str, str], code: str = "session_revoked") -> None:
    refused = c.post("/api/token/refresh/", json={"refresh": pair["refresh"]})
    assert (refused.status_code, refused.json()["error"]) == (401, code)
    # The access token is refused as soon as the revocation feed reaches the check (polled every second).
    deadline = time.monotonic() + 10
    while (me := c.get("/api/me/", headers={"Authorization": f"Bearer {pair['access']}"})).status_code == 200:
        assert time.monotonic() < deadline, "the access token of an ended session still passes"
        time.sleep(0.2)
    assert (me.status_code, me.json()["error"]) == (401, "token_revoked")


def test_login_through_the_projects_own_backend(keyturn_project: ExampleProject) -> None:
    """The example's ``EmailBackend`` logs in by email, at SimpleJWT's route and at Keyturn's."""
    (user,) = keyturn_project.add_users(1)
    with keyturn_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        by_email = c.post("/api/token/", json={"username": user.email, "password": user.password})
        assert by_email.status_code == 200
        me = c.get("/api/me/", headers={"Authorization": f"Bearer {by_email.json()['access']}"})
        assert me.json()["username"] == user.username
        keyturn = c.post("/api/auth/login", json={"username": user.email, "password": user.password})
        assert keyturn.status_code == 200
        wrong = c.post("/api/token/", json={"username": user.email, "password": "wrong"})
        assert wrong.status_code == 401
        assert wrong.json() == {
            "detail": "No active account found with the given credentials",
            "error": "invalid_credentials",
        }


def test_a_deactivated_user_is_logged_out_and_cannot_log_in(keyturn_project: ExampleProject) -> None:
    alice, bob = keyturn_project.add_users(2)
    with keyturn_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        pairs = [sign_in(c, alice), sign_in(c, alice)]
        kept = sign_in(c, bob)
        keyturn_project.shell(
            f"u = User.objects.get(username={alice.username!r}); u.is_active = False; u.save()"
        )
        for pair in pairs:
            assert_ended(c, pair)
        assert c.post("/api/token/", json=alice.credentials()).json()["error"] == "invalid_credentials"
        assert c.post("/api/token/refresh/", json={"refresh": kept["refresh"]}).status_code == 200


def test_a_user_deactivated_behind_djangos_back_is_refused_at_refresh(
    keyturn_project: ExampleProject,
) -> None:
    """``QuerySet.update()`` sends no signal: the subject check at refresh refuses the session."""
    (alice,) = keyturn_project.add_users(1)
    with keyturn_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        pair = sign_in(c, alice)
        keyturn_project.shell(f"User.objects.filter(username={alice.username!r}).update(is_active=False)")
        assert_ended(c, pair)


def test_a_password_changed_in_the_admin_ends_every_session(keyturn_project: ExampleProject) -> None:
    (alice,) = keyturn_project.add_users(1)
    admin = User("admin", "admin@example.com", "admin-" + alice.password)
    keyturn_project.shell(
        f"User.objects.create_superuser({admin.username!r}, {admin.email!r}, {admin.password!r})"
    )
    with keyturn_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        pairs = [sign_in(c, alice), sign_in(c, alice)]
        alice_id = c.get("/api/me/", headers={"Authorization": f"Bearer {pairs[0]['access']}"}).json()["id"]
        with httpx.Client(base_url=url, timeout=30) as browser:
            page = browser.get("/admin/login/")
            token = CSRF_FIELD.search(page.text)
            assert token is not None
            fields = {"username": admin.username, "password": admin.password, "next": "/admin/"}
            signed_in = browser.post("/admin/login/", data={**fields, "csrfmiddlewaretoken": token[1]})
            assert signed_in.status_code == 302, signed_in.text[-500:]
            form = browser.get(f"/admin/auth/user/{alice_id}/password/")
            token = CSRF_FIELD.search(form.text)
            assert token is not None
            changed = browser.post(
                f"/admin/auth/user/{alice_id}/password/",
                data={
                    "csrfmiddlewaretoken": token[1],
                    "usable_password": "true",
                    "password1": "a new password for alice",
                    "password2": "a new password for alice",
                },
            )
            assert changed.status_code == 302, changed.text[-2000:]
        for pair in pairs:
            assert_ended(c, pair)
        renewed = c.post(
            "/api/token/", json={"username": alice.username, "password": "a new password for alice"}
        )
        assert renewed.status_code == 200


def test_a_deleted_user_is_logged_out(keyturn_project: ExampleProject) -> None:
    (alice,) = keyturn_project.add_users(1)
    with (
        keyturn_project.serve("keyturn", server="uvicorn") as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        pair = sign_in(c, alice)
        keyturn_project.shell(f"User.objects.get(username={alice.username!r}).delete()")
        assert_ended(c, pair)
        keyturn = c.post("/api/auth/refresh", json={"refresh_token": pair["refresh"]})
        assert (keyturn.status_code, keyturn.json()["error"]) == (401, "session_revoked")


@pytest.mark.parametrize("route", ["/api/sso/", "/api/sso-async/"])
def test_the_projects_own_sign_in_starts_a_session(keyturn_project: ExampleProject, route: str) -> None:
    """``start_session`` (sync view) and ``astart_session`` (async view), served by uvicorn: the token
    response of ``login``, with the project's claims in the access token."""
    (alice,) = keyturn_project.add_users(1)
    secret = {"SSO_SECRET": "sso-" + alice.password}
    with (
        keyturn_project.serve("keyturn", server="uvicorn", extra=secret) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        started = c.post(route, json={"email": alice.email}, headers={"X-SSO-Secret": secret["SSO_SECRET"]})
        assert started.status_code == 200, started.text
        pair = started.json()
        assert pair["token_type"] == "Bearer"
        assert started.headers["Cache-Control"] == "no-store"
        me = c.get("/api/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}).json()
        assert me["claims"]["amr"] == ["sso"]
        assert (
            c.get("/api/me/", headers={"Authorization": f"Bearer {pair['access_token']}"}).json()["username"]
            == alice.username
        )
        assert c.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 200
        assert c.post(route, json={"email": alice.email}).status_code == 404


SUBJECT_CHECK_SHAPES = """
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models
from keyturn.django.users import ActiveRead, find_user, is_active

assert ActiveRead.of(User) is not None, "the example's user model takes the one statement"
active = User.objects.create_user("active-one", "a@example.com", "a password")
inactive = User.objects.create_user("inactive-one", "i@example.com", "a password")
User.objects.filter(pk=inactive.pk).update(is_active=False)
subjects = [str(active.pk), str(inactive.pk), str(inactive.pk + 1000), "", "abc", "1.5", " 1", "-1",
            str(2**31), str(2**63), str(2**70), "0x1", "1e3"]
read = ActiveRead.of(User)
for subject in subjects:
    user = find_user(subject)
    by_orm = user is not None and is_active(user)
    assert read(subject) == by_orm, (subject, read(subject), by_orm)
assert read(str(active.pk)) and not read(str(inactive.pk))

class HidingManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(is_active=True)

class Hidden(AbstractBaseUser):
    is_active = models.BooleanField(default=True)
    objects = HidingManager()
    class Meta:
        app_label = "api"

class Computed(AbstractBaseUser):
    @property
    def is_active(self):
        return False
    class Meta:
        app_label = "api"

class Plain(AbstractBaseUser):
    class Meta:
        app_label = "api"

assert ActiveRead.of(Hidden) is None, "a manager of its own: the ORM reads the user"
assert ActiveRead.of(Computed) is None, "is_active computed: the model instance decides"
plain = ActiveRead.of(Plain)
assert plain is not None and plain.active_column is None and plain.constant is True
print("shapes ok")
"""


def test_the_subject_checks_one_statement_answers_as_the_orm(keyturn_project: ExampleProject) -> None:
    """The subject check reads the usual user model with one statement written once (it runs on every
    refresh); for every kind of subject it answers as reading the user through the ORM does, and a model
    whose manager or ``is_active`` is its own is read through the ORM."""
    assert "shapes ok" in keyturn_project.shell(SUBJECT_CHECK_SHAPES)
