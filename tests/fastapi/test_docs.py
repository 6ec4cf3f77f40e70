"""docs/fastapi.md, run as written: its ``app.py`` blocks served by its command, and the example app started
by its one command and walked through by its script (only ports and directories differ)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from .. import _logsweep
from ..e2e._http import assert_error, bearer
from ..e2e._server import bound_line, free_port, keyturn_env

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "fastapi.md").read_text()
BIN = Path(sys.executable).parent


def blocks(tag: str) -> list[str]:
    """The code blocks marked ``<!-- tag -->``, in order."""
    found = re.findall(rf"<!-- {re.escape(tag)} -->\s*```[a-z]*\n(.*?)```", DOC, re.DOTALL)
    assert found, f"docs/fastapi.md has no block marked {tag}"
    return found


@contextlib.contextmanager
def serving(command: str, cwd: Path, port: int, log: Path, env: dict[str, str]) -> Iterator[str]:
    """``command`` (a shell line) running in its own process group until the block ends."""
    _logsweep.watch(log, f"docs/fastapi.md :{port}")
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            # Until uvicorn says it holds the port, an answer could be another process's that took it.
            if bound_line(url) in log.read_text(errors="replace"):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/.well-known/jwks.json", timeout=1).status_code == 200:
                        break
            assert time.monotonic() < deadline, f"not serving: {log.read_text()}"
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        _logsweep.collect(log)


def test_the_app_py_blocks_serve_as_the_page_says(tmp_path: Path) -> None:
    """The page's app, assembled from its blocks and served by its command: login with its fields, the
    claims in the token, the protected route, the magic link's session, and a logout reaching the route."""
    (tmp_path / "app.py").write_text("\n\n".join(blocks("app.py")))
    (command,) = blocks("serve app.py")
    port = free_port()
    assert "--port 8000" in command
    command = command.strip().replace("--port 8000", f"--port {port}")
    env = keyturn_env(tmp_path / "unused")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    with (
        serving(command, tmp_path, port, tmp_path / "app.log", env) as url,
        httpx.Client(base_url=url) as http,
    ):
        assert (tmp_path / ".keyturn" / "keyturn.db").exists()  # KEYTURN_DATA_DIR=./.keyturn, as written
        wrong = http.post("/auth/login", json={"email": "ada@example.com", "password": "wrong"})
        assert_error(wrong, 401, "invalid_credentials")
        login = http.post(
            "/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"}
        )
        assert login.status_code == 200, login.text
        tokens = login.json()
        me = http.get("/api/me", headers=bearer(tokens["access_token"]))
        assert me.json() == {"user": "ada@example.com", "roles": ["admin"]}
        rotated = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200
        link = http.post("/magic-link/link-for-ada")
        assert link.status_code == 200
        assert link.json()["session_id"] != tokens["session_id"]
        assert http.post("/magic-link/link-for-ada").status_code == 404
        access = bearer(rotated.json()["access_token"])
        assert http.post("/auth/logout", headers=access).status_code == 200
        deadline = time.monotonic() + 5
        while http.get("/api/me", headers=access).status_code == 200:
            assert time.monotonic() < deadline, "the logout never reached /api/me"
            time.sleep(0.05)
        assert_error(http.get("/api/me", headers=access), 401, "token_revoked")


def test_the_example_starts_with_one_command_and_walks_through_as_written(tmp_path: Path) -> None:
    """``make example``, then the walk-through script, each as the page has them."""
    (command,) = blocks("example command")
    (script,) = blocks("example walkthrough")
    assert command.strip() == "make example"
    port = free_port()
    data = tmp_path / "example-data"
    # The venv is this test run's own: make must not reinstall it (-o: treat its stamp as up to date).
    command = f"make -o .venv/.installed example EXAMPLE_DIR={data} EXAMPLE_PORT={port}"
    assert "BASE=http://127.0.0.1:8001" in script
    script = script.replace("BASE=http://127.0.0.1:8001", f"BASE=http://127.0.0.1:{port}")
    script = script.replace(".keyturn-example", str(data))
    env = keyturn_env(data)
    env.pop("KEYTURN_DATA_DIR")
    with serving(command, ROOT, port, tmp_path / "example.log", env):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '{"user":"1","roles":["reader"]}'
    assert lines[1] == "insufficient_scope"
    assert lines[2] == '{"user":"1","reports":["q1","q2"]}'
    assert lines[3].startswith('{"revoked_sessions":["')
    assert lines[4] == "token_revoked"
    assert len(lines) == 5
