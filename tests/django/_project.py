"""The example project (``examples/django_simplejwt``) as real processes: gunicorn's sync workers or uvicorn.

::

    project = ExampleProject(tmp_path, database_url)
    project.manage("migrate")
    with project.serve("simplejwt") as url:        # SimpleJWT's own views, gunicorn, 2 sync workers
        ...
    with project.serve("keyturn", server="uvicorn") as url:   # keyturn.django under ASGI
        ...

Every process gets the test's environment minus ``KEYTURN_*``, the project's ``DATABASE`` (SQLite file or
PostgreSQL schema of this test), a random ``DJANGO_SECRET_KEY`` kept for the project's life (SimpleJWT signs
with it, so tokens survive the switch), and writes its output to a log the log sweep reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import _logsweep
from .._secrets import new_password
from ..e2e._resource import ResourceApp, resource_env, stop_app, wait_app_ready
from ..e2e._server import bound_line, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "django_simplejwt"
KEYTURN_SRC = ROOT / "src"
"""This checkout's src, found from this file: every process a test starts imports keyturn from here, never
from another checkout (the one an editable install points at, say)."""


def python_path(*dirs: str | Path) -> str:
    """A ``PYTHONPATH`` of ``dirs``, then this checkout's src (once, last)."""
    entries = [str(d) for d in dirs if str(d) and Path(d).resolve() != KEYTURN_SRC]
    return os.pathsep.join(dict.fromkeys([*entries, str(KEYTURN_SRC)]))


@dataclass
class User:
    username: str
    email: str
    password: str = field(repr=False)

    def credentials(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


@dataclass
class ExampleProject:
    """One example project: its database, its secret key, its processes' logs."""

    tmp_path: Path
    database: str
    env: dict[str, str] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)

    def environment(self, tokens: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A project process's environment. A ``PYTHONPATH`` in ``env`` or ``extra`` (the directory of a
        settings module, say) comes first; the example project and this checkout's src always follow."""
        given = {**self.env, **(extra or {})}
        added = given.pop("PYTHONPATH", "").split(os.pathsep)
        return resource_env(
            {
                "TOKENS": tokens,
                "DATABASE": self.database,
                "DJANGO_SECRET_KEY": self.secret_key,
                "FAST_PASSWORD_HASHER": "1",
                **given,
                "PYTHONPATH": python_path(*added, EXAMPLE),
            }
        )

    def manage(self, *args: str, tokens: str = "keyturn", stdin: str | None = None) -> str:
        """``python manage.py ARGS``; its output, or an assertion error with its log."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=EXAMPLE,
            env=self.environment(tokens),
            input=stdin,
            text=True,
            capture_output=True,
            timeout=120,
            check=False,
        )
        _logsweep.record_output(f"manage.py {args[0]}", done.stdout, done.stderr)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def shell(self, code: str, tokens: str = "keyturn") -> str:
        """Python run by ``manage.py shell`` (Django set up; the user model is ``User``)."""
        prelude = "from django.contrib.auth import get_user_model\nUser = get_user_model()\n"
        return self.manage("shell", "-c", prelude + code, tokens=tokens)

    def add_users(self, count: int, prefix: str = "user") -> list[User]:
        users = [User(f"{prefix}{i}", f"{prefix}{i}@example.com", new_password()) for i in range(count)]
        payload = json.dumps([[u.username, u.email, u.password] for u in users])
        self.shell(
            "import json, sys\n"
            f"for name, email, password in json.loads({payload!r}):\n"
            "    User.objects.create_user(name, email, password)\n"
        )
        return users

    @contextlib.contextmanager
    def serve(
        self,
        tokens: str,
        server: str = "gunicorn",
        workers: int = 2,
        extra: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """The project served on loopback; its URL while the block runs."""
        port = free_port()
        bind = f"127.0.0.1:{port}"
        if server == "gunicorn":
            command = ["-m", "gunicorn", "--workers", str(workers), "--bind", bind, "project.wsgi"]
            bound = f"Listening at: http://{bind} ("  # gunicorn's, at its default log level info
        else:
            bound = bound_line(f"http://{bind}")
            command = [
                "-m",
                "uvicorn",
                "--workers",
                str(workers),
                "--port",
                str(port),
                "project.asgi:application",
            ]
            command += ["--no-access-log"]
        log_dir = self.tmp_path / "logs"
        log_dir.mkdir(exist_ok=True)
        log = log_dir / f"{tokens}-{server}-{port}.log"
        _logsweep.watch(log, f"example {tokens} {server} :{port}")
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *command],
                cwd=EXAMPLE,
                env=self.environment(tokens, extra),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        app = ResourceApp(f"example-{tokens}", f"http://{bind}", process, log, bound)
        try:
            wait_app_ready(app, path="/api/status/")
            yield app.url
        finally:
            stop_app(app)
