"""Two or more Keyturn variants side by side on one shared store, in alternating rounds.

    python bench/compare/ab.py --store postgresql before:src=/tmp/old/src after:
    python bench/compare/ab.py --store redis --rounds 8 plain: pipelined:KEYTURN_SOME_SETTING=1

On a shared, noisy machine two runs an hour apart differ by more than most changes do; rounds that alternate
between variants in one run see the same noise. Each variant is ``label:`` followed by comma-separated
``NAME=VALUE`` items (each label once): ``src=PATH`` imports ``keyturn`` from another ``src`` directory (a
worktree of an older commit, say), ``pg=NAME=VALUE`` sets a PostgreSQL setting on the store's connections
(``pg=synchronous_commit=off``; ``--store postgresql`` only), anything else is an environment variable of its
servers. Every variant gets its own ``keyturn serve`` processes (``--processes``, two as in ``run.py``) on its
own schema or key prefix of the run's throwaway place, its own sessions, and the comparison's raised rate
limits.

Each round runs every variant once (the order rotates) for ``--seconds`` with ``--sessions`` sessions in
a closed loop, and prints the rate and the CPU each refresh cost: in the variant's servers, in the
database server's processes (PostgreSQL's backends or redis-server, read from ``/proc``; anything else
the machine runs on that server lands here too) and in this load generator. The summary is each variant's
median and its ratio to the first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from _places import postgres_place, redis_place
from _systems import Processes, System, start_keyturn
from _workloads import Session, mint, throughput


@dataclass
class Variant:
    label: str
    env: dict[str, str]
    system: System | None = None
    sessions: list[Session] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu: list[tuple[float, float, float]] = field(default_factory=list)
    """Per round: milliseconds of CPU per refresh in the servers, the store's server, the load generator."""


def parse_variant(text: str, store: str) -> Variant:
    """One variant of the command line; ``ValueError`` says what is wrong with it."""
    label, _, items = text.partition(":")
    env: dict[str, str] = {}
    for item in filter(None, items.split(",")):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{text!r}: expected NAME=VALUE items after the label")
        if name == "src":
            env["PYTHONPATH"] = str(Path(value).resolve())
        elif name == "pg":
            if store != "postgresql":
                raise ValueError(f"{text!r}: pg={value} sets a PostgreSQL setting, and the store is {store}")
            env.setdefault("options", "")
            env["options"] += f" -c{value}"
        else:
            env[name] = value
    return Variant(label or f"variant{id(env)}", env)


def parse_variants(texts: list[str], store: str) -> list[Variant]:
    """The command line's variants, each label once; ``ValueError`` says what is wrong with them."""
    variants = [parse_variant(text, store) for text in texts]
    labels = [variant.label for variant in variants]
    if twice := sorted({label for label in labels if labels.count(label) > 1}):
        raise ValueError(f"variant labels given more than once: {', '.join(twice)}")
    return variants


def store_cpu_seconds(store: str) -> float:
    """CPU seconds (user and system) of every ``postgres`` or ``redis-server`` process so far."""
    names = {"postgresql": ("postgres",), "redis": ("redis-server",)}[store]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                if name.startswith(names):
                    fields = stat.rpartition(")")[2].split()
                    total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@contextlib.contextmanager
def place_urls(args: argparse.Namespace, count: int) -> Iterator[list[str]]:
    if args.store == "postgresql":
        with postgres_place(args.postgres_url) as pg:
            yield [pg.schema(f"ab{index}") for index in range(count)]
    else:
        with redis_place(args.redis_url) as rp:
            yield [rp.group(f"ab{index}") for index in range(count)]


async def one_round(variant: Variant, processes: Processes, store: str, seconds: float) -> str:
    assert variant.system is not None
    names = [f"{variant.system.key}-{index}" for index in range(len(variant.system.urls))]
    before = processes.cpu_seconds()
    db, ours = store_cpu_seconds(store), time.process_time()
    result = await throughput(variant.sessions, seconds)
    after = processes.cpu_seconds()
    count = max(1, result["ok"])
    server = sum(after[name] - before[name] for name in names) * 1000 / count
    database = (store_cpu_seconds(store) - db) * 1000 / count
    driver = (time.process_time() - ours) * 1000 / count
    variant.rates.append(result["rate"])
    variant.cpu.append((server, database, driver))
    errors = f"  errors {result['errors']}" if result["errors"] else ""
    return (
        f"{variant.label:>12} {result['rate']:8.1f}/s   CPU ms per refresh: servers {server:.3f}"
        f"  {store} {database:.3f}  load {driver:.3f}{errors}"
    )


async def run(args: argparse.Namespace, variants: list[Variant], processes: Processes) -> None:
    for variant in variants:
        assert variant.system is not None
        variant.sessions = await mint(variant.system, 0, args.sessions)
        await throughput(variant.sessions, 2.0)  # warm-up
    for index in range(args.rounds):
        print(f"round {index + 1}/{args.rounds}  load {os.getloadavg()[0]:.2f}", flush=True)
        shift = index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            print("  " + await one_round(variant, processes, args.store, args.seconds), flush=True)
    first = statistics.median(variants[0].rates)
    print("\nmedian refreshes/s (x the first), median CPU ms per refresh (servers, store, load)")
    for variant in variants:
        rate = statistics.median(variant.rates)
        cpu = [statistics.median(part) for part in zip(*variant.cpu, strict=True)]
        print(
            f"{variant.label:>12} {rate:8.1f}/s ({rate / first:.3f}x)   "
            f"{cpu[0]:.3f} {cpu[1]:.3f} {cpu[2]:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variants", nargs="+", metavar="LABEL:[NAME=VALUE,...]")
    parser.add_argument("--store", choices=["postgresql", "redis"], default="postgresql")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2, help="keyturn serve processes per variant (2)")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    try:
        variants = parse_variants(args.variants, args.store)
    except ValueError as exc:
        parser.error(str(exc))
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with tempfile.TemporaryDirectory(prefix="keyturn-ab-") as tmp, place_urls(args, len(variants)) as urls:
        processes = Processes(Path(tmp))
        try:
            for index, (variant, url) in enumerate(zip(variants, urls, strict=True)):
                if options := variant.env.pop("options", ""):
                    url += quote(options)
                variant.system = start_keyturn(
                    processes, f"v{index}", variant.label, "ab", args.processes, url, extra_env=variant.env
                )
            processes.wait_ready()
            asyncio.run(run(args, variants, processes))
        finally:
            processes.stop_all()


if __name__ == "__main__":
    main()
