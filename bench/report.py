"""From the passes' raw figures to the summary, the targets and the markdown table.

Each figure is reduced per pass first (p50 and p95 of that pass's samples,
CPU per flow of that pass's load phase), then over passes: the median, and the
spread as the lowest and highest pass. Ratios are taken per pass, Countersign
over bare, because the two sides of one pass ran back to back.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CS, BARE = "countersign", "bare"
# Spelled as escapes: ruff flags the characters themselves as look-alikes.
TIMES, DASH = "\u00d7", "\u2013"


@dataclass(frozen=True)
class Target:
    """Issue 11's target for a figure: on the ratio or on Countersign's own value."""

    on: str
    op: str
    value: float

    def met(self, figure: dict[str, Any]) -> bool:
        """Whether the median meets the target."""
        median = float(figure[self.on]["median"])
        return median <= self.value if self.op == "<=" else median >= self.value

    def text(self, unit: str) -> str:
        """The target as the table shows it, ``unit`` being the figure's own."""
        sign = "≤" if self.op == "<=" else "≥"
        return f"{sign} {self.value:g}{TIMES if self.on == 'ratio' else unit}"


TARGETS: dict[str, Target] = {
    "create_p50_ms": Target("ratio", "<=", 1.2),
    "continue_p50_ms": Target("ratio", "<=", 1.3),
    "flows_per_s": Target("ratio", ">=", 0.8),
    "cpu_ms_per_flow_temporal": Target("ratio", "<=", 1.1),
    "cpu_ms_per_flow_worker": Target(CS, "<=", 25),
    "cpu_ms_per_flow_api": Target(CS, "<=", 8),
    "history_events": Target(CS, "<=", 34),
}

LABELS: dict[str, tuple[str, str]] = {
    "create_p50_ms": ("create → PAUSED, p50", " ms"),
    "create_p95_ms": ("create → PAUSED, p95", " ms"),
    "continue_p50_ms": ("continue/approve → COMPLETED, p50", " ms"),
    "continue_p95_ms": ("continue/approve → COMPLETED, p95", " ms"),
    "flows_per_s": ("full flows/s, {concurrency} at once", ""),
    "cpu_ms_per_flow_temporal": ("CPU per flow: Temporal server", " ms"),
    "cpu_ms_per_flow_worker": ("CPU per flow: worker", " ms"),
    "cpu_ms_per_flow_api": ("CPU per flow: API", " ms"),
    "cpu_ms_per_flow_model": ("CPU per flow: scripted model (not product)", " ms"),
    "history_events": ("history events per run, one gated call", ""),
    "history_bytes": ("history bytes per run", " B"),
}


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method; the one value for a single sample)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def spread(values: list[float]) -> dict[str, Any]:
    """Median over passes, lowest and highest pass, and every pass."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "per_pass": [round(v, 3) for v in values],
    }


def _figure(
    passes: list[dict[str, Any]],
    of: Callable[[dict[str, Any]], float],
    *,
    bare: Callable[[dict[str, Any]], float] | None = None,
) -> dict[str, Any]:
    cs_values = [of(p[CS]) for p in passes]
    figure: dict[str, Any] = {CS: spread(cs_values)}
    if bare is not None:
        bare_values = [bare(p[BARE]) for p in passes]
        figure[BARE] = spread(bare_values)
        figure["ratio"] = spread([c / b for c, b in zip(cs_values, bare_values, strict=True)])
    return figure


def summarise(passes: list[dict[str, Any]], history: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the table, with its spread, ratio and target."""

    def cpu(name: str) -> Callable[[dict[str, Any]], float]:
        return lambda side: float(side["cpu_ms_per_flow"][name])

    summary: dict[str, Any] = {}
    for phase in ("create", "continue"):
        for q in (50, 95):

            def pct(side: dict[str, Any], phase: str = phase, q: int = q) -> float:
                return percentile(side[f"{phase}_ms"], q)

            summary[f"{phase}_p{q}_ms"] = _figure(passes, pct, bare=pct)

    def rate(side: dict[str, Any]) -> float:
        return float(side["load"]["flows_per_s"])

    summary["flows_per_s"] = _figure(passes, rate, bare=rate)
    summary["cpu_ms_per_flow_temporal"] = _figure(passes, cpu("temporal"), bare=cpu("temporal"))
    # The bare side's worker is the bare worker process; Countersign's is worker.py.
    summary["cpu_ms_per_flow_worker"] = _figure(passes, cpu("worker"), bare=cpu("bare"))
    summary["cpu_ms_per_flow_api"] = _figure(passes, cpu("api"))
    summary["cpu_ms_per_flow_model"] = _figure(passes, cpu("model"))
    for key in ("events", "bytes"):
        cs_values = [float(v) for v in history[CS][key]]
        bare_values = [float(v) for v in history[BARE][key]]
        summary[f"history_{key}"] = {
            CS: spread(cs_values),
            BARE: spread(bare_values),
            "ratio": spread([statistics.median(cs_values) / statistics.median(bare_values)]),
        }
    for key, target in TARGETS.items():
        summary[key]["target"] = target.text(LABELS[key][1])
        summary[key]["met"] = target.met(summary[key])
    return summary


def _cell(value: dict[str, Any] | None, unit: str, *, digits: int = 0) -> str:
    if value is None:
        return "—"
    median, low, high = value["median"], value["min"], value["max"]
    fmt = f"{{:,.{digits}f}}"
    text = fmt.format(median) + unit
    if fmt.format(low) != fmt.format(high):
        text += f" ({fmt.format(low)}{DASH}{fmt.format(high)})"
    return text


def table(summary: dict[str, Any], concurrency: int) -> str:
    """The markdown table: median over passes, then the lowest and highest pass."""
    lines = [
        "| Figure | Countersign (HTTP API) | bare Temporal, same work | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for key, (label, unit) in LABELS.items():
        figure = summary[key]
        digits = 1 if key in ("flows_per_s", "history_events") or key.startswith("cpu") else 0
        ratio = figure.get("ratio")
        ratio_text = _cell(ratio, TIMES, digits=2) if ratio else ""
        met = figure.get("met")
        lines.append(
            "| "
            + " | ".join(
                [
                    label.format(concurrency=concurrency),
                    _cell(figure[CS], unit, digits=digits),
                    _cell(figure.get(BARE), unit, digits=digits),
                    ratio_text,
                    figure.get("target", ""),
                    "" if met is None else ("yes" if met else "**no**"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def scale_table(scale: dict[str, Any]) -> str:
    """The scale figure as a short markdown table."""
    rss = scale["worker_rss_mib_by_paused_runs"]
    series = ", ".join(f"{n}: {mib:.0f}" for n, mib in rss)
    rows = [
        ("runs paused at once on one worker", f"{scale['paused_runs']:,}"),
        ("worker workflow cache", f"{scale['worker_cache']:,}"),
        ("created (through the API)", f"in {scale['create_seconds']:.1f} s"),
        ("worker RSS, MiB, by runs paused", series),
        (
            "listed through `GET /approvals`",
            f"{scale['listed']:,} in {scale['list_seconds']:.1f} s "
            f"(worker RSS {scale['worker_rss_mib_after_listing']:.0f} MiB)",
        ),
        (
            "approved through `POST /approvals/{id}/approve`",
            f"{scale['decided']:,} in {scale['decide_seconds']:.1f} s "
            f"(worker RSS {scale['worker_rss_mib_after_deciding']:.0f} MiB)",
        ),
    ]
    return "\n".join(["| Scale | |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def markdown(results: dict[str, Any]) -> str:
    """The whole results section: command, machine, table, scale."""
    machine = results["machine"]
    config = results["config"]
    lines = [
        f"Run of {results['started']} at commit `{results['commit']}`: `{results['command']}`",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['platform']}; "
        f"Python {machine['python']}, temporalio {machine['temporalio']}, "
        f"{machine['temporal_cli']}. Load average (1, 5, 15 min) at start "
        f"{results['load_average']['start']}, at end {results['load_average']['end']}.",
        "",
        f"{config['passes']} passes, order alternated; per pass and side "
        f"{config['samples']} flows one at a time for latency, then {config['flows']} flows "
        f"with {config['concurrency']} in flight for flows/s and CPU. Cells: median over "
        f"passes (lowest{DASH}highest pass).",
        "",
        table(results["summary"], config["concurrency"]),
        "",
        scale_table(results["scale"]),
    ]
    return "\n".join(lines) + "\n"
