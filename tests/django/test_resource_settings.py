"""``settings.KEYTURN`` of a resource server (``keyturn.middleware.django``): ``ROUTE_PREFIX`` beside
``STORE_URL`` is ignored, as a store has no routes, instead of failing the first request with a
``TypeError`` from ``AccessTokenVerifier.for_store``. Found by an audit of the settings docs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..e2e._resource import resource_env
from ._project import python_path

PROJECT = """
import json, sys
import django
from django.conf import settings
from django.http import JsonResponse
from django.urls import path

settings.configure(
    SECRET_KEY="x" * 50,
    ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    DATABASES={},
    MIDDLEWARE=["keyturn.middleware.django.KeyturnMiddleware"],
    KEYTURN=json.loads(sys.argv[1]),
    SILENCED_SYSTEM_CHECKS=json.loads(sys.argv[2]),
)
django.setup()
urlpatterns = [path("whoami", lambda request: JsonResponse({"token": request.keyturn_token is not None}))]

from django.test import Client

client = Client()
passes = client.get("/whoami")
refused = client.get("/whoami", HTTP_AUTHORIZATION="Bearer not-a-token")
answers = [passes.status_code, json.loads(passes.content), refused.status_code, json.loads(refused.content)]
print(json.dumps(answers))
"""


@pytest.mark.parametrize(
    "keyturn",
    [{"STORE_URL": "memory://", "ROUTE_PREFIX": "/api/auth"}, {"STORE_URL": "memory://"}],
    ids=["with-route-prefix", "without"],
)
def test_a_store_backed_project_starts_with_or_without_route_prefix(keyturn: dict[str, str]) -> None:
    """The middleware is built from the settings and answers: a request without a token passes, a bad token
    is 401 ``token_invalid`` (before: ``TypeError`` with ``ROUTE_PREFIX``)."""
    done = run_project(keyturn)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])[:3] == [200, {"token": False}, 401]
    assert json.loads(done.stdout.splitlines()[-1])[3]["error"] == "token_invalid"


def run_project(
    keyturn: dict[str, object], silenced: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROJECT, json.dumps(keyturn), json.dumps(list(silenced))],
        env=resource_env({"PYTHONPATH": python_path()}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_token_services_settings_in_a_copied_keyturn_dict_are_ignored() -> None:
    """One ``KEYTURN`` dict copied from the token service's project (``keyturn.django``) into a resource
    server's: the settings of the token service (``ACCESS_TOKEN_LIFETIME``, ``SECRET_KEY``, any
    ``KEYTURN_*`` one, and keyturn.django's ``DATABASE`` and ``SIMPLEJWT_MIGRATION_UNTIL``) are ignored, the
    ones both read (``LEEWAY``, ``ISSUER``) are taken. Before: ``TypeError`` from ``get_verifier``."""
    copied = {
        "STORE_URL": "memory://",
        "ACCESS_TOKEN_LIFETIME": 300,
        "SIMPLEJWT_MIGRATION_UNTIL": "2099-01-01",
        "DATABASE": "default",
        "GRACE_PERIOD": 30,
        "SECRET_KEY": "s" * 40,
        "RATE_LIMITS": False,
        "COOKIE_HOST_PREFIX": True,
        "LEEWAY": 5,
        "ISSUER": "keyturn",
    }
    done = run_project(copied)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.splitlines()[-1])
    assert answers[:3] == [200, {"token": False}, 401]
    assert answers[3]["error"] == "token_invalid"


@pytest.mark.parametrize("typo", ["REVOCATION_POLL_INTERVALL", "SERVICE_URI", "CLOCK", "ON_START"])
def test_an_unknown_keyturn_key_is_a_config_error_naming_it(typo: str) -> None:
    """A key neither the resource server nor the token service reads (a typo) stops the process with a
    ``ConfigError`` that names it, not a ``TypeError`` about a keyword argument. ``AccessTokenVerifier``'s
    parameters that are objects of the code (``CLOCK``, ``TIMER``, ``ON_START``, ``ON_CLOSE``) are no
    settings either, and the error does not offer them. Before: those four were taken as settings (a
    ``CLOCK`` of 1 failed at the first request) and listed as keys a resource server reads."""
    done = run_project({"STORE_URL": "memory://", typo: 1})
    assert done.returncode != 0
    assert f"keyturn.errors.ConfigError: settings.KEYTURN[{typo!r}]" in done.stderr, done.stderr[-3000:]
    (message,) = [line for line in done.stderr.splitlines() if "ConfigError: settings.KEYTURN[" in line]
    assert "REVOCATION_POLL_INTERVAL" in message
    assert not {"CLOCK", "TIMER", "ON_START", "ON_CLOSE"} & set(message.replace(",", " ").split())


CHECK = """
import json, sys
import django
from django.conf import settings
from django.core.management import call_command

settings.configure(SECRET_KEY="x" * 50, DATABASES={}, KEYTURN=json.loads(sys.argv[1]))
django.setup()
import keyturn.middleware.django  # a project that imports it as Django sets up (its views, an app)

call_command("check")
"""


@pytest.mark.parametrize(
    ("keyturn", "named"),
    [
        ({"DPOP_NONCES": True, "DPOP_BIND_ACCESS_TOKENS": True}, ["DPOP_NONCES", "DPOP_BIND_ACCESS_TOKENS"]),
        ({"SECRET_KEY": "s" * 40, "GRACE_PERIOD": 30}, ["SECRET_KEY"]),
        ({"GRACE_PERIOD": 30, "ACCESS_TOKEN_LIFETIME": 300, "LEEWAY": 5}, []),
    ],
    ids=["dpop", "secret-key", "plainly-the-token-services"],
)
def test_token_service_keys_that_look_like_resource_settings_are_warned_of(
    keyturn: dict[str, object], named: list[str]
) -> None:
    """A resource server's ``KEYTURN`` with ``DPOP_NONCES`` (the operator believes its resources ask for
    nonces), ``DPOP_BIND_ACCESS_TOKENS`` or ``SECRET_KEY``: ``manage.py check`` warns (``keyturn.W005``)
    naming them and saying they apply at the token service, and the process that builds the verifier
    logs the same (gunicorn runs no check); keys plainly the token service's draw nothing. Before: they
    were ignored without a word."""
    keyturn = {"STORE_URL": "memory://", **keyturn}
    checked = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(keyturn)],
        env=resource_env({"PYTHONPATH": python_path()}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    served = run_project(keyturn)
    assert served.returncode == 0, served.stderr[-3000:]
    for output in (checked.stderr, served.stderr):
        warned = [line for line in output.splitlines() if "(keyturn.W005)" in line]
        if not named:
            assert warned == [], output
            continue
        (line,) = warned
        assert "apply at the token service" in line
        assert all(name in line for name in named), line


def test_a_silenced_w005_is_not_logged_either() -> None:
    """The hint says to silence ``keyturn.W005`` where one ``KEYTURN`` dict serves both projects: then the
    process building the verifier does not log it either (before: logged whatever was silenced)."""
    keyturn = {"STORE_URL": "memory://", "DPOP_NONCES": True}
    loud, quiet = run_project(keyturn), run_project(keyturn, silenced=("keyturn.W005",))
    assert loud.returncode == quiet.returncode == 0, (loud.stderr + quiet.stderr)[-3000:]
    assert "(keyturn.W005)" in loud.stderr
    assert "(keyturn.W005)" not in quiet.stderr
