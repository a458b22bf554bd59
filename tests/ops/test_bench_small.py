"""``make bench`` keeps working: the small configuration end to end, and a clean stop.

No figure's value is asserted (CI machines vary); what is asserted is that
every figure is there, measured over the passes asked for, with the order of
the sides alternated, and that the processes the benchmark started are gone
when it ends, also when it is interrupted.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.measure import PROCESSES
from bench.profile import summarise_stacks
from bench.report import LABELS, TARGETS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"started (\w+) \(pid (\d+)\)")


def bench_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench", "--small", "--out", str(out), *extra]


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (reaped, or a zombie awaiting its new parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pids: list[int], within: float) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if not gone(pid)]
        if not alive:
            return []
        time.sleep(0.1)
    return [pid for pid in pids if not gone(pid)]


def assert_spread(value: dict[str, object]) -> None:
    assert set(value) >= {"median", "min", "max", "per_pass"}
    assert all(isinstance(value[k], float | int) for k in ("median", "min", "max"))
    assert isinstance(value["per_pass"], list)
    assert value["per_pass"]


def test_small_bench_writes_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        bench_command(tmp_path), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=150
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    stamped = [p for p in tmp_path.glob("*.json") if p.name != "latest.json"]
    assert len(stamped) == 1
    assert json.loads(stamped[0].read_text()) == results

    assert results["stop_problems"] == []
    assert set(results["machine"]) == {
        "nproc",
        "cpu_model",
        "platform",
        "python",
        "temporalio",
        "temporal_cli",
    }
    assert "system.enableActivityEagerExecution=true" in results["server_args"]
    passes = results["config"]["passes"]
    assert passes >= 2
    assert [p["order"] for p in results["passes"][:2]] == [
        ["countersign", "bare"],
        ["bare", "countersign"],
    ]
    for entry in results["passes"]:
        for side in ("countersign", "bare"):
            figures = entry[side]
            assert len(figures["create_ms"]) == results["config"]["samples"]
            assert len(figures["continue_ms"]) == results["config"]["samples"]
            assert figures["load"]["flows"] == results["config"]["flows"]
            assert set(figures["cpu_ms_per_flow"]) == {*PROCESSES, "driver"}

    summary = results["summary"]
    for key in LABELS:
        assert_spread(summary[key]["countersign"])
    for key in ("create_p50_ms", "continue_p95_ms", "flows_per_s", "cpu_ms_per_flow_temporal"):
        assert_spread(summary[key]["bare"])
        assert_spread(summary[key]["ratio"])
        assert len(summary[key]["ratio"]["per_pass"]) == passes
    for key in TARGETS:
        assert isinstance(summary[key]["met"], bool)
        assert summary[key]["target"]
    for side in ("countersign", "bare"):
        assert results["history"][side]["events"]
        assert all(n > 0 for n in results["history"][side]["bytes"])

    scale = results["scale"]
    assert scale["listed"] == scale["decided"] == scale["paused_runs"]
    assert len(scale["worker_rss_mib_by_paused_runs"]) >= 2

    table = (tmp_path / "latest.md").read_text()
    for label, _ in LABELS.values():
        assert label.format(concurrency=results["config"]["concurrency"]) in table


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_bench_stops_what_it_started(tmp_path: Path, stop: signal.Signals) -> None:
    process = subprocess.Popen(
        bench_command(tmp_path, "--passes", "50"),
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    pids: dict[str, int] = {}
    seen: list[str] = []
    try:
        for line in process.stderr:
            seen.append(line)
            if match := STARTED.search(line):
                pids[match[1]] = int(match[2])
            if "pass 1/50" in line:
                break
        assert set(pids) == {"temporal", "model", "worker", "api", "bare"}, "".join(seen)[-4000:]
        process.send_signal(stop)
        rest = process.communicate(timeout=120)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, rest[-4000:]
    assert wait_gone(list(pids.values()), within=10) == []
    assert not (tmp_path / "latest.json").exists()


def test_profile_shares_leave_plumbing_out_of_totals() -> None:
    raw = "\n".join(
        [
            "main (worker.py:10);Handle._run (asyncio/events.py:80);"
            "activate (temporalio/worker/workflow_sandbox/_runner.py:5);"
            "source_to_code (<frozen importlib._bootstrap_external>:1) 3",
            "main (worker.py:10);Handle._run (asyncio/events.py:80);"
            "model_turn (activities/llm.py:7) 1",
            " 4",
        ]
    )
    summary = summarise_stacks(raw)
    assert summary["samples"] == 8
    assert summary["areas"] == [
        ["(no Python frame)", 0.5],
        ["<frozen importlib._bootstrap_external>", 0.375],
        ["activities", 0.125],
    ]
    totals = dict(summary["total"])
    assert totals["activate (temporalio/worker/workflow_sandbox/_runner.py)"] == 0.375
    assert not any("worker.py" in name or "asyncio/events.py" in name for name in totals)


def test_breakdown_measures_every_part(tmp_path: Path) -> None:
    out = tmp_path / "breakdown.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.breakdown",
            "--calls",
            "3",
            "--rounds",
            "1",
            "--out",
            str(out),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert len(figures) == 7, figures
    assert all(
        set(v) == {"cpu_ms", "wall_ms"} and all(x > 0 for x in v.values()) for v in figures.values()
    ), figures
    assert "one flow beyond the bare flow" in done.stdout
    assert "one run beyond the bare run" in done.stdout
