"""The log sweep (``tests/_logsweep.py``, run at the end of every pytest session) can fail, and it reads
the lines it is meant to read: ``keyturn serve``'s log, in-process records, and the secrets of the suite."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyturn.server.logs import JSONFormatter
from keyturn.sessions import TokenPair
from keyturn.testing import make_service

from .. import _logsweep
from .._secrets import new_password
from ..e2e._http import login, refreshed
from ..e2e._resource import ROOT
from ..e2e._server import cluster
from ._forge import Attacker, forge

_JSON = JSONFormatter()


def started_and_refreshed() -> tuple[str, TokenPair, TokenPair]:
    """A session on an in-process service, refreshed once: (its id, the first pair, the second)."""

    async def run() -> tuple[str, TokenPair, TokenPair]:
        ts = await make_service()
        first = await ts.service.start("alice")
        second = await ts.service.refresh(first.refresh_token)
        return first.session_id, first, second

    return asyncio.run(run())


def json_line(message: str, **fields: object) -> str:
    """A line as ``keyturn serve`` writes it."""
    record = logging.LogRecord("keyturn.events", logging.INFO, __file__, 1, message, (), None)
    if fields:
        record.keyturn = {"event": message, **fields}
    return _JSON.format(record)


def test_a_token_a_signature_or_a_password_in_a_line_is_a_leak() -> None:
    """Each way a secret can sit in a line is found, clean lines are not, and the report withholds it."""
    sid, pair, _ = started_and_refreshed()
    password = new_password()
    registry = _logsweep.Registry()
    registry.token(pair.refresh_token)
    registry.password(password)
    signature = pair.refresh_token.rsplit(".", 1)[1]
    cut = pair.refresh_token[: len(pair.refresh_token) // 2]  # what a truncated repr leaves
    lines = {
        "whole access token": json_line(f"authenticated {pair.access_token}"),
        "token cut short": json_line("refresh", token=cut),
        "signature alone": json_line("refresh", sig=signature),
        "password in a word": json_line(f"login failed for alice:{password}!"),
        "clean event": json_line("session.rotated", sid=sid, gen=1),
        "clean access line": json_line('127.0.0.1:5000 - "POST /auth/refresh HTTP/1.1" 200'),
    }
    leaks = _logsweep.scan_lines(((name, line) for name, line in lines.items()), registry)

    assert {leak.source for leak in leaks} == set(lines) - {"clean event", "clean access line"}
    report = "\n".join(str(leak) for leak in leaks)
    for secret in (pair.access_token, cut, signature, password):
        assert secret not in report
    assert "secret withheld" in report


def test_a_server_log_file_and_an_in_process_record_are_swept(tmp_path: Path) -> None:
    """The corpus reads a subprocess's log file when it is collected, and renders a record whole: an
    exception's message counts, though Keyturn's own formatter would leave it out."""
    token = forge({"alg": "ES256", "typ": "at+jwt", "kid": "k"}, {"sub": "alice"}, None, "none") + "sig" * 10
    password = new_password()
    corpus = _logsweep.Corpus(tmp_path)
    try:
        log = tmp_path / "server.log"
        log.write_text(json_line("session.started", sid="s1") + "\n")
        corpus.watch(log, "keyturn serve :1")
        with log.open("a") as out:
            out.write(json_line(f"bad token {token}") + "\n")
        corpus.collect(log)
        try:
            raise ValueError(f"password {password} rejected")
        except ValueError as error:
            record = logging.LogRecord("keyturn.server", logging.ERROR, __file__, 1, "failed", (), None)
            record.exc_info = (type(error), error, error.__traceback__)
        corpus.add_record(record)
        corpus.registry.password(password)
        leaks = corpus.scan()
    finally:
        corpus.close()
    assert sorted(leak.source for leak in leaks) == [
        "in-process keyturn.server",
        "subprocess keyturn serve :1",
    ]


def test_the_session_sweep_sees_server_and_in_process_events(tmp_path: Path) -> None:
    """The sweep of this very run holds ``keyturn serve``'s events (it logs at debug level in tests), the
    events of in-process services, and the tokens and passwords the suite used."""
    corpus = _logsweep.SWEEP
    assert corpus is not None, "the log sweep is not running"
    with cluster(tmp_path / "data") as group, group.server.client() as http:
        pair = login(http, group.username, group.password)
        rotated = refreshed(http, pair["refresh_token"])
    sid, _, in_process = started_and_refreshed()

    lines = list(corpus.lines())
    server = f"subprocess keyturn serve :{group.server.url.rsplit(':', 1)[1]}"
    events = {(source, json.loads(line).get("event")) for source, line in lines if source == server}
    assert {(server, "session.started"), (server, "session.rotated")} <= events
    assert any("uvicorn.access" in line and "POST /auth/refresh" in line for _, line in lines)
    assert any(
        source == "in-process keyturn.events" and "session.rotated" in line and sid in line
        for source, line in lines
    )
    signatures = corpus.registry.signatures
    assert rotated["refresh_token"].rsplit(".", 1)[1] in signatures  # seen in an httpx response
    assert in_process.refresh_token.rsplit(".", 1)[1] in signatures  # minted by an in-process codec
    assert group.password in corpus.registry.all_passwords()


@pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "1"]], ids=["one process", "xdist workers"])
def test_a_leak_fails_the_pytest_run_and_the_report_withholds_it(tmp_path: Path, workers: list[str]) -> None:
    """A whole pytest run whose only test passes but logs a token: the sweep turns it into a failure,
    names the logger, and shows the token's fingerprint, never the token; in one process, and when the
    test runs on a pytest-xdist worker (the worker's sweep is reported by the controller)."""
    attacker = Attacker()
    token = forge({"alg": "HS256", "typ": "at+jwt", "kid": "k"}, {"sub": "alice"}, attacker.secret, "HS256")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            *workers,
            "-q",
            "tests/security/_leak_on_purpose.py",
        ],
        cwd=ROOT,
        env={**os.environ, "KEYTURN_TEST_LEAK": token, "KEYTURN_LOG_SWEEP_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "1 failed, 1 passed" in output
    assert "log_sweep" in output
    assert "in-process keyturn.example" in output
    assert token not in output
    assert _logsweep.describe(token).split("sha256 ")[1] in output
    (kept,) = tmp_path.iterdir()  # the corpus is kept for whoever investigates
    assert (kept / "corpus.jsonl").stat().st_size > 0
