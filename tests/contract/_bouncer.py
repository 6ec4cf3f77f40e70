"""A real PgBouncer in transaction mode in front of the test PostgreSQL, for the tests of the PostgreSQL
store behind a pooler (``make test`` installs Debian's ``pgbouncer``; the test starts its own, never the
package's service).

Each bouncer gets a schema of its own: PgBouncer passes no ``options`` startup parameter (the store's test
URLs set ``search_path`` with one), so its database entry sets the schema on each server connection it
opens (``connect_query``), as a deployment would set it on the role (``ALTER ROLE … SET search_path``).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from .backends import POSTGRES_URL, postgres_schema, require_server

PGBOUNCER = "/usr/sbin/pgbouncer"
DROPPED = "closing because: server conn crashed?"
"""What PgBouncer logs as it drops a server connection the server ended."""
SERVER_POOL = 2
"""Server connections PgBouncer keeps for the store (``default_pool_size``): fewer than the store's pool, so
its calls share them, one transaction (or one statement outside one) at a time."""


def require_pgbouncer() -> None:
    """Skip the test (fail it in CI) when PgBouncer is not installed."""
    require_server("postgresql")
    if os.access(PGBOUNCER, os.X_OK):
        return
    reason = f"PgBouncer is not installed ({PGBOUNCER}): make test installs it (apt-get install pgbouncer)"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Bouncer:
    url: str
    """A store URL through PgBouncer (``?pooler=transaction``)."""
    application_name: str
    """What PgBouncer's server connections are called in ``pg_stat_activity``."""
    direct: str
    """A store URL for the same schema, on PostgreSQL directly."""
    log: Path
    """PgBouncer's log."""

    def close_server_connections(self) -> int:
        """End PgBouncer's idle server connections from PostgreSQL's side, as a server restart, a failover
        or PgBouncer's own ``server_lifetime`` would: it opens new ones as they are needed. How many."""
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            pids = [
                pid
                for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'idle'",
                    (self.application_name,),
                ).fetchall()
            ]
            dropped = self.log.read_text().count(DROPPED)
            conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
            deadline = time.monotonic() + 10
            while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY (%s)", (pids,)).fetchone():
                assert time.monotonic() < deadline, "the server connections did not end"
                time.sleep(0.02)
            # PgBouncer reads each one's end (the server's FATAL, then EOF) and drops it, saying so: until
            # then it could still lend one, and the call it carried would fail.
            while self.log.read_text().count(DROPPED) < dropped + len(pids):
                assert time.monotonic() < deadline, "PgBouncer did not drop the ended server connections"
                time.sleep(0.02)
        return len(pids)


@contextlib.contextmanager
def bouncer() -> Iterator[Bouncer]:
    """A PgBouncer (``pool_mode = transaction``, :data:`SERVER_POOL` server connections) over a schema of
    its own."""
    require_pgbouncer()
    target = conninfo_to_dict(POSTGRES_URL)
    user = str(target.get("user") or getpass.getuser())
    dbname = str(target["dbname"])
    with postgres_schema() as (schema, direct):
        # Readable by PgBouncer's own user: it will not run as root, and drops to ``postgres`` if started so.
        workdir = Path(tempfile.mkdtemp(prefix="keyturn-pgbouncer-"))
        workdir.chmod(0o755)
        port = _free_port()
        (workdir / "users.txt").write_text(f'"{user}" ""\n')
        (workdir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{dbname} = host={target.get('host') or '127.0.0.1'} port={target.get('port') or 5432} "
            f"dbname={dbname} application_name=keyturn-{schema} "
            f"connect_query='SET search_path = \"{schema}\"'\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {workdir / 'users.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {SERVER_POOL}\nmax_client_conn = 200\n"
        )
        for name in ("users.txt", "pgbouncer.ini"):
            (workdir / name).chmod(0o644)
        command = [
            PGBOUNCER,
            *(["-u", "postgres"] if os.geteuid() == 0 else []),
            str(workdir / "pgbouncer.ini"),
        ]
        log = (workdir / "pgbouncer.log").open("w")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"postgresql://{user}@127.0.0.1:{port}/{dbname}"
        try:
            _wait_until_up(url, process, workdir / "pgbouncer.log")
            yield Bouncer(f"{url}?pooler=transaction", f"keyturn-{schema}", direct, workdir / "pgbouncer.log")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(url, connect_timeout=2, prepare_threshold=None).close()
            return
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PgBouncer did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.05)
