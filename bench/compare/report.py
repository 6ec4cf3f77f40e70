"""Write ``docs/benchmarks.md`` from the results JSON: every figure in it comes from that file.

    python bench/compare/report.py [bench/compare/results/benchmarks.json] [docs/benchmarks.md]

Standard library only, so any Python can run it; ``run.py`` calls :func:`write` at the end of a run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import _report_dpop
from _markdown import errors as _errors
from _markdown import ms as _ms
from _markdown import rate as _rate
from _markdown import table as _table
from _summary import shared_targets

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

PLOTS = {
    "refresh-latency.png": "Sequential refresh latency: the share of refreshes answered within a time",
    "refresh-throughput.png": "Refresh throughput and latency against the number of concurrent sessions",
    "protected-endpoint.png": "Protected endpoint: requests per second and latency",
    "race.png": "The same refresh token sent 2, 5 and 20 times at once",
}


def _ratio(value: float | None) -> str:
    """``**6.4x**`` when Keyturn is ahead, ``0.7x (behind)`` when not."""
    if not value:
        return "-"
    return f"**{value:.1f}x**" if value >= 1 else f"{value:.1f}x (behind)"


def _label(data: dict[str, Any], key: str) -> str:
    systems = data["meta"]["systems"]
    resources = data["meta"]["resources"]
    return str((systems.get(key) or resources.get(key) or {"label": key})["label"])


def _spread(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _glance(data: dict[str, Any]) -> list[str]:
    """One table: each workload's headline figure for every system, Keyturn's with its ratio."""
    summary, replay = data["summary"], data["replay"]
    keys = list(summary["sequential"])
    base = "simplejwt"

    def cell(key: str, text: str, ratio: float | None) -> str:
        if key == base or not ratio:
            return text
        return f"{text} (**{ratio:.1f}x**)" if ratio >= 1 else f"{text} ({ratio:.1f}x)"

    rows = []
    seq = summary["sequential"]
    rows.append(
        ["sequential refresh p50 / p99, ms (SimpleJWT's p99 / this)"]
        + [
            cell(
                k, f"{_ms(seq[k]['p50'])} / {_ms(seq[k]['p99'])}", summary["ratios"]["sequential_p99"].get(k)
            )
            for k in keys
        ]
    )
    for n, by in summary["throughput"].items():
        rows.append(
            [f"refreshes/s with {n} sessions (x SimpleJWT)"]
            + [cell(k, _rate(by[k]["rate"]), summary["ratios"]["throughput"][n].get(k)) for k in keys]
        )
    for n, by in summary["protected"].items():
        row = [f"protected endpoint, requests/s with {n} sessions (x SimpleJWT)"]
        for k in keys:
            if k == base:
                row.append(_rate(by["simplejwt-drf"]["rate"]))
            elif k == "keyturn-sqlite":
                row.append(
                    cell(k, _rate(by["keyturn-fastapi"]["rate"]), summary["ratios"]["protected"].get(n))
                )
            else:
                row.append("(the same endpoint)")
        rows.append(row)
    most = max(summary["race"], key=int, default=None)
    if most is not None:
        rows.append(
            [f"same token {most} times at once: live chains after it (each trial)"]
            + [_spread(summary["race"][most][k]["chains_alive"]) for k in keys]
        )
    wait = data["meta"]["settings"]["replay_wait_s"]
    row = [f"rotated token replayed after {wait:g} s: family revoked?"]
    for k in keys:
        shorter = [o for key, o in replay.items() if key.startswith(k + "-") and o["grace_period_s"] < wait]
        own = "yes" if replay[k]["family_revoked"] else "no"
        if k == base:
            row.append(f"{own} (old token refused, its successor lives on)")
        else:
            grace = replay[k]["grace_period_s"]
            text = f"{own} (inside the {grace:g} s grace period)"
            if shorter:
                verdict = "yes" if shorter[0]["family_revoked"] else "no"
                text += f"; {verdict} with a {shorter[0]['grace_period_s']:g} s grace period"
            row.append(text)
    rows.append(row)
    errors = []
    for k in keys:
        total = sum(seq[k]["errors"].values())
        total += sum(by[k]["error_count"] for by in summary["throughput"].values())
        errors.append(str(total))
    rows.append(["errors in the refresh runs", *errors])
    return _table(["", *[_label(data, k) for k in keys]], rows)


def _rounds_phrase(settings: dict[str, Any]) -> str:
    return _plural(settings["rounds"], "round")


def render(data: dict[str, Any], plots_dir: str) -> str:
    meta, summary = data["meta"], data["summary"]
    settings = meta["settings"]
    out: list[str] = []
    add = out.extend
    add(
        [
            "# Benchmarks: Keyturn and djangorestframework-simplejwt side by side",
            "",
            "<!-- Generated by `make bench` (bench/compare/run.py and bench/compare/report.py) from "
            "bench/compare/results/benchmarks.json. Do not edit by hand: run `make bench` again. -->",
            "",
            "Is Keyturn faster than SimpleJWT, and is it safer when the same refresh token arrives twice? "
            "Both were measured in **one run** on the same machine, the same load generator driving each in "
            "turn. `make bench` repeats all of it and rewrites this page, the JSON and the plots.",
            "",
        ]
    )
    if meta.get("quick"):
        add(["> **A `--quick` run** (one short round): a check of the harness, not figures to quote.", ""])
    add([f"Run of {meta['date']} (UTC); it took {meta['duration_s'] / 60:.1f} minutes.", ""])
    add(["## In short", ""])
    add(_glance(data))
    rows = [[t["what"], t["measured"], "met" if t["met"] else "**not met**"] for t in summary["targets"]]
    add(_table(["issue 8 target, judged on Keyturn's default (SQLite, one process)", "this run", ""], rows))
    shared = shared_targets(summary, lambda key: _label(data, key))
    if shared:
        rows = [[t["what"], t["measured"], "met" if t["met"] else "**not met**"] for t in shared]
        add(_table(["issue 21 target, the shared stores", "this run", ""], rows))
    add(_machine(meta))
    add(_setup(meta))
    add(_sequential(data))
    add(_throughput(data))
    add(_protected(data))
    add(_race(data))
    add(_replay(data))
    add(_report_dpop.section(data))
    add(["## Plots", ""])
    for name, title in PLOTS.items():
        add([f"![{title}]({plots_dir}/{name})", "", f"*{title}* (`{name}`).", ""])
    add(_method(settings))
    return "\n".join(out)


def _machine(meta: dict[str, Any]) -> list[str]:
    m = meta["machine"]
    ours, theirs = meta["versions"]["keyturn_venv"], meta["versions"]["simplejwt_venv"]
    servers = meta["versions"]["servers"]
    before, after = (
        ", ".join(f"{x:.1f}" for x in meta[k]) for k in ("load_average_before", "load_average_after")
    )
    lines = [
        "## Machine and versions",
        "",
        f"- {m['cpu']}, {m['cores']} cores, {m['memory']} of memory; {m['os']}; Python {m['python']}. Load "
        f"average (1, 5, 15 min) {before} before the run and {after} after it: the load generator and every "
        "server share these cores, and whatever else runs on the machine shows in the figures.",
        f"- Keyturn {ours['keyturn']}: FastAPI {ours['fastapi']}, Starlette {ours['starlette']}, uvicorn "
        f"{ours['uvicorn']} with uvloop {ours['uvloop']}, PyJWT {ours['PyJWT']}, cryptography "
        f"{ours['cryptography']}, psycopg {ours['psycopg']}, redis-py {ours['redis']}.",
        f"- SimpleJWT, in its own venv (`bench/compare/requirements.txt`): Django {theirs['Django']}, "
        f"djangorestframework {theirs['djangorestframework']}, djangorestframework-simplejwt "
        f"{theirs['djangorestframework-simplejwt']}, gunicorn {theirs['gunicorn']}, PyJWT {theirs['PyJWT']}.",
    ]
    if servers:
        lines.append("- " + ", ".join(f"{name} {version}" for name, version in sorted(servers.items())) + ".")
    for store, why in meta.get("skipped_stores", {}).items():
        lines.append(f"- Keyturn on {store} was **left out** of this run: `{why}`.")
    return [*lines, ""]


def _setup(meta: dict[str, Any]) -> list[str]:
    settings = meta["settings"]
    rows = []
    for s in meta["systems"].values():
        grace = "none" if s["grace_period_s"] is None else f"{s['grace_period_s']:g} s"
        rows.append([s["label"], s["setup"], grace])
    for r in meta["resources"].values():
        rows.append([r["label"], r["setup"], ""])
    limits = settings.get("keyturn_rate_limits")
    limits_text = (
        f" Keyturn's rate limits are on ({limits}): each refresh and login still takes its buckets in the "
        "store, but the limits are raised out of reach, since the whole load comes from one address. "
        "SimpleJWT has no rate limit of its own (DRF throttling is not part of its setup)."
        if limits
        else ""
    )
    text = (
        "SimpleJWT runs as its documentation recommends for rotation: `ROTATE_REFRESH_TOKENS` and "
        "`BLACKLIST_AFTER_ROTATION` on, `rest_framework_simplejwt.token_blacklist` installed and migrated, "
        "every other SimpleJWT setting at its default (`bench/compare/simplejwt_app.py`). Its SQLite gets "
        "the settings Keyturn's own SQLite store uses (WAL, `synchronous=NORMAL`, `BEGIN IMMEDIATE` for "
        "writes, a 5 s busy timeout) and persistent connections. gunicorn runs "
        f"{settings['simplejwt_workers']} `{settings['simplejwt_worker_class']}` workers, its default and "
        "SimpleJWT's usual deployment; a sync worker answers every request with `Connection: close`, so "
        "its clients open a connection per request, and that time is part of each measured request. "
        "Keyturn runs as `keyturn serve` with its defaults (uvicorn, one process per port): one process on "
        "SQLite, two on PostgreSQL and two on Redis, with the sessions spread over both." + limits_text + " "
        "Keyturn's protected endpoint (`bench/compare/keyturn_resource.py`) verifies access tokens offline: "
        "the keys of the service's JWKS (fetched at start, kept as long as its Cache-Control allows), "
        "the revocation feed polled every second, a cache of validated tokens. SimpleJWT's "
        "`JWTAuthentication` checks the HS256 signature and loads the user from the database on every "
        "request."
    )
    return ["## What runs", "", *_table(["system", "how it runs", "grace period"], rows), text, ""]


def _sequential(data: dict[str, Any]) -> list[str]:
    summary, settings = data["summary"], data["meta"]["settings"]
    rows = []
    for key, s in summary["sequential"].items():
        ratio = summary["ratios"]["sequential_p99"].get(key)
        rows.append(
            [
                _label(data, key),
                *(_ms(s[p]) for p in ("p50", "p90", "p99", "max")),
                _rate(s["rate"]),
                _errors(s["errors"]),
                _ratio(ratio) if key != "simplejwt" else "",
            ]
        )
    header = [
        "system",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "refreshes/s",
        "errors",
        "p99: SimpleJWT's / this",
    ]
    return [
        "## Refresh latency, one request at a time",
        "",
        *_table(header, rows),
        f"One session refreshes its own chain {settings['sequential']} times a round on one connection, "
        f"{_rounds_phrase(settings)}; the percentiles are over every refresh of every round.",
        "",
    ]


def _loaded_rows(data: dict[str, Any], part: str, ratio_of: Any) -> list[list[str]]:
    rows = []
    for n, by_key in data["summary"][part].items():
        for key, s in by_key.items():
            ratio = ratio_of(n, key)
            rows.append(
                [
                    n,
                    _label(data, key),
                    f"**{_rate(s['rate'])}**",
                    f"{_rate(s['rate_min'])} to {_rate(s['rate_max'])}",
                    _ms(s["p50_ms"]),
                    _ms(s["p99_ms"]),
                    _errors(s["errors"]),
                    _ratio(ratio) if ratio else "",
                ]
            )
    return rows


def _throughput(data: dict[str, Any]) -> list[str]:
    summary, settings = data["summary"], data["meta"]["settings"]
    rows = _loaded_rows(data, "throughput", lambda n, key: summary["ratios"]["throughput"][n].get(key))
    lost = {key: s["sessions_lost"] for by in summary["throughput"].values() for key, s in by.items()}
    header = ["sessions", "system", "refreshes/s", "rounds", "p50 ms", "p99 ms", "errors", "x SimpleJWT"]
    lost_text = (
        "No session lost its chain."
        if not any(lost.values())
        else "Sessions whose chain was refused (401) and stopped for the rest of a run: "
        + ", ".join(f"{_label(data, k)} {n}" for k, n in lost.items() if n)
        + "."
    )
    return [
        "## Refresh throughput, many sessions at once",
        "",
        *_table(header, rows),
        "Each session rotates its own chain on its own connection as fast as the answers come (a closed "
        f"loop), {settings['seconds']:g} s a run, {_rounds_phrase(settings)} per system alternating with the "
        "others; the median round is shown, with the lowest and highest. Only successful refreshes count; "
        "every other answer is listed under errors. " + lost_text,
        "",
    ]


def _protected(data: dict[str, Any]) -> list[str]:
    summary = data["summary"]
    rows = _loaded_rows(
        data,
        "protected",
        lambda n, key: summary["ratios"]["protected"].get(n) if key == "keyturn-fastapi" else None,
    )
    header = ["sessions", "endpoint", "requests/s", "rounds", "p50 ms", "p99 ms", "errors", "x SimpleJWT"]
    return [
        "## Protected endpoint",
        "",
        *_table(header, rows),
        "`GET /api/me/` with each session's own access token (one token per session, sent again and again, "
        "as a client does for the token's lifetime), each session on its own connection; Keyturn's tokens "
        "come from Keyturn on SQLite (the endpoint does not depend on the store).",
        "",
    ]


def _race(data: dict[str, Any]) -> list[str]:
    settings = data["meta"]["settings"]
    rows = []
    for n, by_system in data["summary"]["race"].items():
        for key, s in by_system.items():
            rows.append(
                [
                    n,
                    _label(data, key),
                    _spread(s["succeeded"]),
                    _spread(s["distinct_tokens"]),
                    _spread(s["chains_alive"]),
                    _errors(s["answers"]),
                ]
            )
    header = ["copies", "system", "answered 200", "distinct new refresh tokens", "chains that still refresh"]
    return [
        "## The same refresh token sent several times at once",
        "",
        *_table([*header, "answers, all trials"], rows),
        f"For each number of copies, {settings['race_trials']} trials, each on a fresh session (the columns "
        "list the trials in order). The session's refresh token is sent that many times at the same moment, "
        "each copy on a connection opened beforehand (on PostgreSQL and Redis, alternately to both "
        "processes). *Distinct new refresh tokens*: how many different tokens the successful answers hold. "
        "*Chains that still refresh*: each of those tokens is then refreshed once, and each that works is a "
        "live chain. One chain is what a session should be; more is a session forked into parts that each "
        "live on (a stolen copy among them would never be noticed); none is a user logged out by a race. "
        "SimpleJWT checks the blacklist and then writes to it without a lock between the two, so every "
        f"copy that its {settings['simplejwt_workers']} workers take up at the same moment gets through; "
        "the copies after them are refused. Keyturn answers every copy inside the grace period with the "
        "same successor.",
        "",
    ]


def _replay(data: dict[str, Any]) -> list[str]:
    settings = data["meta"]["settings"]
    rows = []
    for key, o in data["replay"].items():
        answer = f"`{o['replay_answer']}`" + (
            " (the current token)" if o["replay_returned_current_token"] else ""
        )
        rows.append(
            [
                _label(data, key),
                "none" if o["grace_period_s"] is None else f"{o['grace_period_s']:g} s",
                answer,
                f"`{o['newest_answer']}`",
                "**yes**" if o["family_revoked"] else "no",
            ]
        )
    wait = settings["replay_wait_s"]
    header = ["system", "grace period", f"the old token after {wait:g} s", "then the newest token"]
    text = (
        f"A session refreshes once (its old token is now rotated), waits {wait:g} s, sends the old token "
        "again, as a thief who copied it would (with two processes, to the other one), then refreshes with "
        "the newest token, as its owner would. Keyturn answers a rotated token within its grace period (30 s "
        "by default) with the current token, by design: that is how two tabs or a retried request converge "
        f"on one chain. So at the default setting a replay after {wait:g} s is inside the grace period: it "
        "revokes nothing, and whoever sent it, the owner or a thief, gets the current pair. To show what "
        "happens past the grace period without waiting 30 s, Keyturn also "
        f"runs with `KEYTURN_GRACE_PERIOD={settings['short_grace_s']:g}` for this test: there the replay is "
        "a reuse, and the whole family is revoked, the owner's newest token with it. SimpleJWT has no grace "
        "period and no families: the blacklisted old token is refused, and the chain it was rotated into "
        "lives on, whoever holds it."
    )
    return [
        "## A rotated refresh token replayed later",
        "",
        *_table([*header, "family revoked"], rows),
        text,
        "",
    ]


def _method(settings: dict[str, Any]) -> list[str]:
    return [
        "## How it is measured",
        "",
        "- One load generator for both: Python asyncio (uvloop) on raw HTTP/1.1 keep-alive connections "
        "(`bench/_http.py`, extended in `bench/compare/_client.py` to open a new connection after "
        "`Connection: close`), the same sessions and connections for each system, every server on loopback.",
        f"- A warm-up first ({settings['warmup_seconds']:g} s of load and a short sequential run per "
        f"system); then {_rounds_phrase(settings)}, each running every workload on every system in turn, "
        "the order of the systems rotating from round to round.",
        "- Errors are counted, never hidden: throughput counts successful answers only, and the tables name "
        "every other answer (a Django 500 such as `database is locked` included). A request unanswered "
        "after 30 s counts as an error.",
        "- Sessions are made before the measured runs, each system's own way as its login endpoint does once "
        "the password is checked (SimpleJWT's `RefreshToken.for_user`, Keyturn's `SessionService.start`), so "
        "that password hashing (about 0.4 s a login here) does not take the run's time; one real login per "
        "system checks the endpoint. A throughput run uses the first N sessions of a pool, whose chains "
        "carry on from run to run; the replay test logs in.",
        "- Everything shares the machine's cores: the load generator, gunicorn's workers, Keyturn's "
        "processes, PostgreSQL and Redis. The figures compare the systems with one another on this machine; "
        "they are not what a dedicated server would do.",
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                                       # the whole run: JSON, plots, this page",
        ".venv/bin/python bench/compare/run.py --quick    # one short round, to try the harness",
        ".venv/bin/python bench/compare/report.py         # this page again from the JSON",
        "```",
        "",
        "The first run makes `bench/compare/.venv` (SimpleJWT, gunicorn and matplotlib, pinned in "
        "`bench/compare/requirements.txt`); later runs reuse it. PostgreSQL and Redis are expected on "
        "127.0.0.1:5432 and 127.0.0.1:6379 (`--postgres-url`, `--redis-url`): the run makes a throwaway "
        "database and key prefix there and removes them at the end, and leaves out a store it cannot reach.",
        "",
    ]


def write(data_path: Path, doc: Path) -> None:
    data = json.loads(data_path.read_text())
    plots_dir = os.path.relpath(data_path.parent, doc.parent)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(data, plots_dir))


if __name__ == "__main__":
    data_path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "benchmarks.json"
    doc = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "benchmarks.md"
    write(data_path, doc)
    print(f"wrote {doc}")
