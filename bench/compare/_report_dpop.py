"""The report's DPoP section (issue 17): what a proof costs, Bearer against DPoP (standard library only).

Every figure comes from the results JSON (``summary.dpop``, made by ``_summary`` from what ``_dpop_cost.py``
measured); a results file from before the section existed renders without it.
"""

from __future__ import annotations

from typing import Any

from _markdown import errors, ms, rate, table


def _times(value: float | None) -> str:
    """``1.35x``; a ratio below 0.1 with two significant digits (``0.00064x``), never ``0.00x``."""
    if not value:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def _per_second(value: float) -> str:
    """``3,734 (268 µs each)``, ``2,296,323 (0.44 µs each)``."""
    if not value:
        return "-"
    each = 1e6 / value
    return f"{rate(value)} ({each:,.0f} µs each)" if each >= 10 else f"{rate(value)} ({each:.2g} µs each)"


def section(data: dict[str, Any]) -> list[str]:
    """``## DPoP: what a proof costs``: one table and what was measured; nothing if the run had no DPoP."""
    summary = data["summary"].get("dpop")
    if summary is None:
        return []
    seq, ratios = summary["sequential"], summary["ratios"]
    rows = [
        [
            f"sequential refresh {p}, ms",
            ms(seq["bearer"][p]),
            ms(seq["dpop"][p]),
            _times(ratios[f"sequential_{p}"]),
        ]
        for p in ("p50", "p99")
    ]
    for n, by in summary["throughput"].items():
        rows.append(
            [
                f"refreshes/s with {n} sessions",
                rate(by["bearer"]["rate"]),
                rate(by["dpop"]["rate"]),
                _times(ratios["throughput"][n]),
            ]
        )
    names = {"first_seen": "a token seen for the first time", "repeated": "a token seen before (cached)"}
    for what, by in summary["verify"].items():
        rows.append(
            [
                f"access-token verification, {names[what]}, per second",
                _per_second(by["bearer"]),
                _per_second(by["dpop"]),
                _times(ratios["verify"][what]),
            ]
        )
    found = {kind: _errors_of(summary, kind) for kind in ("bearer", "dpop")}
    rows.append(["errors in the refresh runs", *(str(sum(f.values())) for f in found.values()), ""])
    return [
        "## DPoP: what a proof costs",
        "",
        *table(["", "Bearer", "DPoP", "DPoP / Bearer"], rows),
        *_text(data, found),
    ]


def _errors_of(summary: dict[str, Any], kind: str) -> dict[str, int]:
    total = dict(summary["sequential"][kind]["errors"])
    for by in summary["throughput"].values():
        for reason, n in by[kind]["errors"].items():
            total[reason] = total.get(reason, 0) + n
    return total


def _text(data: dict[str, Any], found: dict[str, dict[str, int]]) -> list[str]:
    settings = data["meta"]["settings"]["dpop"]
    verify = data["dpop"]["verify"]["settings"]
    rounds = settings["rounds"]
    refresh = (
        "Refresh: Keyturn on SQLite (the one process of the tables above), with sessions refreshed by the "
        "token alone (Bearer) and sessions bound to a DPoP key each (RFC 9449), measured in "
        f"{rounds} {'round' if rounds == 1 else 'rounds'}, alternating the two: {settings['sequential']} "
        f"sequential refreshes per kind a round (percentiles over all), then {settings['seconds']:g} s of "
        "closed-loop throughput per kind a round (the median round). Each bound refresh carries a new "
        "proof, signed by the load generator when it sends the request, as a client signs it (ES256, on "
        "the same cores, so the signing is in the figures); the service checks the proof's signature, "
        "`htm`, `htu` and `iat` against the session's key and records its `jti` in the store. These runs "
        "are shorter than the ones above, so their Bearer figures differ a little from those tables: "
        "compare the two columns."
    )
    if any(found.values()):
        refresh += " Errors: " + "; ".join(f"{kind}: {errors(f)}" for kind, f in found.items() if f) + "."
    check = (
        f"Verification: `bench/verify.py --dpop` in one process ({verify['alg']}, {verify['tokens']:,} "
        f"tokens a round, median of {verify['rounds']} rounds, {verify['revoked']:,} revocations held): "
        "`AccessTokenVerifier` on Bearer access tokens, and on bound ones (`cnf.jkt`) presented as `DPoP` "
        "with a proof made beforehand (the client's signing is not the resource server's cost). A cached "
        "token skips the token's own checks, but a bound token's every call brings a new proof to parse, "
        "verify, match to the token (`ath`, `jkt`) and record in the replay cache, so a cached bound token "
        "costs about one proof check. Access tokens stay Bearer unless `KEYTURN_DPOP_BIND_ACCESS_TOKENS` is "
        "on: these two rows are what a resource server pays when they are bound."
    )
    return [refresh, "", check, ""]
