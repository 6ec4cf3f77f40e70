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
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ..e2e._server import free_port
from .backends import POSTGRES_URL, postgres_schema, require_server

PGBOUNCER = "/usr/sbin/pgbouncer"
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


@dataclass(frozen=True)
class Bouncer:
    url: str
    """A store URL through PgBouncer (``?pooler=transaction``)."""
    direct: str
    """A store URL for the same schema, on PostgreSQL directly."""
    admin: str
    """A connection string for PgBouncer's admin console (``SHOW …``)."""
    log: Path
    """PgBouncer's log."""

    def close_server_connections(self) -> int:
        """End PgBouncer's idle server connections from PostgreSQL's side, as a server restart, a failover
        or PgBouncer's own ``server_lifetime`` would: it opens new ones as they are needed. How many."""
        # Only those lent to no one (idle, or waiting for their check): one ended while lent, or while
        # PgBouncer logs it in, would fail the call waiting for it.
        pids = {pid for pid, state in self._servers() if state in ("idle", "used")}
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (list(pids),))
        # PgBouncer reads each one's end (the server's FATAL, then EOF) and drops it: until then it could
        # still lend one, and the call it carried would fail. Its own list of server connections says when
        # it has, whatever it logs for each.
        deadline = time.monotonic() + 30
        while left := pids & {pid for pid, _ in self._servers()}:
            assert time.monotonic() < deadline, (
                f"PgBouncer kept ended server connections {left}: {self._tail()}"
            )
            time.sleep(0.02)
        return len(pids)

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def _servers(self) -> list[tuple[int, str]]:
        """PgBouncer's server connections, from its admin console (``SHOW SERVERS``): PostgreSQL's pid for
        each, and PgBouncer's state for it (``idle``, ``active``, ``used``, ``tested``, ``new``)."""
        with psycopg.connect(self.admin, autocommit=True, cursor_factory=psycopg.ClientCursor) as console:
            shown = console.execute("SHOW SERVERS")
            columns = [column.name for column in shown.description or ()]
            pid, state = columns.index("remote_pid"), columns.index("state")
            return [(row[pid], row[state]) for row in shown.fetchall()]


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
        (workdir / "users.txt").write_text(f'"{user}" ""\n')
        (workdir / "users.txt").chmod(0o644)
        database = (
            f"{dbname} = host={target.get('host') or '127.0.0.1'} port={target.get('port') or 5432} "
            f"dbname={dbname} application_name=keyturn-{schema} "
            f"connect_query='SET search_path = \"{schema}\"'"
        )
        log_path = workdir / "pgbouncer.log"
        log = log_path.open("w")
        try:
            process, port = _start(workdir, database, user, log)
            try:
                url = f"postgresql://{user}@127.0.0.1:{port}/{dbname}"
                admin = f"postgresql://{user}@127.0.0.1:{port}/pgbouncer"
                yield Bouncer(f"{url}?pooler=transaction", direct, admin, log_path)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            log.close()
            shutil.rmtree(workdir, ignore_errors=True)


def _start(workdir: Path, database: str, user: str, log: IO[str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start PgBouncer on a free port; another, if another process took that one first. It is up once
    it logs that it listens on its port: until then, what answers there may be someone else's."""
    ini = workdir / "pgbouncer.ini"
    for _attempt in range(5):
        port = free_port()
        ini.write_text(
            f"[databases]\n{database}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {workdir / 'users.txt'}\nstats_users = {user}\n"
            f"pool_mode = transaction\ndefault_pool_size = {SERVER_POOL}\nmax_client_conn = 200\n"
        )
        ini.chmod(0o644)
        as_postgres = ["-u", "postgres"] if os.geteuid() == 0 else []
        process = subprocess.Popen([PGBOUNCER, *as_postgres, str(ini)], stdout=log, stderr=subprocess.STDOUT)
        listening = f"listening on 127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while listening not in (text := Path(log.name).read_text(errors="replace")):
            if process.poll() is not None:
                break
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(f"PgBouncer did not start: {text[-2000:]}")
            time.sleep(0.02)
        else:
            return process, port
        if f"cannot listen on 127.0.0.1:{port}" not in text:
            raise RuntimeError(f"PgBouncer did not start: {text[-2000:]}")
    raise RuntimeError(f"PgBouncer found no free port: {text[-2000:]}")
