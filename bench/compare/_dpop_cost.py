"""What a DPoP proof costs (RFC 9449, issue 17): Bearer against DPoP on Keyturn's default (SQLite).

- :func:`refresh`: on the run's Keyturn on SQLite, sessions refreshed with the token alone (Bearer) and
  sessions bound to a DPoP key each (made as a login with a proof makes them), in rounds that alternate the
  two: sequential refresh latency, and throughput with 16 and 64 sessions. A bound session's every refresh
  carries a new proof, signed by the load generator as a client does; the server checks it and records its
  ``jti`` in the store. The workloads are ``_workloads``' own, the same code path for both kinds.
- :func:`verify`: ``bench/verify.py --dpop --json``: ``AccessTokenVerifier`` on Bearer access tokens and on
  bound ones (``cnf.jkt``) presented with a proof, first-seen and repeated, in one process, alternating.

Short runs (``--dpop-seconds``), so that the section adds little to ``make bench``; the figures that matter
are the ratios of two kinds measured side by side, not the rates themselves.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _systems import System
from _workloads import Session, mint, renew_lost, sequential, throughput

from keyturn.client.dpop import DpopKey

VERIFY = Path(__file__).resolve().parent.parent / "verify.py"
KINDS = ("bearer", "dpop")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--dpop-rounds",
        type=int,
        default=2,
        help="rounds of the DPoP section, Bearer and DPoP alternating (2)",
    )
    add("--dpop-seconds", type=float, default=2.0, help="length of each DPoP throughput run (2)")
    add("--dpop-sequential", type=int, default=150, help="sequential refreshes per kind and round (150)")
    add("--dpop-tokens", type=int, default=1000, help="first-seen tokens per round of bench/verify.py (1000)")


def quick(args: argparse.Namespace) -> None:
    """``--quick``: the DPoP section's shortest run too."""
    args.dpop_rounds, args.dpop_seconds, args.dpop_sequential, args.dpop_tokens = 1, 1.0, 50, 300


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "rounds": args.dpop_rounds,
        "seconds": args.dpop_seconds,
        "sequential": args.dpop_sequential,
        "concurrency": args.concurrency,
        "verify_tokens": args.dpop_tokens,
        "verify_rounds": args.dpop_rounds + 1,
    }


async def refresh(system: System, args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    """Bearer and DPoP-bound sessions of ``system``, alternating in rounds; the raw results."""
    most = max(args.concurrency)
    say(f"DPoP: making {most + 1} Bearer and {most + 1} bound sessions (a key each) ...")
    keys = [DpopKey.generate() for _ in range(most + 1)]
    made = {"bearer": await mint(system, 0, most + 1), "dpop": await mint(system, most + 1, most + 1, keys)}
    solo = {kind: sessions[0] for kind, sessions in made.items()}
    pools = {kind: sessions[1:] for kind, sessions in made.items()}
    for kind in KINDS:  # warm-up
        await sequential(solo[kind], max(args.dpop_sequential // 4, 10))
        await throughput(pools[kind][: min(args.concurrency)], args.dpop_seconds / 2)
    raw: dict[str, Any] = {
        "refresh_sequential": {kind: [] for kind in KINDS},
        "refresh_throughput": {str(n): {kind: [] for kind in KINDS} for n in args.concurrency},
    }
    for rnd in range(args.dpop_rounds):
        await _round(rnd, args, solo, pools, raw, say)
    return raw


async def _round(
    rnd: int,
    args: argparse.Namespace,
    solo: dict[str, Session],
    pools: dict[str, list[Session]],
    raw: dict[str, Any],
    say: Callable[[str], None],
) -> None:
    tag = f"[DPoP round {rnd + 1}/{args.dpop_rounds}]"
    order = KINDS if rnd % 2 == 0 else KINDS[::-1]
    for kind in order:
        seq = await sequential(solo[kind], args.dpop_sequential)
        raw["refresh_sequential"][kind].append(seq)
        ms = sorted(seq["latencies_ms"])
        say(f"{tag} sequential refresh  {kind:<6} p50 {ms[len(ms) // 2]:6.2f} ms  errors {seq['errors']}")
    for n in args.concurrency:
        for kind in order:
            await renew_lost(pools[kind])
            run = await throughput(pools[kind][:n], args.dpop_seconds)
            raw["refresh_throughput"][str(n)][kind].append(run)
            say(f"{tag} refresh x{n:<3}        {kind:<6} {run['rate']:8.1f} /s  errors {run['errors']}")


def verify(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    """``bench/verify.py --dpop --json`` in its own process: per second, Bearer and bound, first-seen and
    repeated (the median of its rounds)."""
    rounds = args.dpop_rounds + 1  # an odd count: the median is a round's own figure
    say(f"DPoP: bench/verify.py --dpop, {args.dpop_tokens} tokens a round, {rounds} rounds ...")
    command = [sys.executable, str(VERIFY), "--dpop", "--json"]
    command += ["--tokens", str(args.dpop_tokens), "--rounds", str(rounds)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    found: dict[str, Any] = json.loads(done.stdout)
    rates = found["per_second"]
    say(
        f"DPoP: verification per second: Bearer first-seen {rates['first-seen']:,.0f}, bound "
        f"{rates['dpop first-seen']:,.0f}; repeated {rates['repeated']:,.0f}, "
        f"bound {rates['dpop repeated']:,.0f}"
    )
    return found
