"""Refresh latency (sequential) and throughput (many sessions, each rotating its own chain).

    python bench/refresh.py                      # starts its own server: SQLite default, one process
    python bench/refresh.py --store URL          # the same, on another store (postgresql://…, redis://…)
    python bench/refresh.py --app example        # examples/fastapi_app instead: Keyturn inside an app
    python bench/refresh.py --app embedded       # bench/embedded_users.py: installed, built-in users
    KEYTURN_BENCH_PASSWORD=... python bench/refresh.py --url http://127.0.0.1:8000 --user demo
    python bench/refresh.py --dpop               # Bearer and DPoP-bound sessions side by side (RFC 9449)

Prints p50/p99 of sequential refreshes and refreshes per second at each concurrency. With ``--dpop`` each
figure is measured twice in one run, alternating: for sessions refreshed with the token alone, and for
sessions bound to a DPoP key whose every refresh carries a new proof (signed by the client, checked and
its ``jti`` recorded in the store by the server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import Connection
from keyturn.client.dpop import DpopKey


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ROOT = Path(__file__).resolve().parents[1]
APPS = {
    # What serves, how a user is added (password on stdin), and the login body's name field.
    "serve": (
        ["keyturn.server.cli", "serve"],
        ["keyturn.server.cli", "users", "add", "bench", "--password-stdin"],
    ),
    "example": (["examples.fastapi_app", "serve"], ["examples.fastapi_app", "users", "add", "bench"]),
    "embedded": (
        [
            "uvicorn",
            "--factory",
            "--app-dir",
            "bench",
            "--no-proxy-headers",
            "--no-access-log",
            "--no-server-header",
            "embedded_users:create_app",
        ],
        ["keyturn.server.cli", "users", "add", "bench", "--password-stdin"],
    ),
}
LOGIN_FIELD = {"serve": "username", "example": "email", "embedded": "username"}


@contextlib.contextmanager
def own_server(store_url: str | None, app: str = "serve") -> Iterator[tuple[str, str, str]]:
    """Start ``keyturn serve`` (or the example app) in a temporary data directory with a throwaway user."""
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-") as tmp:
        # Every session of this load comes from one address, at rates no client reaches: without the rate
        # limits (bench/compare measures with them on, raised out of reach).
        env = {**os.environ, "KEYTURN_DATA_DIR": tmp, "KEYTURN_RATE_LIMITS": "off"}
        if store_url:
            env["KEYTURN_STORE_URL"] = store_url
        password = secrets.token_urlsafe(12)
        serve, add_user = APPS[app]
        subprocess.run(
            [sys.executable, "-m", *add_user],
            input=password + "\n",
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", *serve, "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                    break
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}", "bench", password
        finally:
            proc.terminate()
            proc.wait(10)


def proof_headers(key: DpopKey | None, url: str, path: str) -> dict[str, str]:
    return {} if key is None else {"DPoP": key.proof("POST", url + path, now=time.time())}


async def login(
    url: str, user: str, password: str, field: str = "username", key: DpopKey | None = None
) -> str:
    conn = Connection(url)
    while True:
        status, headers, body = await conn.exchange(
            "POST", "/auth/login", {field: user, "password": password}, proof_headers(key, url, "/auth/login")
        )
        if status != 503 or "retry-after" not in headers:
            break
        await asyncio.sleep(float(headers["retry-after"]))  # too many logins at once: come back
    await conn.close()
    if status != 200:
        raise SystemExit(f"login failed: {status} {body}")
    return str(body["refresh_token"])


async def sequential(url: str, token: str, count: int, key: DpopKey | None = None) -> list[float]:
    """``count`` refreshes one after the other; with ``key``, each with a new proof (its signing timed)."""
    conn = Connection(url)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        proof = proof_headers(key, url, "/auth/refresh")
        status, body = await conn.request("POST", "/auth/refresh", {"refresh_token": token}, proof)
        times.append(time.perf_counter() - start)
        if status != 200:
            raise SystemExit(f"refresh failed: {status} {body}")
        token = body["refresh_token"]
    await conn.close()
    return times


async def throughput(
    url: str, tokens: list[str], seconds: float, keys: list[DpopKey] | None = None
) -> tuple[int, int]:
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def worker(token: str, key: DpopKey | None) -> None:
        nonlocal done, errors
        conn = Connection(url)
        while time.perf_counter() < stop:
            proof = proof_headers(key, url, "/auth/refresh")
            status, body = await conn.request("POST", "/auth/refresh", {"refresh_token": token}, proof)
            if status == 200:
                done += 1
                token = body["refresh_token"]
            else:
                errors += 1
        await conn.close()

    await asyncio.gather(*(worker(t, keys[i] if keys else None) for i, t in enumerate(tokens)))
    return done, errors


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run_dpop(url: str, user: str, password: str, args: argparse.Namespace) -> None:
    """Bearer and DPoP-bound sessions, measured alternately in rounds on one server."""
    field, rounds = LOGIN_FIELD[args.app], 4
    keys = {"bearer": None, "dpop": DpopKey.generate()}
    times: dict[str, list[float]] = {"bearer": [], "dpop": []}
    for key in keys.values():  # warm-up
        await sequential(url, await login(url, user, password, field, key), 100, key)
    for _ in range(rounds):
        for kind, key in keys.items():
            token = await login(url, user, password, field, key)
            times[kind] += await sequential(url, token, args.requests // rounds, key)
    for kind, values in times.items():
        ms = [t * 1000 for t in values]
        print(
            f"sequential {kind:>6}  n={len(ms)}  p50={pct(ms, 50):.2f} ms  p99={pct(ms, 99):.2f} ms  "
            f"mean={statistics.fmean(ms):.2f} ms"
        )
    for concurrency in args.concurrency:
        for kind in ("bearer", "dpop", "bearer", "dpop"):
            session_keys = [DpopKey.generate() for _ in range(concurrency)] if kind == "dpop" else None
            tokens = await asyncio.gather(
                *(
                    login(url, user, password, field, session_keys[i] if session_keys else None)
                    for i in range(concurrency)
                )
            )
            half = args.seconds / 2
            done, errors = await throughput(url, list(tokens), half, session_keys)
            print(
                f"concurrent {kind:>6}  sessions={concurrency}  {done / half:,.0f} refreshes/s  "
                f"errors={errors}  ({half:g} s)"
            )


async def run(url: str, user: str, password: str, args: argparse.Namespace) -> None:
    print(f"server {url} ({args.app})")
    if args.dpop:
        await run_dpop(url, user, password, args)
        return
    field = LOGIN_FIELD[args.app]
    token = await login(url, user, password, field)
    await sequential(url, token, 200)  # warm-up
    token = await login(url, user, password, field)
    times = await sequential(url, token, args.requests)
    ms = [t * 1000 for t in times]
    print(
        f"sequential  n={len(ms)}  p50={pct(ms, 50):.2f} ms  p99={pct(ms, 99):.2f} ms  "
        f"mean={statistics.fmean(ms):.2f} ms"
    )
    for concurrency in args.concurrency:
        tokens = await asyncio.gather(*(login(url, user, password, field) for _ in range(concurrency)))
        done, errors = await throughput(url, list(tokens), args.seconds)
        print(
            f"concurrent  sessions={concurrency}  {done / args.seconds:,.0f} refreshes/s  "
            f"errors={errors}  ({args.seconds:g} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running server (needs --user and KEYTURN_BENCH_PASSWORD)")
    parser.add_argument("--user", default="bench")
    parser.add_argument(
        "--store",
        "--store-url",
        dest="store_url",
        metavar="URL",
        help="store for the server this script starts",
    )
    parser.add_argument(
        "--app",
        choices=sorted(APPS),
        default="serve",
        help="what serves: keyturn serve, or examples/fastapi_app (Keyturn installed in an app)",
    )
    parser.add_argument("--requests", type=int, default=2000, help="sequential refreshes (2000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64], help="sessions (64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput run (10)")
    parser.add_argument(
        "--dpop", action="store_true", help="Bearer and DPoP-bound sessions side by side, alternating"
    )
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    if args.url:
        password = os.environ.get("KEYTURN_BENCH_PASSWORD")
        if not password:
            raise SystemExit("set KEYTURN_BENCH_PASSWORD to the password of --user")
        asyncio.run(run(args.url, args.user, password, args))
        return
    with own_server(args.store_url, args.app) as (url, user, password):
        asyncio.run(run(url, user, password, args))


if __name__ == "__main__":
    main()
