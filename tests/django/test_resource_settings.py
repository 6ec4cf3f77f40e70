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
    done = subprocess.run(
        [sys.executable, "-c", PROJECT, json.dumps(keyturn)],
        env=resource_env({"PYTHONPATH": python_path()}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])[:3] == [200, {"token": False}, 401]
    assert json.loads(done.stdout.splitlines()[-1])[3]["error"] == "token_invalid"
