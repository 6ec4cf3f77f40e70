"""Draw the report's plots from the results JSON, with matplotlib (in the comparison's own venv).

    bench/compare/.venv/bin/python bench/compare/plots.py RESULTS.json OUT_DIR

- ``refresh-latency.png``: the distribution of sequential refresh latencies, one curve per system;
- ``refresh-throughput.png``: refreshes per second and p50/p99 latency against concurrent sessions;
- ``protected-endpoint.png``: protected-endpoint requests per second and latency at each concurrency;
- ``race.png``: what the same refresh token sent 2, 5 and 20 times at once gave, per system.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

COLORS = {
    "simplejwt": "#d1495b",
    "simplejwt-drf": "#d1495b",
    "keyturn-sqlite": "#00798c",
    "keyturn-fastapi": "#00798c",
    "keyturn-postgresql": "#30638e",
    "keyturn-redis": "#edae49",
    "keyturn-django": "#66a182",
    "keyturn-django-drf": "#66a182",
}
MARKERS = {
    "simplejwt": "s",
    "keyturn-sqlite": "o",
    "keyturn-postgresql": "^",
    "keyturn-redis": "D",
    "keyturn-django": "v",
}
DPI = 130


def _style() -> None:
    plt.rcParams.update(
        {
            "font.size": 11,
            "axes.titlesize": 13,
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
        }
    )


def _label(data: dict[str, Any], key: str) -> str:
    meta = data["meta"]
    return str((meta["systems"].get(key) or meta["resources"].get(key) or {"label": key})["label"])


def _ms_formatter(value: float, _: int) -> str:
    return f"{value:g}"


def _ms_ticks(axis: Any) -> None:
    """Plain numbers on a log axis (1, 2, 5, 10, 20, 50 …), not in powers of ten."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(_ms_formatter))
    axis.set_minor_formatter(NullFormatter())


def latency(data: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5.2))
    for key, rounds in data["refresh_sequential"].items():
        values = sorted(ms for r in rounds for ms in r["latencies_ms"])
        share = [(i + 1) / len(values) * 100 for i in range(len(values))]
        s = data["summary"]["sequential"][key]
        label = f"{_label(data, key)}  (p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms)"
        ax.plot(values, share, color=COLORS.get(key), linewidth=2.2, label=label)
        ax.plot([s["p99"]], [99], marker="o", color=COLORS.get(key), markersize=6)
    ax.set_xscale("log")
    _ms_ticks(ax.xaxis)
    ax.set_xlabel("refresh latency, ms (log scale)")
    ax.set_ylabel("refreshes answered within that time, %")
    ax.set_ylim(0, 101)
    ax.axhline(99, color="grey", linewidth=0.8, linestyle=":")
    ax.text(ax.get_xlim()[0] * 1.05, 96.5, "p99", color="grey", fontsize=9)
    ax.set_title("Sequential refresh latency (one session, one request at a time)")
    ax.legend(loc="lower right", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "refresh-latency.png", dpi=DPI)
    plt.close(fig)


def throughput(data: dict[str, Any], out: Path) -> None:
    summary = data["summary"]
    sessions = sorted(int(n) for n in summary["throughput"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    ends: list[tuple[float, str, str | None]] = []
    for key in summary["sequential"]:
        xs = [1, *sessions]
        rates = [summary["sequential"][key]["rate"]] + [
            summary["throughput"][str(n)][key]["rate"] for n in sessions
        ]
        lows = [0.0] + [
            rates[i + 1] - summary["throughput"][str(n)][key]["rate_min"] for i, n in enumerate(sessions)
        ]
        highs = [0.0] + [
            summary["throughput"][str(n)][key]["rate_max"] - rates[i + 1] for i, n in enumerate(sessions)
        ]
        color, marker = COLORS.get(key), MARKERS.get(key, "o")
        left.errorbar(
            xs, rates, yerr=[lows, highs], color=color, marker=marker, linewidth=2.2, capsize=4,
            label=_label(data, key),
        )  # fmt: skip
        ends.append((rates[-1], f"{rates[-1]:,.0f}/s", color))
        p50 = [summary["sequential"][key]["p50"]] + [
            summary["throughput"][str(n)][key]["p50_ms"] for n in sessions
        ]
        p99 = [summary["sequential"][key]["p99"]] + [
            summary["throughput"][str(n)][key]["p99_ms"] for n in sessions
        ]
        right.plot(xs, p50, color=color, marker=marker, linewidth=2.2, label=f"{_label(data, key)} p50")
        right.plot(
            xs,
            p99,
            color=color,
            marker=marker,
            linewidth=1.4,
            linestyle="--",
            label=f"{_label(data, key)} p99",
        )
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, *sessions])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("concurrent sessions (1 = sequential)")
    left.set_ylabel("successful refreshes per second")
    left.set_ylim(bottom=0)
    left.set_xlim(right=max(sessions) * 1.9)
    _end_labels(left, max(sessions), ends)
    left.set_title("Refresh throughput (median round; bars: rounds' range)")
    left.legend(loc="upper left", fontsize=10)
    right.set_yscale("log")
    _ms_ticks(right.yaxis)
    right.set_ylabel("latency per refresh, ms (log scale)")
    right.set_title("Refresh latency under load (solid p50, dashed p99)")
    right.legend(loc="lower right", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "refresh-throughput.png", dpi=DPI)
    plt.close(fig)


def _end_labels(ax: Axes, x: float, ends: list[tuple[float, str, str | None]]) -> None:
    """Each line's last value written right of its end, moved up where it would overlap the one below."""
    gap = ax.get_ylim()[1] * 0.045  # about one line of 9-point text on this figure
    placed = -gap
    for value, text, color in sorted(ends):
        placed = max(value, placed + gap)
        ax.annotate(text, (x, value), xytext=(x * 1.1, placed), va="center", fontsize=9, color=color)


def _bars(ax: Axes, groups: list[str], series: dict[str, list[float]], colors: list[str | None]) -> None:
    width = 0.8 / max(1, len(series))
    for i, ((name, values), color) in enumerate(zip(series.items(), colors, strict=True)):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, values, width * 0.92, color=color, label=name)
        ax.bar_label(
            bars, labels=[f"{v:,.0f}" if v >= 10 else f"{v:.2f}" for v in values], fontsize=9, padding=2
        )
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)


def protected(data: dict[str, Any], out: Path) -> None:
    summary = data["summary"]["protected"]
    sessions = sorted(summary, key=int)
    keys = list(summary[sessions[0]])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    groups = [f"{n} sessions" for n in sessions]
    colors = [COLORS.get(k) for k in keys]
    _bars(left, groups, {_label(data, k): [summary[n][k]["rate"] for n in sessions] for k in keys}, colors)
    left.set_ylabel("successful requests per second (median round)")
    left.set_title("Protected endpoint: requests per second")
    left.margins(y=0.15)
    groups = [f"{n} sessions, {p}" for n in sessions for p in ("p50", "p99")]
    values = {
        _label(data, k): [summary[n][k][f"{p}_ms"] for n in sessions for p in ("p50", "p99")] for k in keys
    }
    _bars(right, groups, values, colors)
    right.set_ylabel("latency per request, ms")
    right.set_title("Protected endpoint: latency under load")
    right.tick_params(axis="x", labelsize=9)
    right.margins(y=0.15)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(keys), fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out / "protected-endpoint.png", dpi=DPI)
    plt.close(fig)


def race(data: dict[str, Any], out: Path) -> None:
    summary = data["summary"]["race"]
    copies = sorted(summary, key=int)
    keys = list(summary[copies[0]])
    fig, axes = plt.subplots(1, len(copies), figsize=(4.6 * len(copies), 5.4), sharey=False)
    measures = [
        ("succeeded", "answered 200", 1.0),
        ("distinct_tokens", "distinct new refresh tokens", 0.75),
        ("chains_alive", "chains that still refresh", 0.5),
    ]
    for ax, n in zip(axes if len(copies) > 1 else [axes], copies, strict=True):
        width = 0.8 / len(measures)
        for i, (field, name, alpha) in enumerate(measures):
            xs = [k + (i - 1) * width for k in range(len(keys))]
            means = [sum(summary[n][k][field]) / len(summary[n][k][field]) for k in keys]
            bars = ax.bar(
                xs, means, width * 0.92, color=[COLORS.get(k) for k in keys], alpha=alpha,
                hatch=["", "//", ".."][i], edgecolor="white", label=name,
            )  # fmt: skip
            ax.bar_label(
                bars, labels=[f"{m:.1f}".rstrip("0").rstrip(".") for m in means], fontsize=9, padding=2
            )
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([_label(data, k).replace(" · ", "\n") for k in keys], fontsize=9)
        ax.set_title(f"{n} copies at once")
        ax.set_ylim(0, int(n) * 1.15 + 0.5)
        ax.axhline(1, color="grey", linewidth=0.8, linestyle=":")
    first = axes[0] if len(copies) > 1 else axes
    first.set_ylabel("per race (mean of the trials)")
    handles = [
        plt.Rectangle(
            (0, 0), 1, 1, facecolor="grey", alpha=alpha, hatch=["", "//", ".."][i], edgecolor="white"
        )
        for i, (_, _, alpha) in enumerate(measures)
    ]
    fig.legend(handles, [name for _, name, _ in measures], loc="lower center", ncol=3, fontsize=10)
    fig.suptitle(
        "The same refresh token sent several times at once: one chain is the right answer", fontsize=13
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    fig.savefig(out / "race.png", dpi=DPI)
    plt.close(fig)


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    _style()
    latency(data, out)
    throughput(data, out)
    protected(data, out)
    race(data, out)
    print(f"wrote the plots to {out}")


if __name__ == "__main__":
    main()
