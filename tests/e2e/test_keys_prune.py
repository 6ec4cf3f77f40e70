"""`keyturn keys prune` deletes the keys a rotation replaced, once no token they signed can still live.

The horizon is made tiny through the environment of the prune command only (the servers keep their usual
lifetimes), so a real wait of a few seconds is enough to retire the keys of a rotation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from ._http import jwt_parts, login, me, refresh, refreshed, why
from ._server import cluster, run_cli

# Access horizon: 1 + 0 + 0.5 seconds; refresh horizon: 1 + 0 + 0 + 0.5 seconds.
TINY_HORIZON = {
    "KEYTURN_ACCESS_TOKEN_LIFETIME": "1",
    "KEYTURN_REFRESH_IDLE_LIFETIME": "1",
    "KEYTURN_GRACE_PERIOD": "0",
    "KEYTURN_LEEWAY": "0",
    "KEYTURN_KEY_RELOAD_INTERVAL": "0.5",
}
PAST_TINY_HORIZON = 3.0
"""Seconds to wait after a rotation for its replaced keys to be past the tiny horizon (1.5 s), with room."""


def cli_ok(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``keyturn ARGS``, expect exit 0 and nothing on standard error; return standard output."""
    done = run_cli(data_dir, *args, env=env)
    assert done.returncode == 0, (args, done.returncode, done.stderr)
    return done.stdout


def shown_keys(data_dir: Path) -> dict[str, tuple[str, str]]:
    """``keyturn keys show`` as kid -> (use, signing)."""
    lines = cli_ok(data_dir, "keys", "show").splitlines()
    assert lines[0].split("\t") == ["KID", "USE", "ALG", "CREATED", "SIGNING"]
    rows = [line.split("\t") for line in lines[1:] if line]
    return {row[0]: (row[1], row[4]) for row in rows}


def pruned(output: str, verb: str) -> tuple[dict[str, str], int]:
    """The keys a prune (``verb``: "deleted" or "would delete") listed, as kid -> use, and its count."""
    lines = output.splitlines()
    assert lines, "keyturn keys prune printed nothing"
    last = lines[-1]
    assert last.startswith(f"{verb} "), last
    assert last.endswith(" retired key(s)"), last
    count = int(last.removeprefix(f"{verb} ").removesuffix(" retired key(s)"))
    listed = {}
    for line in lines[:-1]:
        assert line.startswith(f"{verb} "), line
        kid, use, *_ = line.removeprefix(f"{verb} ").split("\t")
        listed[kid] = use
    assert len(listed) == count, output
    return listed, count


def wait_past(moment: float, seconds: float) -> None:
    """Sleep until ``seconds`` of wall-clock time have passed since ``moment`` (a ``time.time()``)."""
    remaining = moment + seconds - time.time()
    if remaining > 0:
        time.sleep(remaining)


def shown_keys_signing(data_dir: Path) -> dict[str, str]:
    """use -> kid of the signing keys that ``keyturn keys show`` marks."""
    signing = {use: kid for kid, (use, sign) in shown_keys(data_dir).items() if sign == "yes"}
    assert set(signing) == {"access", "refresh"}
    return signing


def rotate(data_dir: Path) -> tuple[str, str, float]:
    """``keyturn keys rotate``: the new access and refresh kids, and the wall-clock time it had returned."""
    out = cli_ok(data_dir, "keys", "rotate")
    returned = time.time()
    new = shown_keys_signing(data_dir)
    assert new["access"] in out
    assert new["refresh"] in out
    return new["access"], new["refresh"], returned


def jwks_of_cli(data_dir: Path) -> set[str]:
    """The kids of ``keyturn keys show --jwks``."""
    return {k["kid"] for k in json.loads(cli_ok(data_dir, "keys", "show", "--jwks"))["keys"]}


def jwks_kids(http: httpx.Client) -> set[str]:
    response = http.get("/.well-known/jwks.json")
    assert response.status_code == 200, why(response)
    return {k["kid"] for k in response.json()["keys"]}


def test_prune_help_exits_zero_and_says_what_it_does(tmp_path: Path) -> None:
    """Operators find the command and its dry run from the help texts."""
    done = run_cli(tmp_path / "data", "keys", "prune", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: keyturn keys prune")
    assert "--dry-run" in done.stdout
    assert "only list what would be deleted" in done.stdout

    listing = run_cli(tmp_path / "data", "keys", "--help")
    assert listing.returncode == 0, listing.stderr
    prune_line = " ".join(listing.stdout.split()).partition(" prune ")[2]
    assert prune_line.startswith("delete keys replaced longer ago than any token they signed can live")
    assert not (tmp_path / "data").exists()  # --help touches no store


def test_prune_keeps_fresh_keys_dry_run_deletes_nothing_and_prune_deletes_the_replaced_keys(
    tmp_path: Path,
) -> None:
    """Right after a rotation nothing may go; past the horizon the replaced keys go, the signing ones stay."""
    data_dir = tmp_path / "data"
    old = shown_keys_signing(data_dir)  # the first keys, made by the first command

    new_access, new_refresh, rotated_at = rotate(data_dir)
    assert {new_access, new_refresh}.isdisjoint(old.values())
    all_four = {old["access"], old["refresh"], new_access, new_refresh}

    # Usual lifetimes: the old keys may still verify live tokens, so nothing is deleted.
    assert pruned(cli_ok(data_dir, "keys", "prune"), "deleted") == ({}, 0)
    assert pruned(cli_ok(data_dir, "keys", "prune", "--dry-run"), "would delete") == ({}, 0)
    assert set(shown_keys(data_dir)) == all_four

    # Past the tiny horizon, a dry run names the old keys and deletes nothing.
    wait_past(rotated_at, PAST_TINY_HORIZON)
    dry = cli_ok(data_dir, "keys", "prune", "--dry-run", env=TINY_HORIZON)
    assert pruned(dry, "would delete") == ({old["access"]: "access", old["refresh"]: "refresh"}, 2)
    assert set(shown_keys(data_dir)) == all_four

    # The real prune deletes exactly those; the signing keys stay and still sign.
    done = cli_ok(data_dir, "keys", "prune", env=TINY_HORIZON)
    assert pruned(done, "deleted") == ({old["access"]: "access", old["refresh"]: "refresh"}, 2)
    assert shown_keys(data_dir) == {new_access: ("access", "yes"), new_refresh: ("refresh", "yes")}
    assert jwks_of_cli(data_dir) == {new_access}

    # Nothing is left to prune, however long one waits: signing keys are never retired.
    assert pruned(cli_ok(data_dir, "keys", "prune", env=TINY_HORIZON), "deleted") == ({}, 0)
    assert shown_keys(data_dir) == {new_access: ("access", "yes"), new_refresh: ("refresh", "yes")}


def test_prune_reaches_a_running_server_and_logins_keep_working(tmp_path: Path) -> None:
    """After a prune a running server stops publishing the old key, and still logs in and refreshes."""
    data_dir = tmp_path / "data"
    with cluster(data_dir, 1, {"KEYTURN_KEY_RELOAD_INTERVAL": "0.5"}) as group, group.server.client() as http:
        before = login(http, group.username, group.password)
        old_kid = jwt_parts(before["access_token"])[0]["kid"]
        assert old_kid in jwks_kids(http)

        new_access, _new_refresh, rotated_at = rotate(data_dir)

        # The server signs with the new key before anything is pruned (its reload interval is 0.5 s).
        deadline = time.monotonic() + 30
        kid = old_kid
        while time.monotonic() < deadline:
            kid = jwt_parts(login(http, group.username, group.password)["access_token"])[0]["kid"]
            if kid != old_kid:
                break
            time.sleep(0.25)
        assert kid == new_access

        wait_past(rotated_at, PAST_TINY_HORIZON)
        listed, count = pruned(cli_ok(data_dir, "keys", "prune", env=TINY_HORIZON), "deleted")
        assert count == 2
        assert listed[old_kid] == "access"

        # The JWKS is read from the store on every request: the old kid leaves it at once.
        deadline = time.monotonic() + 30
        published = jwks_kids(http)
        while old_kid in published and time.monotonic() < deadline:
            time.sleep(0.25)
            published = jwks_kids(http)
        assert old_kid not in published
        assert published == {new_access}

        # Logging in, calling /auth/me and refreshing all still work, on the new keys.
        fresh = login(http, group.username, group.password)
        assert jwt_parts(fresh["access_token"])[0]["kid"] == new_access
        checked = me(http, fresh["access_token"])
        assert checked.status_code == 200, why(checked)
        after = refreshed(http, fresh["refresh_token"])
        assert jwt_parts(after["access_token"])[0]["kid"] == new_access
        checked = me(http, after["access_token"])
        assert checked.status_code == 200, why(checked)

        # Tokens signed with the deleted keys are refused (nothing can verify them any more), not a 500,
        # once the server's next periodic reload (0.5 s here) has dropped the keys from its key ring.
        deadline = time.monotonic() + 30
        old_access = me(http, before["access_token"])
        while old_access.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.25)
            old_access = me(http, before["access_token"])
        assert old_access.status_code == 401, why(old_access)
        old_refresh = refresh(http, before["refresh_token"])
        assert old_refresh.status_code == 401, why(old_refresh)
