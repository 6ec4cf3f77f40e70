"""How the report writes figures and tables (standard library only): one home for ``report.py`` and its
sections in other modules (``_report_dpop.py``)."""

from __future__ import annotations


def ms(value: float) -> str:
    """Milliseconds: two decimals below 10, one from there."""
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def rate(value: float) -> str:
    return f"{value:,.0f}"


def errors(found: dict[str, int]) -> str:
    """``0``, or each answer other than a success with its count, the most frequent first."""
    if not found:
        return "0"
    return "; ".join(f"{n} x `{reason}`" for reason, n in sorted(found.items(), key=lambda kv: -kv[1]))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, and the blank line after it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]
