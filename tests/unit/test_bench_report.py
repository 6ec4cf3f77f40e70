"""docs/benchmarks.md is what bench/compare/report.py makes of the results JSON, DPoP section included.

The report's modules are the benchmark's (``bench/compare``, standard library only), imported from there;
``bench_dpop_results.json`` holds what ``bench/compare/_dpop_cost.py`` measures (its raw shape), with round
figures so that each ratio in the section is known in advance.
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPARE = ROOT / "bench" / "compare"
RESULTS = COMPARE / "results" / "benchmarks.json"
FIXTURE = Path(__file__).with_name("bench_dpop_results.json")


def _compare_modules() -> tuple[ModuleType, ModuleType]:
    """``report`` and ``_summary`` as ``run.py`` imports them (their directory on the path to import)."""
    sys.path.insert(0, str(COMPARE))
    try:
        return importlib.import_module("report"), importlib.import_module("_summary")
    finally:
        sys.path.remove(str(COMPARE))


report, summary = _compare_modules()


def _committed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RESULTS.read_text())
    return data


def _with_dpop() -> dict[str, Any]:
    """The committed results with the fixture's DPoP measurements, summarised as ``run.py`` does."""
    data = copy.deepcopy(_committed())
    measured = json.loads(FIXTURE.read_text())
    data["dpop"] = measured["dpop"]
    data["meta"]["settings"]["dpop"] = measured["settings"]
    data["summary"] = summary.summarize(data)
    return data


def _section(page: str, heading: str) -> str:
    """From ``## heading`` to the next heading."""
    start = page.index("\n## " + heading)
    return page[start : page.index("\n## ", start + 1)]


def test_docs_benchmarks_is_what_the_report_makes_of_the_committed_results() -> None:
    """The page is generated: a hand edit, or a report change without `make bench`, would show other figures
    than the JSON beside it holds."""
    page = report.render(_committed(), "../bench/compare/results")
    assert page == (ROOT / "docs" / "benchmarks.md").read_text()


def test_results_without_dpop_render_without_the_section() -> None:
    """A results file from before the DPoP section still renders (the report must not invent figures)."""
    data = copy.deepcopy(_committed())
    data.pop("dpop", None)
    data["meta"]["settings"].pop("dpop", None)
    data["summary"] = summary.summarize(data)
    assert "dpop" not in data["summary"]
    assert "## DPoP" not in report.render(data, "plots")
    assert "## DPoP" in report.render(_with_dpop(), "plots")


def test_dpop_section_sets_bearer_and_dpop_side_by_side_with_their_ratio() -> None:
    """Acceptance 4 of issue 17: each figure with and without a proof, and what the proof costs as a ratio."""
    section = _section(report.render(_with_dpop(), "plots"), "DPoP: what a proof costs")
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows == [
        "|  | Bearer | DPoP | DPoP / Bearer |",
        "| sequential refresh p50, ms | 2.00 | 3.00 | 1.50x |",
        "| sequential refresh p99, ms | 4.00 | 5.00 | 1.25x |",
        "| refreshes/s with 16 sessions | 1,100 | 715 | 0.65x |",
        "| refreshes/s with 64 sessions | 1,300 | 910 | 0.70x |",
        "| access-token verification, a token seen for the first time, per second | 4,000 (250 µs each) "
        "| 1,600 (625 µs each) | 0.40x |",
        "| access-token verification, a token seen before (cached), per second | 800,000 (1.2 µs each) "
        "| 2,500 (400 µs each) | 0.0031x |",
        "| errors in the refresh runs | 0 | 2 |  |",
    ]


def test_dpop_section_says_what_was_measured() -> None:
    """Figures without their conditions cannot be judged: rounds, lengths, verify.py's settings, errors."""
    section = _section(report.render(_with_dpop(), "plots"), "DPoP: what a proof costs")
    assert "in 2 rounds, alternating the two: 5 sequential refreshes" in section
    assert "then 2 s of closed-loop throughput" in section
    assert "(ES256, 1,000 tokens a round, median of 3 rounds, 10,000 revocations held)" in section
    assert "Errors: dpop: 2 x `401 invalid_dpop_proof`." in section


def test_dpop_section_comes_before_the_plots() -> None:
    """The section belongs with the measured workloads, not after the plots and the method."""
    page = report.render(_with_dpop(), "plots")
    assert page.index("## A rotated refresh token replayed later") < page.index("## DPoP: what a proof costs")
    assert page.index("## DPoP: what a proof costs") < page.index("## Plots")


@pytest.mark.parametrize(("kind", "expected"), [("bearer", 2.0), ("dpop", 3.0)])
def test_dpop_summary_pools_the_sequential_rounds(kind: str, expected: float) -> None:
    """Percentiles over every round's refreshes, as for the systems above (rounds alternate the kinds)."""
    reduced = _with_dpop()["summary"]["dpop"]["sequential"][kind]
    assert reduced["count"] == 10
    assert reduced["p50"] == expected


def test_shared_store_targets_are_judged_on_the_median_rate_and_on_every_rounds_p99() -> None:
    """Issue 21's targets: a shared store's median with 64 sessions against its floor, and each round's
    sequential p99 (a store above SimpleJWT in one round fails, however good the pooled p99 is)."""
    data = copy.deepcopy(_committed())
    judged = data["summary"]
    judged["throughput"]["64"]["keyturn-postgresql"]["rate"] = 1600.0  # each exactly at its floor
    judged["throughput"]["64"]["keyturn-redis"]["rate"] = 2600.0
    baseline = judged["sequential"]["simplejwt"]["p99_by_round"]
    for key, figures in judged["sequential"].items():
        if key != "simplejwt":
            figures["p99_by_round"] = [ms - 0.01 for ms in baseline]
    met = {t["what"]: t["met"] for t in summary.shared_targets(judged)}
    assert len(met) == 3, met
    assert all(met.values()), met

    judged["throughput"]["64"]["keyturn-redis"]["rate"] = 2599.0
    judged["sequential"]["keyturn-sqlite"]["p99_by_round"][2] = (
        judged["sequential"]["simplejwt"]["p99_by_round"][2] + 0.01
    )
    targets = summary.shared_targets(judged)
    assert [t["met"] for t in targets] == [True, False, False], targets
    assert "keyturn-sqlite in round 3" in targets[2]["measured"]
    page = report.render(data, "../bench/compare/results")
    assert page.count("**not met**") == 2
