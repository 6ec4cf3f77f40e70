"""The Django drop-in beside SimpleJWT, alone: the same gunicorn, the same workers, the same database.

    python bench/compare/profile_django.py                      # 3 rounds, alternating, ratios per round
    python bench/compare/profile_django.py --rounds 5 --seconds 6
    python bench/compare/profile_django.py --profile            # the drop-in under py-spy, where time goes

It starts what ``run.py`` starts for these two (``_systems.start_simplejwt`` and
``start_keyturn_django``: SQLite, gunicorn, 2 sync workers each), makes ``--sessions`` sessions on each,
warms up, then in rounds that alternate which goes first runs the sequential refresh latency and the
closed-loop refresh throughput of ``run.py`` (``_workloads``), and prints each round's figures (with the
CPU time the server's processes spent per refresh, which the machine's other load disturbs less, and in
brackets the load generator's), the
drop-in's throughput over SimpleJWT's and the load average, then same-token races (one chain after each).
On a shared machine the ratio within a round says more than either figure.

Its throughput ratio is not ``make bench``'s when the machine is busy. Under load each process gets a
share of the cores, so each system's rate follows its servers' CPU per refresh alone; on a quiet machine
the two gunicorn workers and the load generator (0.35-0.5 ms of CPU per refresh, whichever system it
drives) divide the same two cores, so the rate follows the servers' and the generator's CPU together,
which narrows the ratio. SimpleJWT's CPU per refresh also seems to grow more with load than the drop-in's:
``make bench``'s quiet rates (488/s and 1,283/s on two saturated cores) leave about 3.7 ms and 1.2 ms per
refresh to the servers, against 4.4-5.3 ms and 1.15-1.3 ms measured here at load 15 to 24. Hence 3.81x
here under load against 2.6x in ``make bench`` with the same code. The summary prints both CPU ratios; the
second (servers and load generator) is the one a quiet machine's throughput ratio follows.

``--profile`` samples the drop-in's workers (every thread) with py-spy (in the dev extras), by default
only the thread holding the GIL (``--idle``: every thread, waiting or not), from start to end, and prints
per thread the functions with the most samples below them and of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import _summary
import _venv
from _systems import Processes, System, processes_in, start_keyturn_django, start_simplejwt
from _workloads import mint, race, renew_lost, sequential, throughput


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def measure(processes: Processes, systems: list[System], args: argparse.Namespace) -> None:
    n = args.sessions
    racing = len(args.race) * args.race_trials
    made = await asyncio.gather(*(mint(s, 0, n + 1 + racing) for s in systems))
    pools = {s.key: m[:n] for s, m in zip(systems, made, strict=True)}
    solo = {s.key: m[n] for s, m in zip(systems, made, strict=True)}
    racers = {s.key: iter(m[n + 1 :]) for s, m in zip(systems, made, strict=True)}
    for system in systems:  # warm-up
        await sequential(solo[system.key], 50)
        await throughput(pools[system.key], args.warmup)
        await renew_lost(pools[system.key])
    rates: dict[str, list[float]] = {s.key: [] for s in systems}
    latencies: dict[str, list[float]] = {s.key: [] for s in systems}
    cpu_ms: dict[str, list[float]] = {s.key: [] for s in systems}
    driver_ms: dict[str, list[float]] = {s.key: [] for s in systems}
    errors: dict[str, Counter[str]] = {s.key: Counter() for s in systems}
    for rnd in range(args.rounds):
        order = systems[rnd % len(systems) :] + systems[: rnd % len(systems)]
        figures: dict[str, str] = {}
        for system in order:
            if args.sequential:
                seq = await sequential(solo[system.key], args.sequential)
                latencies[system.key] += seq["latencies_ms"]
                errors[system.key].update(seq["errors"])
                p = _summary.percentiles(seq["latencies_ms"])
                figures[system.key] = f"seq p50 {p['p50']:.2f} p99 {p['p99']:.2f} ms"
        for system in order:
            await renew_lost(pools[system.key])
            cpu, ours = processes.cpu_seconds()[system.key], time.process_time()
            run = await throughput(pools[system.key], args.seconds)
            per = (processes.cpu_seconds()[system.key] - cpu) * 1000 / max(1, run["ok"])
            driver = (time.process_time() - ours) * 1000 / max(1, run["ok"])
            rates[system.key].append(run["rate"])
            cpu_ms[system.key].append(per)
            driver_ms[system.key].append(driver)
            errors[system.key].update(run["errors"])
            figures[system.key] = f"{run['rate']:7.1f}/s cpu {per:.2f} (+{driver:.2f}) ms  " + figures.get(
                system.key, ""
            )
        line = "  |  ".join(f"{s.key} {figures[s.key]}" for s in systems)
        ratio = _ratio(rates, systems, -1)
        print(f"round {rnd + 1}: {line}  |  ratio {ratio}  |  load {load()}", flush=True)
    print("median rates:", {k: round(sorted(v)[len(v) // 2], 1) for k, v in rates.items()})
    medians = {k: round(sorted(v)[len(v) // 2], 3) for k, v in cpu_ms.items()}
    print("median server CPU ms per refresh:", medians)
    generator = {k: round(sorted(v)[len(v) // 2], 3) for k, v in driver_ms.items()}
    print("median load generator CPU ms per refresh:", generator)
    print(f"ratio of medians: {_ratio(rates, systems, None)}")
    if "simplejwt" in medians:
        theirs, with_generator = medians["simplejwt"], medians["simplejwt"] + generator["simplejwt"]
        for key in medians.keys() - {"simplejwt"}:
            print(
                f"CPU per refresh, SimpleJWT's over {key}'s: servers {theirs / medians[key]:.2f}x (a busy "
                f"machine's throughput ratio follows this), servers and load generator "
                f"{with_generator / (medians[key] + generator[key]):.2f}x (a quiet machine's follows this, "
                f"taken on a quiet machine: load inflates SimpleJWT's CPU more, see the module)"
            )
    for key, values in latencies.items():
        if values:
            p = _summary.percentiles(values)
            print(f"sequential {key}: p50 {p['p50']:.2f} ms  p99 {p['p99']:.2f} ms (pooled)")
    print("errors:", {k: dict(v) for k, v in errors.items()})
    for copies in args.race:
        for system in systems:
            trials = [await race(next(racers[system.key]), copies) for _ in range(args.race_trials)]
            print(
                f"race x{copies} {system.key}: 200s {[t['succeeded'] for t in trials]} "
                f"chains alive {[t['chains_alive'] for t in trials]}"
            )
    print(f"load {load()}")


def _ratio(rates: dict[str, list[float]], systems: list[System], index: int | None) -> str:
    """Each drop-in's throughput over SimpleJWT's: in round ``index``, or of the medians (``None``)."""
    if "simplejwt" not in rates:
        return "-"

    def pick(key: str) -> float:
        values = rates[key]
        return sorted(values)[len(values) // 2] if index is None else values[index]

    theirs = pick("simplejwt")
    return " ".join(f"{s.key} {pick(s.key) / theirs:.2f}x" for s in systems if s.key != "simplejwt")


def print_profile(raw: Path, top: int) -> None:
    """py-spy's collapsed stacks (``process...;thread...;frame;... count``) as the heaviest frames of the
    workers' threads (gunicorn's arbiter left out), each thread by name over every worker."""
    total: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    own: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        processes = 0
        while frames and frames[0].startswith("process "):
            frames, processes = frames[1:], processes + 1
        if processes < 2 or not frames or not frames[0].startswith("thread "):
            continue  # the arbiter, not a worker
        thread = frames[0].partition("): ")[2] or "unnamed"
        frames = frames[1:]
        n = int(count)
        total[thread] += n
        for frame in set(frames):
            inclusive.setdefault(thread, Counter())[frame] += n
        if frames:
            own.setdefault(thread, Counter())[frames[-1]] += n
    grand = sum(total.values())
    for thread, n in total.most_common():
        print(f"=== thread {thread}: {n} samples ({n / grand:.0%} of the workers') ===")
        for name, table in (("below", inclusive), ("own", own)):
            print(f"  -- most samples {name} --")
            for frame, k in table.get(thread, Counter()).most_common(top):
                print(f"  {k / n:6.1%}  {frame[:150]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--rounds", type=int, default=3)
    add("--seconds", type=float, default=5.0)
    add("--warmup", type=float, default=2.0)
    add("--sessions", type=int, default=64)
    add("--sequential", type=int, default=300, help="sequential refreshes a round (0: none)")
    add("--race", type=int, nargs="*", default=[20], help="copies of one token sent at once (20)")
    add("--race-trials", type=int, default=3)
    add("--workers", type=int, default=2)
    add("--only", choices=["simplejwt", "keyturn-django"], help="one of the two")
    add("--baseline-src", type=Path, help="also the drop-in with keyturn from this src/ (another commit's)")
    add("--profile", action="store_true", help="sample the drop-in with py-spy (its throughput runs)")
    add("--idle", action="store_true", help="py-spy: waiting threads too (default: the GIL's holder)")
    add("--rate", type=int, default=250, help="py-spy samples per second (250)")
    add("--top", type=int, default=35)
    add("--save", type=Path, help="keep py-spy's collapsed stacks there")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    venv_python = _venv.ensure()
    with tempfile.TemporaryDirectory(prefix="keyturn-django-profile-") as tmp:
        workdir = Path(tmp)
        raw = workdir / "dropin.txt"
        wrapper: list[str] = []
        if args.profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            wrapper = [spy, "record", "--subprocesses", "--threads", "--nonblocking"]
            wrapper += ["--idle"] if args.idle else ["--gil"]
            wrapper += ["--rate", str(args.rate), "--format", "raw", "-o", str(raw), "--"]
        with processes_in(workdir) as processes:
            systems = []
            if args.only != "keyturn-django" and not args.profile:
                systems.append(start_simplejwt(processes, venv_python, args.workers, "sync"))
            if args.only != "simplejwt":
                systems.append(start_keyturn_django(processes, args.workers, "sync", wrapper=wrapper))
            if args.baseline_src and not args.profile:
                systems.append(
                    start_keyturn_django(
                        processes, args.workers, "sync", key="baseline", label="baseline",
                        src=args.baseline_src.resolve(),
                    )
                )  # fmt: skip
            processes.wait_ready()
            print(f"servers ready; load {load()}", flush=True)
            began = time.monotonic()
            asyncio.run(measure(processes, systems, args))
            print(f"measured in {time.monotonic() - began:.0f} s")
            processes.stop_all(signal.SIGINT)
        if args.profile:
            if args.save:
                shutil.copyfile(raw, args.save)
            print_profile(raw, args.top)


if __name__ == "__main__":
    main()
