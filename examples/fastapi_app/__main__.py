"""The example's command: ``serve``, and ``users add EMAIL [--roles a,b]``, ``users roles EMAIL a,b``,
``users disable EMAIL``: ``python -m examples.fastapi_app serve``.

Settings are Keyturn's ``KEYTURN_*`` variables (``KEYTURN_DATA_DIR`` holds the SQLite files);
``EXAMPLE_DATABASE_URL`` moves the users table elsewhere. ``users add`` reads the password from stdin.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from keyturn.config import Settings

from .users import Users


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.fastapi_app")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the app with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--access-log", action="store_true", help="log every request")
    users = commands.add_parser("users", help="the app's own users").add_subparsers(
        dest="action", required=True
    )
    add = users.add_parser("add", help="add a user; the password comes on stdin")
    add.add_argument("email")
    add.add_argument("--roles", default="reader")
    add.add_argument("--exist-ok", action="store_true", help="succeed if the email is taken")
    roles = users.add_parser("roles", help="set a user's roles (the next access token carries them)")
    roles.add_argument("email")
    roles.add_argument("roles")
    disable = users.add_parser("disable", help="disable a user (refused at the next refresh)")
    disable.add_argument("email")
    args = parser.parse_args(argv)

    if args.command == "serve":
        uvicorn.run(
            "examples.fastapi_app.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            access_log=args.access_log,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For is trusted only from KEYTURN_TRUSTED_PROXIES
        )
        return 0
    from .app import database_url

    table = Users(database_url(Settings()))
    if args.action == "add":
        password = sys.stdin.readline().rstrip("\n")
        if table.add(args.email, password, _roles(args.roles)) is None:
            if args.exist_ok:
                return 0
            print(f"{args.email} exists", file=sys.stderr)
            return 1
        return 0
    if args.action == "roles":
        done = table.update(args.email, roles=_roles(args.roles))
    else:
        done = table.update(args.email, disabled=True)
    if not done:
        print(f"no such user: {args.email}", file=sys.stderr)
    return 0 if done else 1


def _roles(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


if __name__ == "__main__":
    sys.exit(main())
