"""The ``keyturn`` command against a data directory that a running server shares."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ._http import assert_error, jwt_parts, login, me, refresh, why
from ._server import Cluster, add_user, cluster, keyturn_env, run_cli, start_servers, stop_server

KEYTURN_SCRIPT = Path(sys.executable).with_name("keyturn")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One server whose data directory the CLI works on while it runs."""
    with cluster(tmp_path_factory.mktemp("cli")) as group:
        yield group


def ok(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    """Run ``keyturn ARGS``, expect exit 0, return its standard output."""
    done = run_cli(data_dir, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.returncode, done.stderr)
    return done.stdout


def table(output: str, *, header: bool = True) -> list[list[str]]:
    """The rows of a tab-separated listing, its header line (if it has one) left out."""
    return [line.split("\t") for line in output.splitlines()[1 if header else 0 :] if line]


def users(data_dir: Path) -> dict[str, list[str]]:
    """``keyturn users list`` by name: name, state, created."""
    return {row[0]: row for row in table(ok(data_dir, "users", "list"), header=False)}


def session_states(data_dir: Path, user: str) -> dict[str, str]:
    rows = table(ok(data_dir, "sessions", "list", "--user", user, "--all"))
    return {row[0]: row[2] for row in rows}


# -- help ----------------------------------------------------------------------------------------

HELP_COMMANDS = [
    [],
    ["serve"],
    ["users"],
    ["users", "add"],
    ["users", "list"],
    ["users", "passwd"],
    ["users", "disable"],
    ["users", "enable"],
    ["clients"],
    ["clients", "add"],
    ["clients", "list"],
    ["clients", "remove"],
    ["sessions"],
    ["sessions", "list"],
    ["sessions", "revoke"],
    ["keys"],
    ["keys", "show"],
    ["keys", "rotate"],
    ["migrate"],
    ["prune"],
]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "keyturn")
def test_help_exits_zero(tmp_path: Path, command: list[str]) -> None:
    """Every command explains itself, through the installed ``keyturn`` script."""
    assert KEYTURN_SCRIPT.exists(), "the keyturn console script is not installed in this environment"
    done = subprocess.run(
        [str(KEYTURN_SCRIPT), *command, "--help"],
        capture_output=True,
        text=True,
        env=keyturn_env(tmp_path / "unused"),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: keyturn {' '.join(command)}".rstrip())
    assert done.stderr == ""
    # --help does not create a data directory as a side effect.
    assert not (tmp_path / "unused").exists()


def test_no_command_exits_non_zero_with_usage(tmp_path: Path) -> None:
    """A bare ``keyturn`` is a usage error, not a silent success."""
    done = run_cli(tmp_path / "data")
    assert done.returncode == 2
    assert "usage: keyturn" in done.stderr


# -- users ---------------------------------------------------------------------------------------


def test_users_add_and_list(cli: Cluster) -> None:
    """An added user is listed as active and can log in with the password given on stdin."""
    assert "added user uma" in ok(cli.data_dir, "users", "add", "uma", "--password-stdin", stdin="pw-uma-1\n")
    listed = users(cli.data_dir)
    assert listed["uma"][1] == "active"
    assert listed[cli.username][1] == "active"
    with cli.server.client() as http:
        login(http, "uma", "pw-uma-1")


def test_users_add_duplicate_fails_clearly_unless_exist_ok(cli: Cluster) -> None:
    """Adding a name twice is an error that says so; --exist-ok makes it a no-op that keeps the password."""
    ok(cli.data_dir, "users", "add", "vic", "--password-stdin", stdin="pw-vic-1\n")
    again = run_cli(cli.data_dir, "users", "add", "vic", "--password-stdin", stdin="pw-vic-2\n")
    assert again.returncode != 0
    assert "vic" in again.stderr
    assert "already exists" in again.stderr
    tolerated = run_cli(
        cli.data_dir, "users", "add", "vic", "--password-stdin", "--exist-ok", stdin="pw-vic-3\n"
    )
    assert tolerated.returncode == 0, tolerated.stderr
    assert "already exists" in tolerated.stdout
    with cli.server.client() as http:
        login(http, "vic", "pw-vic-1")
        assert_error(
            http.post("/auth/login", json={"username": "vic", "password": "pw-vic-3"}),
            401,
            "invalid_credentials",
        )


def test_users_add_refuses_an_empty_password(cli: Cluster) -> None:
    """An empty password is refused with a message, and no user is made."""
    done = run_cli(cli.data_dir, "users", "add", "wes", "--password-stdin", stdin="\n")
    assert done.returncode != 0
    assert "password" in done.stderr
    assert "wes" not in users(cli.data_dir)


def test_users_passwd_ends_the_users_sessions(cli: Cluster) -> None:
    """A password change logs the user out everywhere; the new password works, the old does not."""
    add_user(cli.data_dir, "xan")
    with cli.server.client() as http:
        # add_user's password is random; set a known one first, then log in and change it.
        ok(cli.data_dir, "users", "passwd", "xan", "--password-stdin", stdin="pw-xan-1\n")
        pair = login(http, "xan", "pw-xan-1")
        out = ok(cli.data_dir, "users", "passwd", "xan", "--password-stdin", stdin="pw-xan-2\n")
        assert "xan" in out
        assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
        assert_error(me(http, pair["access_token"]), 401, "token_revoked")
        assert_error(
            http.post("/auth/login", json={"username": "xan", "password": "pw-xan-1"}),
            401,
            "invalid_credentials",
        )
        login(http, "xan", "pw-xan-2")
    assert session_states(cli.data_dir, "xan")[pair["session_id"]] == "revoked (password_changed)"


def test_users_passwd_of_unknown_user_fails(cli: Cluster) -> None:
    """Changing the password of nobody is an error, not a silent success."""
    done = run_cli(cli.data_dir, "users", "passwd", "nobody", "--password-stdin", stdin="pw\n")
    assert done.returncode != 0
    assert "nobody" in done.stderr


def test_users_disable_blocks_login_and_refresh_until_enabled(cli: Cluster) -> None:
    """A disabled user cannot log in and their sessions end; enabling lets them log in again."""
    password = add_user(cli.data_dir, "yara")
    with cli.server.client() as http:
        pair = login(http, "yara", password)
        assert "disabled yara" in ok(cli.data_dir, "users", "disable", "yara")
        assert users(cli.data_dir)["yara"][1] == "disabled"
        assert_error(
            http.post("/auth/login", json={"username": "yara", "password": password}),
            401,
            "invalid_credentials",
        )
        assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
        assert_error(me(http, pair["access_token"]), 401, "token_revoked")
        assert "enabled yara" in ok(cli.data_dir, "users", "enable", "yara")
        again = login(http, "yara", password)
        assert me(http, again["access_token"]).status_code == 200
        # An ended session stays ended.
        assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
    for action in ("disable", "enable"):
        done = run_cli(cli.data_dir, "users", action, "nobody")
        assert done.returncode != 0
        assert "nobody" in done.stderr


# -- sessions ------------------------------------------------------------------------------------


def test_sessions_list_and_revoke_one_then_all(cli: Cluster) -> None:
    """An operator lists a user's sessions, ends one by id, then every one by user name."""
    password = add_user(cli.data_dir, "zed")
    with cli.server.client() as http:
        first, second, third = (login(http, "zed", password) for _ in range(3))
        listed = table(ok(cli.data_dir, "sessions", "list", "--user", "zed"))
        assert {row[0] for row in listed} == {p["session_id"] for p in (first, second, third)}
        assert all(row[1] == "zed" and row[2] == "active" for row in listed)
        everyone = {row[0] for row in table(ok(cli.data_dir, "sessions", "list"))}
        assert {p["session_id"] for p in (first, second, third)} <= everyone

        assert first["session_id"] in ok(cli.data_dir, "sessions", "revoke", first["session_id"])
        assert_error(refresh(http, first["refresh_token"]), 401, "session_revoked")
        assert_error(me(http, first["access_token"]), 401, "token_revoked")
        assert me(http, second["access_token"]).status_code == 200
        active = {row[0] for row in table(ok(cli.data_dir, "sessions", "list", "--user", "zed"))}
        assert active == {second["session_id"], third["session_id"]}

        again = run_cli(cli.data_dir, "sessions", "revoke", first["session_id"])
        assert again.returncode != 0
        assert first["session_id"] in again.stderr

        out = ok(cli.data_dir, "sessions", "revoke", "--user", "zed")
        assert "revoked 2 session(s) of zed" in out
        for pair in (second, third):
            assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
            assert_error(me(http, pair["access_token"]), 401, "token_revoked")
    assert table(ok(cli.data_dir, "sessions", "list", "--user", "zed")) == []
    states = session_states(cli.data_dir, "zed")
    assert set(states.values()) == {"revoked (revoked)"}
    assert len(states) == 3


# -- keys and the data directory -------------------------------------------------------------------


def test_keys_show_prints_kids_and_never_private_material(cli: Cluster) -> None:
    """Operators see which keys sign; nothing printed could forge a token."""
    with cli.server.client() as http:
        jwks = http.get("/.well-known/jwks.json").json()
        pair = login(http, cli.username, cli.password)
    access_kid = jwt_parts(pair["access_token"])[0]["kid"]
    refresh_kid = jwt_parts(pair["refresh_token"])[0]["kid"]
    shown = ok(cli.data_dir, "keys", "show")
    rows = {row[0]: row for row in table(shown)}
    assert rows[access_kid][1:3] == ["access", "ES256"]
    assert rows[refresh_kid][1:3] == ["refresh", "HS256"]
    assert rows[access_kid][4] == rows[refresh_kid][4] == "yes"
    published = ok(cli.data_dir, "keys", "show", "--jwks")
    assert json.loads(published) == jwks
    secret = (cli.data_dir / "secret.key").read_text().strip()
    for output in (shown, published):
        assert "PRIVATE" not in output
        assert '"d"' not in output
        leaked = secret in output  # asserted as a flag, so a failure cannot print the secret
        assert not leaked, "the master secret was printed"


def test_data_dir_files_are_owner_only(cli: Cluster) -> None:
    """The master secret and the database (hashes, encrypted keys) are readable by their owner only."""
    assert stat.S_IMODE((cli.data_dir / "secret.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((cli.data_dir / "keyturn.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.data_dir.stat().st_mode) & 0o077 == 0
    # While a server runs, SQLite's side files hold the same data.
    for side in ("keyturn.db-wal", "keyturn.db-shm"):
        path = cli.data_dir / side
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, side


@pytest.mark.parametrize("attempt", range(2))
def test_two_servers_started_together_on_a_fresh_dir_share_one_key_set(tmp_path: Path, attempt: int) -> None:
    """Whichever process makes the keys first, both end up signing and publishing the same ones."""
    data_dir = tmp_path / "data"
    servers = start_servers(data_dir, 2)
    try:
        jwks = [httpx.get(s.url + "/.well-known/jwks.json", timeout=30).json() for s in servers]
        assert jwks[0] == jwks[1]
        assert len(jwks[0]["keys"]) == 1
        kinds = sorted(row[1] for row in table(ok(data_dir, "keys", "show")))
        assert kinds == ["access", "refresh"]
        # A session started on one is served by the other.
        password = add_user(data_dir, "alice")
        with servers[0].client() as first, servers[1].client() as second:
            pair = login(first, "alice", password)
            checked = me(second, pair["access_token"])
            assert checked.status_code == 200, why(checked)
            renewed = refresh(second, pair["refresh_token"])
            assert renewed.status_code == 200, why(renewed)
            assert me(first, renewed.json()["access_token"]).status_code == 200
    finally:
        for server in servers:
            stop_server(server)


def test_migrate_and_prune_on_a_fresh_and_a_used_store(tmp_path: Path) -> None:
    """Operators run these from cron or a deploy script: they must work on any store, any number of times."""
    data_dir = tmp_path / "data"
    for _ in range(2):
        migrated = run_cli(data_dir, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert "up to date" in migrated.stdout
    pruned = run_cli(data_dir, "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("removed 0 expired record(s)")
