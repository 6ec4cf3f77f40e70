"""Set up the example project for the comparison, or mint sessions on it.

    python _django_project.py setup USER < password      # migrate, add USER
    python _django_project.py mint USER COUNT             # COUNT {"refresh", "access"} lines

with ``DJANGO_SETTINGS_MODULE=django_settings`` and the example project and this directory on
``PYTHONPATH``. Minting starts sessions as ``POST /api/token/`` does once the password has been checked
(``keyturn.django.start_session``'s core), so that the benchmark hashes no password per session.
"""

from __future__ import annotations

import json
import sys

import django


def setup(username: str) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    password = sys.stdin.readline().strip()
    model = get_user_model()
    user = model.objects.filter(username=username).first() or model(username=username)
    user.set_password(password)
    user.save()


def mint(username: str, count: int) -> None:
    from django.contrib.auth import get_user_model

    from keyturn.django.service import service

    subject = str(get_user_model().objects.get(username=username).pk)
    claims = {"user_id": int(subject)}
    for _ in range(count):
        pair = service().run(
            lambda rt: rt.sessions.start(subject, claims, user_agent="keyturn-bench", ip="127.0.0.1")
        )
        print(json.dumps({"refresh": pair.refresh_token, "access": pair.access_token}))


if __name__ == "__main__":
    django.setup()
    if len(sys.argv) == 3 and sys.argv[1] == "setup":
        setup(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "mint":
        mint(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit("usage: python _django_project.py setup USER < password | mint USER COUNT")
