"""The ``keyturn`` command: serve, users, clients, sessions, keys."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from .. import __version__
from ..clients import LIST_HEADER, added_line, client_actions, listed
from ..config import Settings, load_settings, unknown_variables
from ..errors import ConfigError, KeyturnError
from ..events import emit
from ..keys import prune_keys, rotate_keys
from .runtime import Runtime, open_runtime

T = TypeVar("T")

EPILOG = """Every setting also has a KEYTURN_* environment variable (see the README); flags win over them.
With no setting at all, Keyturn keeps its SQLite store and keys under ./.keyturn/."""


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "store_url", None):
        overrides["store_url"] = args.store_url
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "cookie_mode", False):
        overrides["cookie_mode"] = True
    return load_settings(**overrides)


def _with_runtime(args: argparse.Namespace, fn: Callable[[Runtime], Awaitable[T]]) -> T:
    async def run() -> T:
        rt = await open_runtime(_settings(args))
        try:
            return await fn(rt)
        finally:
            await rt.close()

    return asyncio.run(run())


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password on: pipe it in with --password-stdin")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise ValueError("the two passwords differ")
    if not password:
        raise ValueError("the password is empty")
    return password


# -- commands ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .connections import ConnectionLimits, fit_file_limit, uvicorn_options
    from .login_gate import LoginGate
    from .logs import configure

    settings = _settings(args)

    async def preflight(rt: Runtime) -> None:
        """Opening the runtime migrates the store and makes the first keys; a failure is one clear line."""

    _with_runtime(args, preflight)
    configure(args.log_level)
    emit(
        "server.starting",
        version=__version__,
        url=f"http://{args.host}:{args.port}",
        store=settings.store_url_for_display,
        docs="/docs",
    )
    limits = ConnectionLimits(
        head_timeout=settings.http_head_timeout,
        body_timeout=settings.http_body_timeout,
        max_head_bytes=settings.http_max_header_bytes,
        max_headers=settings.http_max_headers,
        max_connections=fit_file_limit(settings.http_max_connections),
    )
    app = LoginGate(create_app(settings), f"{settings.route_prefix}/login")
    uvicorn.run(
        app,
        **uvicorn_options(limits, settings.http_idle_timeout),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        server_header=False,
        log_config=None,  # logs.configure has set up every logger, as JSON lines
        # uvicorn's own handling would believe X-Forwarded-For from 127.0.0.1 (its default); Keyturn reads
        # the header itself, from KEYTURN_TRUSTED_PROXIES only (server/proxies.py).
        proxy_headers=False,
    )
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    password = _read_password(args)

    async def run(rt: Runtime) -> int:
        if await rt.users.add(args.name, password):
            print(f"added user {args.name}")
            return 0
        if args.exist_ok:
            print(f"user {args.name} already exists; left as it is")
            return 0
        print(f"keyturn: error: user {args.name} already exists", file=sys.stderr)
        return 1

    return _with_runtime(args, run)


def cmd_users_passwd(args: argparse.Namespace) -> int:
    password = _read_password(args)

    async def run(rt: Runtime) -> int:
        if not await rt.users.set_password(args.name, password):
            print(f"keyturn: error: no user {args.name}", file=sys.stderr)
            return 1
        print(f"changed the password of {args.name}; every session of theirs has ended")
        return 0

    return _with_runtime(args, run)


def _cmd_users_flag(disabled: bool) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        async def run(rt: Runtime) -> int:
            if not await rt.users.set_disabled(args.name, disabled):
                print(f"keyturn: error: no user {args.name}", file=sys.stderr)
                return 1
            print(f"{'disabled' if disabled else 'enabled'} {args.name}")
            return 0

        return _with_runtime(args, run)

    return command


def cmd_users_list(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        for user in await rt.users.list():
            state = "disabled" if user.disabled else "active"
            print(f"{user.username}\t{state}\tcreated {_time(user.created_at)}")
        return 0

    return _with_runtime(args, run)


def cmd_clients_add(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        added = await rt.clients.add(args.client_id, confidential=args.confidential, dpop=args.dpop)
        if added is None:
            print(f"keyturn: error: client {args.client_id} already exists", file=sys.stderr)
            return 1
        print(added_line(added.record))
        if added.secret is not None:
            print(f"client_secret: {added.secret}")
            print("(shown this once: only a hash of it is kept)", file=sys.stderr)
        return 0

    return _with_runtime(args, run)


def cmd_clients_list(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        print(LIST_HEADER)
        for client in await rt.clients.list():
            print(listed(client))
        return 0

    return _with_runtime(args, run)


def cmd_clients_remove(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        if not await rt.clients.remove(args.client_id):
            print(f"keyturn: error: no client {args.client_id}", file=sys.stderr)
            return 1
        print(f"removed client {args.client_id}; its sessions stay until they end")
        return 0

    return _with_runtime(args, run)


def cmd_sessions_list(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        if args.user:
            found = await rt.store.list_sessions(args.user, include_revoked=args.all)
        else:
            found = await rt.store.list_all_sessions(include_revoked=args.all)
        print("SESSION\tSUBJECT\tSTATE\tCREATED\tLAST SEEN\tENDS")
        for s in found:
            state = s.state if s.revoked_reason is None else f"{s.state} ({s.revoked_reason})"
            print(
                f"{s.sid}\t{s.sub}\t{state}\t{_time(s.created_at)}\t{_time(s.last_seen_at)}\t"
                f"{_time(s.absolute_expires_at)}"
            )
        return 0

    return _with_runtime(args, run)


def cmd_sessions_revoke(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        if args.user:
            sids = await rt.sessions.revoke_all(args.target, "revoked")
            print(f"revoked {len(sids)} session(s) of {args.target}")
            return 0
        if await rt.sessions.revoke(args.target, "revoked"):
            print(f"revoked session {args.target}")
            return 0
        print(f"keyturn: error: no active session {args.target}", file=sys.stderr)
        return 1

    return _with_runtime(args, run)


def cmd_keys_show(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        stored = await rt.store.list_keys()
        if args.jwks:
            print(json.dumps(rt.sessions.keys.jwks(), indent=2))
            return 0
        ring = rt.sessions.keys
        print("KID\tUSE\tALG\tCREATED\tSIGNING")
        for key in stored:
            signing = key.kid in (ring.active_access.kid, ring.active_refresh.kid)
            print(f"{key.kid}\t{key.use}\t{key.alg}\t{_time(key.created_at)}\t{'yes' if signing else 'no'}")
        return 0

    return _with_runtime(args, run)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        ring = await rotate_keys(rt.store, rt.master, rt.settings, rt.sessions.clock)
        print(
            f"new signing keys: access {ring.active_access.kid} ({ring.active_access.alg}), "
            f"refresh {ring.active_refresh.kid}; the old ones still verify"
        )
        return 0

    return _with_runtime(args, run)


def cmd_keys_prune(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        retired = await prune_keys(rt.store, rt.settings, rt.sessions.clock, dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        for key in retired:
            print(f"{verb} {key.kid}\t{key.use}\t{key.alg}\t{_time(key.created_at)}")
        print(f"{verb} {len(retired)} retired key(s)")
        return 0

    return _with_runtime(args, run)


def cmd_migrate(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        # Opening the store applied every migration it lacked.
        print(f"the store at {rt.settings.store_url_for_display} is up to date")
        return 0

    return _with_runtime(args, run)


def cmd_prune(args: argparse.Namespace) -> int:
    async def run(rt: Runtime) -> int:
        removed = await rt.sessions.prune()
        print(f"removed {removed} expired record(s)")
        return 0

    return _with_runtime(args, run)


# -- parser --------------------------------------------------------------------------------------


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="store URL (KEYTURN_STORE_URL; default sqlite:///<data dir>/keyturn.db)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the master secret and the SQLite file live (KEYTURN_DATA_DIR; default .keyturn)",
    )


def _password_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of a prompt",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keyturn",
        description="Keyturn token service: JWT sessions with rotation, reuse detection and revocation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"keyturn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the token service", epilog=EPILOG)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    _store_flags(serve)
    serve.add_argument(
        "--cookie-mode",
        action="store_true",
        help="send the refresh token only in an HttpOnly cookie (KEYTURN_COOKIE_MODE)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default info)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    users = commands.add_parser("users", help="manage the built-in user store").add_subparsers(
        dest="users_command", required=True, metavar="ACTION"
    )
    add = users.add_parser("add", help="add a user (asks for the password)")
    add.add_argument(
        "name", help="stored normalised (NFKC, case folded); letters of one script (or CJK's combinations)"
    )
    _password_flags(add)
    add.add_argument("--exist-ok", action="store_true", help="succeed without change if the user exists")
    _store_flags(add)
    add.set_defaults(func=cmd_users_add)
    passwd = users.add_parser("passwd", help="change a password (ends all the user's sessions)")
    passwd.add_argument("name")
    _password_flags(passwd)
    _store_flags(passwd)
    passwd.set_defaults(func=cmd_users_passwd)
    for action, disabled, text in (
        ("disable", True, "disable a user (ends all their sessions)"),
        ("enable", False, "enable a disabled user"),
    ):
        flag = users.add_parser(action, help=text)
        flag.add_argument("name")
        _store_flags(flag)
        flag.set_defaults(func=_cmd_users_flag(disabled))
    users_list = users.add_parser("list", help="list users")
    _store_flags(users_list)
    users_list.set_defaults(func=cmd_users_list)

    clients = commands.add_parser("clients", help="manage registered OAuth 2.0 clients").add_subparsers(
        dest="clients_command", required=True, metavar="ACTION"
    )
    client_parsers = client_actions(clients)
    for action, func in (
        ("add", cmd_clients_add),
        ("list", cmd_clients_list),
        ("remove", cmd_clients_remove),
    ):
        _store_flags(client_parsers[action])
        client_parsers[action].set_defaults(func=func)

    sessions = commands.add_parser("sessions", help="inspect and end sessions").add_subparsers(
        dest="sessions_command", required=True, metavar="ACTION"
    )
    s_list = sessions.add_parser("list", help="list active sessions")
    s_list.add_argument("--user", metavar="NAME", help="only this subject's sessions")
    s_list.add_argument("--all", action="store_true", help="include revoked sessions")
    _store_flags(s_list)
    s_list.set_defaults(func=cmd_sessions_list)
    s_revoke = sessions.add_parser("revoke", help="end a session (or, with --user, all of a user's)")
    s_revoke.add_argument(
        "target", metavar="SESSION_ID|NAME", help="put -- before one that starts with - (-- -name)"
    )
    s_revoke.add_argument(
        "--user", action="store_true", help="TARGET is a subject: end every session of theirs"
    )
    _store_flags(s_revoke)
    s_revoke.set_defaults(func=cmd_sessions_revoke)

    keys = commands.add_parser("keys", help="inspect, rotate and prune signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    show = keys.add_parser("show", help="list the signing keys (never their private parts)")
    show.add_argument("--jwks", action="store_true", help="print the public JWKS instead")
    _store_flags(show)
    show.set_defaults(func=cmd_keys_show)
    rotate = keys.add_parser("rotate", help="make new signing keys; running servers pick them up")
    _store_flags(rotate)
    rotate.set_defaults(func=cmd_keys_rotate)
    k_prune = keys.add_parser(
        "prune",
        help="delete keys replaced longer ago than any token they signed can live (they leave the JWKS)",
    )
    k_prune.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    _store_flags(k_prune)
    k_prune.set_defaults(func=cmd_keys_prune)
    migrate = commands.add_parser("migrate", help="bring the store's schema up to date")
    _store_flags(migrate)
    migrate.set_defaults(func=cmd_migrate)
    prune = commands.add_parser(
        "prune", help="delete expired sessions, revocations, DPoP proof ids and full rate-limit buckets"
    )
    _store_flags(prune)
    prune.set_defaults(func=cmd_prune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for warning in unknown_variables(os.environ):
        print(f"keyturn: warning: {warning}", file=sys.stderr)
    try:
        code: int = args.func(args)
    except (ConfigError, ValidationError, ValueError, OSError) as exc:
        print(f"keyturn: error: {exc}", file=sys.stderr)
        return 2
    except KeyturnError as exc:
        print(f"keyturn: error: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
