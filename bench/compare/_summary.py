"""The figures the report and the plots show, reduced from the raw results (standard library only).

- sequential latency: percentiles of every refresh of every round pooled (rounds alternate systems, so
  pooling mixes the same moments for all);
- throughput and protected endpoint: the median over rounds of successful calls per second, with the
  lowest and highest round, every error of every round added up, and sessions lost;
- ratios: Keyturn's throughput over SimpleJWT's, SimpleJWT's latency over Keyturn's (above 1: Keyturn is
  faster);
- races: per number of copies, what each trial gave; replays as measured;
- targets: issue 8's acceptance 2, each with whether this run met it; the shared stores' targets
  (issue 21), judged from the summary;
- DPoP (issue 17), when the run measured it: Bearer and DPoP-bound refresh reduced as above, the verifier's
  rates as ``bench/verify.py`` gave them, and for each figure DPoP's over Bearer's.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from typing import Any

BASELINE = "simplejwt"
DEFAULT = "keyturn-sqlite"
"""Keyturn's default setup, the one the targets are judged on (the other stores are shown beside it)."""

SHARED_RATES = {"keyturn-postgresql": ("PostgreSQL", 1600), "keyturn-redis": ("Redis", 2600)}
"""Issue 21: the refreshes a second each shared store (two processes) reaches with 64 sessions."""


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9, max and mean (nearest rank)."""
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    return {
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "p99.9": pct(99.9),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def _merged(dicts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for d in dicts:
        total.update(d)
    return dict(total)


def _sequential(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    pooled = [ms for r in rounds for ms in r["latencies_ms"]]
    figures = percentiles(pooled)
    return {
        **figures,
        "count": len(pooled),
        "rate": 1000 / figures["mean"] if figures else 0.0,
        "errors": _merged([r["errors"] for r in rounds]),
        "p99_by_round": [percentiles(r["latencies_ms"])["p99"] for r in rounds],
    }


def _loaded(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["rate"] for r in rounds]
    return {
        "rate": statistics.median(rates),
        "rate_min": min(rates),
        "rate_max": max(rates),
        "rates": rates,
        "ok": sum(r["ok"] for r in rounds),
        "errors": _merged([r["errors"] for r in rounds]),
        "error_count": sum(sum(r["errors"].values()) for r in rounds),
        "sessions_lost": sum(r["sessions_lost"] for r in rounds),
        "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in rounds),
        "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in rounds),
        "connections_opened": sum(r["connections_opened"] for r in rounds),
    }


def _race(trials: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "trials": len(trials),
        "succeeded": [t["succeeded"] for t in trials],
        "distinct_tokens": [t["distinct_tokens"] for t in trials],
        "chains_alive": [t["chains_alive"] for t in trials],
        "answers": _merged([t["answers"] for t in trials]),
        "one_chain_every_time": all(t["distinct_tokens"] == 1 and t["chains_alive"] == 1 for t in trials),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    sequential = {key: _sequential(r) for key, r in results["refresh_sequential"].items()}
    throughput = {
        n: {key: _loaded(r) for key, r in by_system.items()}
        for n, by_system in results["refresh_throughput"].items()
    }
    protected = {
        n: {key: _loaded(r) for key, r in by_resource.items()}
        for n, by_resource in results["protected"].items()
    }
    race = {n: {key: _race(t) for key, t in by_system.items()} for n, by_system in results["race"].items()}
    keyturns = [key for key in sequential if key != BASELINE]
    base_seq = sequential.get(BASELINE, {})
    ratios: dict[str, Any] = {
        "throughput": {
            n: {key: _ratio(by[key]["rate"], by[BASELINE]["rate"]) for key in keyturns}
            for n, by in throughput.items()
        },
        "sequential_p50": {key: _ratio(base_seq.get("p50"), sequential[key].get("p50")) for key in keyturns},
        "sequential_p99": {key: _ratio(base_seq.get("p99"), sequential[key].get("p99")) for key in keyturns},
        "protected": {
            n: _ratio(by["keyturn-fastapi"]["rate"], by["simplejwt-drf"]["rate"])
            for n, by in protected.items()
        },
    }
    summary: dict[str, Any] = {
        "sequential": sequential,
        "throughput": throughput,
        "protected": protected,
        "race": race,
        "ratios": ratios,
    }
    summary["targets"] = _targets(summary, results["replay"])
    if "dpop" in results:
        summary["dpop"] = _dpop(results["dpop"])
    return summary


def _dpop(raw: dict[str, Any]) -> dict[str, Any]:
    """Bearer and DPoP side by side; ``ratios``: DPoP's figure over Bearer's (a latency above 1 and a rate
    below 1 are what a proof costs)."""
    sequential = {kind: _sequential(r) for kind, r in raw["refresh_sequential"].items()}
    throughput = {
        n: {kind: _loaded(r) for kind, r in by_kind.items()}
        for n, by_kind in raw["refresh_throughput"].items()
    }
    rates = raw["verify"]["per_second"]
    verify = {
        "first_seen": {"bearer": rates["first-seen"], "dpop": rates["dpop first-seen"]},
        "repeated": {"bearer": rates["repeated"], "dpop": rates["dpop repeated"]},
    }
    ratios = {
        "sequential_p50": _ratio(sequential["dpop"].get("p50"), sequential["bearer"].get("p50")),
        "sequential_p99": _ratio(sequential["dpop"].get("p99"), sequential["bearer"].get("p99")),
        "throughput": {n: _ratio(by["dpop"]["rate"], by["bearer"]["rate"]) for n, by in throughput.items()},
        "verify": {what: _ratio(by["dpop"], by["bearer"]) for what, by in verify.items()},
    }
    return {"sequential": sequential, "throughput": throughput, "verify": verify, "ratios": ratios}


def _targets(summary: dict[str, Any], replay: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 8, acceptance 2, judged on Keyturn's default (SQLite, one process)."""
    targets = []
    top = max(summary["throughput"], key=int, default=None)
    if top is not None:
        ratio = summary["ratios"]["throughput"][top].get(DEFAULT)
        targets.append(
            {
                "what": f"refresh throughput with {top} sessions: Keyturn at least 5 times SimpleJWT",
                "measured": f"{ratio:.1f}x" if ratio else "n/a",
                "met": bool(ratio and ratio >= 5),
            }
        )
    seq = summary["sequential"]
    if DEFAULT in seq and BASELINE in seq:
        targets.append(
            {
                "what": "sequential refresh p99: Keyturn lower than SimpleJWT",
                "measured": f"{seq[DEFAULT]['p99']:.2f} ms against {seq[BASELINE]['p99']:.2f} ms",
                "met": seq[DEFAULT]["p99"] < seq[BASELINE]["p99"],
            }
        )
    for n, ratio in summary["ratios"]["protected"].items():
        targets.append(
            {
                "what": f"protected endpoint with {n} sessions: Keyturn's rate higher than SimpleJWT's",
                "measured": f"{ratio:.1f}x" if ratio else "n/a",
                "met": bool(ratio and ratio > 1),
            }
        )
    one_chain = [
        s["one_chain_every_time"] for by in summary["race"].values() for k, s in by.items() if k != BASELINE
    ]
    targets.append(
        {
            "what": "same-token race: one chain for Keyturn (one distinct new token, and it still refreshes)",
            "measured": f"{sum(one_chain)} of {len(one_chain)} cases (each store, each number of copies)",
            "met": bool(one_chain) and all(one_chain),
        }
    )
    past_grace = [o for k, o in replay.items() if k != BASELINE and o["wait_s"] > (o["grace_period_s"] or 0)]
    targets.append(
        {
            "what": "replay past the grace period: Keyturn revokes the family",
            "measured": f"{sum(o['family_revoked'] for o in past_grace)} of {len(past_grace)} stores",
            "met": bool(past_grace) and all(o["family_revoked"] for o in past_grace),
        }
    )
    return targets


def shared_targets(summary: dict[str, Any], label: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """Issue 21, acceptance 4: each shared store's median rate with 64 sessions, and every Keyturn
    store's sequential p99 below SimpleJWT's in every round (not only pooled over the rounds); ``label``
    names a system by its key."""
    targets = []
    at_64 = summary["throughput"].get("64", {})
    for key, (name, floor) in SHARED_RATES.items():
        if key in at_64:
            figures = at_64[key]
            targets.append(
                {
                    "what": f"refreshes/s with 64 sessions: {name} (two processes) at least {floor:,}",
                    "measured": f"{figures['rate']:,.0f} (rounds {figures['rate_min']:,.0f} "
                    f"to {figures['rate_max']:,.0f})",
                    "met": figures["rate"] >= floor,
                }
            )
    seq = summary["sequential"]
    if BASELINE in seq:
        baseline = seq[BASELINE]["p99_by_round"]
        margins = [
            (mine / theirs, key, round_ + 1, mine, theirs)
            for key, figures in seq.items()
            if key != BASELINE
            for round_, (mine, theirs) in enumerate(zip(figures["p99_by_round"], baseline, strict=True))
        ]
        if margins:
            _, key, round_, mine, theirs = max(margins)
            targets.append(
                {
                    "what": "sequential refresh p99: every Keyturn store lower than SimpleJWT in every round",
                    "measured": f"closest: {label(key)} in round {round_}, "
                    f"{mine:.2f} ms against {theirs:.2f} ms",
                    "met": all(ratio < 1 for ratio, *_ in margins),
                }
            )
    return targets
