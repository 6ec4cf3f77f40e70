"""Keyturn and djangorestframework-simplejwt side by side, on loopback, in one run (issue 8).

    python bench/compare/run.py                # the full run (`make bench`): about 5 minutes on 2 cores
    python bench/compare/run.py --quick        # one short round of everything, to try the harness
    python bench/compare/run.py --no-network-stores --rounds 5 --seconds 6   # Keyturn on SQLite only

It sets up the comparison's own venv (``_venv.py``), starts every server (``_systems.py``): SimpleJWT
(SQLite, gunicorn, 2 sync workers), Keyturn on SQLite (one process), on PostgreSQL and on Redis (two
processes each, in a throwaway database and key prefix, ``_places.py``), the two protected endpoints,
and Keyturn on each store again with a 2 s grace period for the replay test. Then, with the same load
generator for all (``_workloads.py``), after a warm-up, in rounds that alternate the systems:

- sequential refresh latency (``--sequential`` refreshes a round);
- refresh throughput with 16 and 64 concurrent sessions (``--seconds`` a run);
- the protected endpoint with 16 and 64 concurrent sessions;

then, once: the same refresh token sent 2, 5 and 20 times at once (``--race-trials`` fresh sessions each),
and a rotated token replayed after 5 s; and what a DPoP proof costs (``_dpop_cost.py``, short runs):
refresh on Keyturn on SQLite with Bearer and with DPoP-bound sessions, and ``bench/verify.py --dpop``.
It prints figures as it goes, writes ``results/benchmarks.json``,
the plots (``plots.py``, run by the comparison's venv, which has matplotlib) and ``docs/benchmarks.md``
(``report.py``). PostgreSQL or Redis that cannot be reached are left out, and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import _dpop_cost
import _summary
import _venv
import report
from _places import postgres_place, postgres_reachable, redis_place, redis_reachable
from _systems import (
    RATE_LIMITS_OUT_OF_REACH,
    Processes,
    Resource,
    System,
    keyturn_django_resource,
    processes_in,
    simplejwt_resource,
    start_keyturn,
    start_keyturn_django,
    start_keyturn_resource,
    start_simplejwt,
)
from _workloads import (
    Session,
    fresh_access,
    login,
    mint,
    protected,
    race,
    renew_lost,
    replay,
    sequential,
    throughput,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE / "results"
DOC = ROOT / "docs" / "benchmarks.md"
T = TypeVar("T")
STARTED = time.monotonic()


def say(text: str) -> None:
    """Print ``text`` at once, after the seconds since the run began."""
    print(f"{time.monotonic() - STARTED:5.0f} s  {text}", flush=True)


@dataclass
class Plan:
    """What runs: token services for the load workloads, protected endpoints, services for the replay."""

    systems: list[System] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    replay_systems: list[System] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    store_versions: dict[str, str] = field(default_factory=dict)


def rotated(items: Sequence[T], by: int) -> list[T]:
    """``items`` starting at ``by``: each round starts with another system."""
    by %= len(items)
    return [*items[by:], *items[:by]]


def errors_text(result: dict[str, Any]) -> str:
    errors = result.get("errors") or {}
    if not errors:
        return "no errors"
    return "errors: " + ", ".join(f"{reason} x{n}" for reason, n in sorted(errors.items()))


@contextlib.contextmanager
def started(args: argparse.Namespace, venv_python: Path, workdir: Path) -> Iterator[Plan]:
    """Every server of the run, ready; stopped (and the throwaway database and keys removed) on exit.

    The groups start side by side (each first adds its user, which hashes a password), then the run
    waits until every process answers.
    """
    plan = Plan()
    short = args.short_grace
    with contextlib.ExitStack() as stack:
        places = {store: _place(stack, plan, store, args) for store in args.stores}
        # Entered after the places, so left before them: every process has stopped when they are removed.
        processes: Processes = stack.enter_context(processes_in(workdir))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=8))
        simplejwt = pool.submit(
            start_simplejwt, processes, venv_python, args.simplejwt_workers, args.simplejwt_worker_class
        )
        keyturn = pool.submit(
            start_keyturn, processes, "keyturn-sqlite", "Keyturn · SQLite", "SQLite, 1 process", 1
        )
        dropin = pool.submit(
            start_keyturn_django, processes, args.simplejwt_workers, args.simplejwt_worker_class
        )
        keyturn_short = pool.submit(
            start_keyturn, processes, "keyturn-sqlite-short-grace", f"Keyturn · SQLite · grace {short:g} s",
            "SQLite, 1 process", 1, grace_period=short,
        )  # fmt: skip
        networked: list[tuple[Future[System], Future[System]]] = []
        for store, name in (("postgresql", "PostgreSQL"), ("redis", "Redis")):
            place = places.get(store)
            if place is None:
                continue
            main = pool.submit(
                start_keyturn, processes, f"keyturn-{store}", f"Keyturn · {name}", f"{name}, 2 processes", 2,
                place("main"),
            )  # fmt: skip
            brief = pool.submit(
                start_keyturn, processes, f"keyturn-{store}-short-grace",
                f"Keyturn · {name} · grace {short:g} s", f"{name}, 2 processes", 2, place("short_grace"),
                grace_period=short,
            )  # fmt: skip
            networked.append((main, brief))
        plan.systems = [simplejwt.result(), keyturn.result(), dropin.result()]
        plan.replay_systems = [*plan.systems, keyturn_short.result()]
        for main, brief in networked:
            plan.systems.append(main.result())
            plan.replay_systems += [main.result(), brief.result()]
        plan.resources = [
            simplejwt_resource(simplejwt.result()),
            keyturn_django_resource(dropin.result()),
            start_keyturn_resource(processes, keyturn.result(), args.resource_processes),
        ]
        for store, why in plan.skipped.items():
            say(f"note: Keyturn on {store} left out: {why}")
        processes.wait_ready()
        yield plan


def _place(
    stack: contextlib.ExitStack, plan: Plan, store: str, args: argparse.Namespace
) -> Callable[[str], str] | None:
    """A throwaway place on ``store`` (removed when ``stack`` closes): a store URL for each group name."""
    if store == "postgresql":
        why = postgres_reachable(args.postgres_url)
        if why is None:
            place = stack.enter_context(postgres_place(args.postgres_url))
            plan.store_versions[store] = place.version()
            return place.schema
    else:
        why = redis_reachable(args.redis_url)
        if why is None:
            rplace = stack.enter_context(redis_place(args.redis_url))
            plan.store_versions[store] = rplace.version()
            return rplace.group
    plan.skipped[store] = why
    return None


async def measure(plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    """Every workload on every system; the raw results (``_summary`` reduces them)."""
    most = max([*args.concurrency, *args.protected_concurrency])
    racing = len(args.race) * args.race_trials
    say(f"making sessions: {most} for the load and {racing} for the races per system, one login each ...")
    made = await asyncio.gather(*(mint(s, 0, most + racing) for s in plan.systems))
    pools = {s.key: sessions[:most] for s, sessions in zip(plan.systems, made, strict=True)}
    racers = {s.key: sessions[most:] for s, sessions in zip(plan.systems, made, strict=True)}
    solo = {s.key: await login(s, most + racing) for s in plan.systems}  # the login endpoint works
    results: dict[str, Any] = {
        "refresh_sequential": {s.key: [] for s in plan.systems},
        "refresh_throughput": {str(n): {s.key: [] for s in plan.systems} for n in args.concurrency},
        "protected": {str(n): {r.key: [] for r in plan.resources} for n in args.protected_concurrency},
    }
    say("warm-up ...")
    for system in plan.systems:
        await sequential(solo[system.key], args.sequential // 4)
        await throughput(pools[system.key][: min(args.concurrency)], args.warmup)
        await renew_lost(pools[system.key])
    for resource in plan.resources:
        pool = pools[resource.system.key][: min(args.protected_concurrency)]
        await fresh_access(pool)
        await protected(resource, pool, args.warmup)
    for rnd in range(args.rounds):
        await one_round(plan, args, rnd, pools, solo, results)
    results["race"] = await races(plan, args, racers)
    results["replay"] = await replays(plan, args)
    default = next(s for s in plan.systems if s.key == _summary.DEFAULT)
    results["dpop"] = await _dpop_cost.refresh(default, args, say)
    return results


async def one_round(
    plan: Plan,
    args: argparse.Namespace,
    rnd: int,
    pools: dict[str, list[Session]],
    solo: dict[str, Session],
    results: dict[str, Any],
) -> None:
    """Each load workload once on every system, the systems in this round's order."""
    tag = f"[round {rnd + 1}/{args.rounds}]"
    order = rotated(plan.systems, rnd)
    for system in order:
        seq = await sequential(solo[system.key], args.sequential)
        results["refresh_sequential"][system.key].append(seq)
        figures = _summary.percentiles(seq["latencies_ms"])
        say(
            f"{tag} sequential refresh  {system.label:<24} p50 {figures['p50']:6.2f} ms  "
            f"p99 {figures['p99']:7.2f} ms  {errors_text(seq)}"
        )
    for n in args.concurrency:
        for system in order:
            await renew_lost(pools[system.key])
            run = await throughput(pools[system.key][:n], args.seconds)
            results["refresh_throughput"][str(n)][system.key].append(run)
            say(
                f"{tag} refresh x{n:<3}        {system.label:<24} {run['rate']:8.1f} /s  "
                f"p99 {run['latency_ms']['p99']:7.1f} ms  {errors_text(run)}"
            )
    for n in args.protected_concurrency:
        for resource in rotated(plan.resources, rnd):
            pool = pools[resource.system.key][:n]
            await fresh_access(pool)
            run = await protected(resource, pool, args.seconds)
            results["protected"][str(n)][resource.key].append(run)
            say(
                f"{tag} protected x{n:<3}      {resource.label:<24.24} {run['rate']:8.1f} /s  "
                f"p99 {run['latency_ms']['p99']:7.1f} ms  {errors_text(run)}"
            )


async def races(
    plan: Plan, args: argparse.Namespace, sessions: dict[str, list[Session]]
) -> dict[str, dict[str, list[Any]]]:
    """The same token sent N times at once, ``--race-trials`` fresh sessions per N and system."""
    found: dict[str, dict[str, list[Any]]] = {}
    fresh = {key: iter(pool) for key, pool in sessions.items()}
    for copies in args.race:
        found[str(copies)] = {s.key: [] for s in plan.systems}
        for trial in range(args.race_trials):
            for system in rotated(plan.systems, trial):
                outcome = await race(next(fresh[system.key]), copies)
                found[str(copies)][system.key].append(outcome)
        for system in plan.systems:
            trials = found[str(copies)][system.key]
            say(
                f"race x{copies:<3} {system.label:<24} answered 200 {[t['succeeded'] for t in trials]}  "
                f"distinct new tokens {[t['distinct_tokens'] for t in trials]}  "
                f"chains alive {[t['chains_alive'] for t in trials]}"
            )
    return found


async def replays(plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    """Rotate, wait, replay the old token, use the newest: on every system at once (one wait for all)."""
    say(f"replay: rotate, wait {args.replay_wait:g} s, replay the old token, use the newest ...")
    outcomes = await asyncio.gather(*(replay(s, args.replay_wait) for s in plan.replay_systems))
    for system, outcome in zip(plan.replay_systems, outcomes, strict=True):
        say(
            f"replay {system.label:<36} replay: {outcome['replay_answer']:<28} newest: "
            f"{outcome['newest_answer']:<22} family revoked: {outcome['family_revoked']}"
        )
    return {s.key: o for s, o in zip(plan.replay_systems, outcomes, strict=True)}


def describe(plan: Plan, venv_python: Path, args: argparse.Namespace) -> dict[str, Any]:
    systems = {
        s.key: {
            "label": s.label,
            "family": s.family,
            "setup": s.setup,
            "processes": len(s.urls),
            "grace_period_s": s.grace_period,
        }
        for s in [*plan.systems, *plan.replay_systems]
    }
    resources = {
        r.key: {"label": r.label, "family": r.family, "setup": r.setup, "token_service": r.system.key}
        for r in plan.resources
    }
    ours = [
        "keyturn",
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "PyJWT",
        "cryptography",
        "psycopg",
        "redis",
    ]
    theirs = [
        "Django",
        "djangorestframework",
        "djangorestframework-simplejwt",
        "gunicorn",
        "PyJWT",
        "matplotlib",
    ]
    return {
        "systems": systems,
        "resources": resources,
        "skipped_stores": plan.skipped,
        "versions": {
            "keyturn_venv": {p: metadata.version(p) for p in ours},
            "simplejwt_venv": _venv.versions(venv_python, theirs),
            "servers": plan.store_versions,
        },
        "settings": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "sequential": args.sequential,
            "concurrency": args.concurrency,
            "protected_concurrency": args.protected_concurrency,
            "race": args.race,
            "race_trials": args.race_trials,
            "replay_wait_s": args.replay_wait,
            "short_grace_s": args.short_grace,
            "simplejwt_workers": args.simplejwt_workers,
            "simplejwt_worker_class": args.simplejwt_worker_class,
            "resource_processes": args.resource_processes,
            "keyturn_rate_limits": _rate_limits_text(),
            "dpop": _dpop_cost.settings(args),
        },
    }


def _rate_limits_text() -> str | None:
    """How Keyturn's rate limits were set for the run, if this Keyturn has them."""
    from keyturn.config import Settings

    if "rate_limits" not in Settings.model_fields:
        return None
    value = next(iter(RATE_LIMITS_OUT_OF_REACH.values()))
    count, seconds = value.split("/")
    return f"every limit raised to {value}: {int(count):,} per {seconds} s"


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.0f} GiB"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="one short round of everything (harness check)")
    add("--rounds", type=int, default=4, help="rounds of the load workloads, systems alternating (4)")
    add("--seconds", type=float, default=4.0, help="length of each throughput run (4)")
    add("--warmup", type=float, default=2.0, help="length of each warm-up run (2)")
    add("--sequential", type=int, default=300, help="sequential refreshes per round (300)")
    add("--concurrency", type=int, nargs="+", default=[16, 64], help="sessions for throughput (16 64)")
    add("--protected-concurrency", type=int, nargs="+", default=[16, 64], help="(16 64)")
    add("--race", type=int, nargs="+", default=[2, 5, 20], help="copies of one token sent at once (2 5 20)")
    add("--race-trials", type=int, default=5, help="fresh sessions raced per copy count (5)")
    add("--replay-wait", type=float, default=5.0, help="seconds before the rotated token comes back (5)")
    add("--short-grace", type=float, default=2.0, help="grace period of the replay-only Keyturn (2)")
    add("--stores", nargs="+", default=["postgresql", "redis"], choices=["postgresql", "redis"])
    add("--no-network-stores", action="store_true", help="Keyturn on SQLite only")
    add("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    add("--redis-url", default="redis://127.0.0.1:6379/15", help="database for the run's keys")
    add("--simplejwt-workers", type=int, default=2)
    add("--simplejwt-worker-class", default="sync", help="gunicorn worker class (sync)")
    add("--resource-processes", type=int, default=2, help="uvicorn processes of the Keyturn endpoint (2)")
    add("--out", type=Path, default=RESULTS, help="directory of the JSON and the plots")
    add("--doc", type=Path, default=DOC, help="the report (docs/benchmarks.md)")
    _dpop_cost.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.no_network_stores:
        args.stores = []
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.sequential, args.race_trials = 1, 1.5, 0.5, 60, 2
        _dpop_cost.quick(args)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    began = time.monotonic()
    venv_python = _venv.ensure()
    load_before = os.getloadavg()
    date = datetime.now(UTC)
    with (
        tempfile.TemporaryDirectory(prefix="keyturn-compare-") as tmp,
        started(args, venv_python, Path(tmp)) as plan,
    ):
        say(f"servers ready after {time.monotonic() - began:.0f} s")
        results = asyncio.run(measure(plan, args))
        about = describe(plan, venv_python, args)
    results["dpop"]["verify"] = _dpop_cost.verify(args, say)  # CPU-bound: once the servers have stopped
    results = {
        "meta": {
            "date": date.isoformat(timespec="seconds"),
            "machine": machine(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "quick": args.quick,
            **about,
        },
        **results,
    }
    results["summary"] = _summary.summarize(results)
    results["meta"]["duration_s"] = time.monotonic() - began
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "benchmarks.json"
    data.write_text(json.dumps(results, indent=1) + "\n")
    say(f"wrote {data.relative_to(ROOT) if data.is_relative_to(ROOT) else data}")
    subprocess.run([str(venv_python), str(HERE / "plots.py"), str(data), str(args.out)], check=True)
    report.write(data, args.doc)
    say(f"wrote {args.doc}; whole run {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
