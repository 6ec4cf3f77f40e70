"""Where a Keyturn server spends its time under the comparison's refresh load: cProfile on ``keyturn serve``.

    python bench/compare/profile_keyturn.py                       # SQLite, 64 sessions, 10 s, profiled
    python bench/compare/profile_keyturn.py --store-url URL       # another store (a place you own)
    python bench/compare/profile_keyturn.py --no-profile --env KEYTURN_RATE_LIMITS=false

It starts one ``keyturn serve`` (in a temporary data directory, as ``run.py`` does) under
``python -m cProfile``, makes ``--sessions`` sessions, warms up, runs the same closed-loop refresh
workload as ``run.py`` (``_workloads.throughput``), prints the rate, stops the server with SIGINT (so the
profile is written) and prints the functions with the most time of their own and the most time below
them. ``--no-profile`` measures the same without the profiler (its overhead is large); ``--env`` adds
``KEYTURN_*`` settings to the server's (``run.py``'s raised rate limits are there unless overridden).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import pstats
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _systems import Processes, System, start_keyturn
from _workloads import mint, throughput


async def drive(processes: Processes, system: System, sessions: int, seconds: float) -> dict[str, Any]:
    """The measured run, and the CPU seconds the server and this load generator spent on it."""
    pool = await mint(system, 0, sessions)
    await throughput(pool, 2.0)  # warm-up
    server, ours = sum(processes.cpu_seconds().values()), time.process_time()
    result = await throughput(pool, seconds)
    result["server_cpu_s"] = sum(processes.cpu_seconds().values()) - server
    result["driver_cpu_s"] = time.process_time() - ours
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store-url", help="a store of your own (default: SQLite in a temporary directory)")
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-profile", action="store_true", help="measure without cProfile")
    parser.add_argument("--env", action="append", default=[], metavar="KEYTURN_NAME=VALUE")
    parser.add_argument("--top", type=int, default=30, help="functions to list (30)")
    parser.add_argument("--save", type=Path, help="keep the profile there (for pstats or snakeviz)")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with tempfile.TemporaryDirectory(prefix="keyturn-profile-") as tmp:
        workdir = Path(tmp)
        profile = workdir / "keyturn.prof"
        processes = Processes(workdir)
        extra = dict(item.split("=", 1) for item in args.env)
        wrapper = [] if args.no_profile else [sys.executable, "-m", "cProfile", "-o", str(profile)]
        try:
            system = start_keyturn(
                processes,
                "keyturn",
                "Keyturn",
                "profiled",
                1,
                args.store_url,
                extra_env=extra,
                wrapper=wrapper,
            )
            processes.wait_ready()
            result = asyncio.run(drive(processes, system, args.sessions, args.seconds))
            per = 1000 / max(1, result["ok"])
            print(
                f"{result['rate']:.1f} refreshes/s with {args.sessions} sessions "
                f"({'under cProfile' if wrapper else 'no profiler'}); errors: {result['errors'] or 'none'}; "
                f"CPU per refresh: server {result['server_cpu_s'] * per:.2f} ms, load generator "
                f"{result['driver_cpu_s'] * per:.2f} ms (of {result['seconds']:.1f} s: server "
                f"{result['server_cpu_s'] / result['seconds']:.0%} of a core, load generator "
                f"{result['driver_cpu_s'] / result['seconds']:.0%})"
            )
        finally:
            processes.stop_all(signal.SIGINT)
        if wrapper and args.save:
            shutil.copyfile(profile, args.save)
        if wrapper:
            for order in ("tottime", "cumulative"):
                text = io.StringIO()
                stats = pstats.Stats(str(profile), stream=text)
                stats.strip_dirs().sort_stats(order).print_stats(args.top)
                print(f"--- by {order} ---")
                print(text.getvalue().split("\n\n", 1)[-1])


if __name__ == "__main__":
    main()
