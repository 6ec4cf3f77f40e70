"""A command-line program that keeps its Keyturn session in a ``FileTokenStore``, run as its own process.

``python -m tests.e2e.apps.token_file_client login --url URL --file PATH``: logs in as ``TOKEN_FILE_USER``
(default ``alice``) with the password in ``TOKEN_FILE_PASSWORD``, stores the pair in ``PATH`` and exits.

``python -m tests.e2e.apps.token_file_client resume --url URL --file PATH [--go GO]``: once the file ``GO``
exists (if given), starts from the pair in ``PATH`` without logging in, sends ``GET /auth/me`` at once,
then again once the access token it started with has expired (so it refreshes first), and exits.

``python -m tests.e2e.apps.token_file_client hold --url URL --file PATH --loaded LOADED --go GO``: starts
from the pair in ``PATH`` at once and creates ``LOADED``; once ``GO`` exists (another run may have
refreshed the pair in the file meanwhile), sends ``GET /auth/me`` and exits.

Each prints one JSON line of statuses and session ids; never a token.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path

import httpx

from keyturn.client import FileTokenStore, KeyturnAuth, SessionEnded, TokenManager

DEADLINE = 60.0


def login(url: str, path: Path) -> dict[str, object]:
    password = os.environ.get("TOKEN_FILE_PASSWORD")
    if not password:
        raise SystemExit("TOKEN_FILE_PASSWORD must be set")
    manager = TokenManager(url, store=FileTokenStore(path))
    tokens = manager.login(os.environ.get("TOKEN_FILE_USER", "alice"), password)
    manager.close()
    return {"logged_in": True, "session_id": tokens.session_id}


def exp_of(token: str) -> float:
    payload = token.split(".")[1]
    exp: float = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
    return exp


def wait_for(go: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the go file never appeared")
        time.sleep(0.02)


def resume(url: str, path: Path, go: Path | None) -> dict[str, object]:
    if go is not None:
        wait_for(go)
    manager = TokenManager(url, store=FileTokenStore(path), refresh_margin=0.1, jitter=0.0)
    if manager.tokens is None:
        raise SystemExit("no pair in the file")
    started_with = manager.tokens.access_token
    result: dict[str, object] = {"state_at_start": manager.state}

    def call(name: str) -> None:
        with httpx.Client(base_url=url, auth=KeyturnAuth(manager), timeout=30) as http:
            response = http.get("/auth/me")
        body = response.json() if response.status_code == 200 else {}
        result[name] = {
            "status": response.status_code,
            "session_id": body.get("session", {}).get("session_id"),
            "refreshes": manager.refreshes,
        }
        result[name + "_with_file_token"] = manager.tokens is not None and (
            manager.tokens.access_token == started_with
        )

    call("first")
    until = exp_of(started_with) + 0.1  # its token has expired on the server: the next call refreshes
    while (left := until - manager.server_now()) > 0:
        time.sleep(min(left, 0.5))
    call("second")
    manager.close()
    return result


def hold(url: str, path: Path, loaded: Path, go: Path) -> dict[str, object]:
    manager = TokenManager(url, store=FileTokenStore(path), refresh_margin=0.1, jitter=0.0)
    if manager.tokens is None:
        raise SystemExit("no pair in the file")
    loaded.touch()
    wait_for(go)
    try:
        with httpx.Client(base_url=url, auth=KeyturnAuth(manager), timeout=30) as http:
            response = http.get("/auth/me")
    except SessionEnded as ended:
        return {"ended": ended.reason, "refreshes": manager.refreshes}
    finally:
        manager.close()
    body = response.json() if response.status_code == 200 else {}
    return {
        "status": response.status_code,
        "session_id": body.get("session", {}).get("session_id"),
        "refreshes": manager.refreshes,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["login", "resume", "hold"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--go", type=Path)
    parser.add_argument("--loaded", type=Path)
    args = parser.parse_args()
    if args.mode == "login":
        result = login(args.url, args.file)
    elif args.mode == "resume":
        result = resume(args.url, args.file, args.go)
    else:
        result = hold(args.url, args.file, args.loaded, args.go)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
