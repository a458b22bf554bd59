"""Where the Countersign worker's and API's time goes: ``py-spy`` on them under load.

With ``--profile``, after the timed passes (so that sampling does not slow
what they measure), ``py-spy record --gil`` attaches to the worker and to the
API while they run a load phase of Countersign flows. Only samples of the thread holding
the GIL are kept: that is where the worker's Python CPU goes (threads
waiting on a queue or a socket would otherwise dominate). Its collapsed
stacks are reduced here to shares of samples by area (the package of the
frame on top), by function (self time) and by function anywhere in the stack
(total time, without the event loop's and the thread pool's plumbing). The
worker's CPU from ``/proc`` over the same phase is recorded beside them.
"""

from __future__ import annotations

import asyncio
import collections
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.flows import Side, in_lanes
from bench.procs import cpu_seconds

TOP = 25
RATE = 200
_LINE = re.compile(r":\d+\)$")
# Frames every sample passes through: they say nothing about where time goes.
_PLUMBING = {
    "threading.py",
    "concurrent/futures/thread.py",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "worker.py",
    "api/__main__.py",
    "<frozen runpy>",
}
NO_FRAME = "(no Python frame)"


def _split(raw: str) -> tuple[str, str]:
    """``"name (path:line)"`` -> (``"name (path)"``, ``path``)."""
    frame = _LINE.sub(")", raw.strip())
    if not frame:
        return NO_FRAME, ""
    _, _, where = frame.rpartition(" (")
    return frame, where.rstrip(")")


def area(path: str) -> str:
    """The package a frame's file belongs to; temporalio by sub-package."""
    if not path:
        return NO_FRAME
    parts = path.split("/")
    if parts[0] == "temporalio":
        return "/".join(parts[:3]).removesuffix(".py")
    return parts[0].removesuffix(".py")


def summarise_stacks(text: str, top: int = TOP) -> dict[str, Any]:
    """Shares of samples by area and function, from py-spy's ``--format raw`` output."""
    own: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_split(f) for f in stack.split(";")] if stack.strip() else [(NO_FRAME, "")]
        samples += count
        leaf, leaf_path = frames[-1]
        own[leaf] += count
        areas[area(leaf_path)] += count
        for frame in {f for f, path in frames if path not in _PLUMBING}:
            total[frame] += count

    def shares(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(n / max(samples, 1), 4)] for name, n in counter.most_common(top)]

    return {
        "samples": samples,
        "areas": shares(areas),
        "self": shares(own),
        "total": shares(total),
    }


def _summarise_file(path: Path, spy_errors: str) -> dict[str, Any]:
    if not path.exists():
        raise RuntimeError(f"py-spy wrote nothing: {spy_errors}")
    return summarise_stacks(path.read_text())


async def _record(pid: int, out: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--gil",
        "--format",
        "raw",
        "--rate",
        str(RATE),
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def profile_processes(
    side: Side, pids: dict[str, int], flows: int, concurrency: int, out: Path
) -> dict[str, dict[str, Any]]:
    """Record each process with py-spy during ``flows`` flows; summarise each one's stacks.

    Args:
        side: The side whose flows make the load.
        pids: The processes to record, by name.
        flows: Flows to run while recording.
        concurrency: Flows in flight.
        out: Raw stacks go to ``<out>-<name>.txt``.
    """
    files = {name: out.with_name(f"{out.name}-{name}.txt") for name in pids}
    recorders = {name: await _record(pid, files[name]) for name, pid in pids.items()}

    async def one(_: int) -> None:
        await side.flow()

    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.perf_counter()
    errors: dict[str, str] = {}
    try:
        await in_lanes(flows, concurrency, one)
    finally:
        seconds = time.perf_counter() - start
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        for name, recorder in recorders.items():
            # SIGINT makes py-spy write what it sampled and exit.
            recorder.send_signal(signal.SIGINT)
            _, stderr = await recorder.communicate()
            errors[name] = stderr.decode(errors="replace")
    summaries: dict[str, dict[str, Any]] = {}
    for name in pids:
        summary = _summarise_file(files[name], errors[name])
        summaries[name] = summary | {
            "flows": flows,
            "seconds": round(seconds, 3),
            "rate_hz": RATE,
            # py-spy pauses the process for each sample, so this phase is
            # slower than the timed ones; /proc says how busy it still was.
            "cpu_per_s": round(cpu[name] / seconds, 3),
            "raw_stacks": files[name].name,
        }
    return summaries


def markdown(profiles: dict[str, dict[str, Any]], rows: int = 15) -> str:
    """Each profiled process's shares as markdown tables."""
    return "\n".join(_one_markdown(name, p, rows) for name, p in profiles.items())


def _one_markdown(name: str, profile: dict[str, Any], rows: int) -> str:
    lines = [
        f"### {name}",
        "",
        f"py-spy `--gil`, {profile['samples']:,} samples at {profile['rate_hz']} Hz of the "
        f"{name}'s thread holding the GIL, over {profile['flows']} flows in "
        f"{profile['seconds']:.0f} s (raw stacks: `bench/results/{profile['raw_stacks']}`, "
        f"not committed). The {name} used "
        f"{profile['cpu_per_s']:.2f} CPU-seconds per second meanwhile (`/proc`, all threads, "
        "native code included, which py-spy does not see). Shares are of the Python samples.",
        "",
        "| share | area (package of the running frame) |",
        "|---|---|",
        *(f"| {share:.1%} | `{name}` |" for name, share in profile["areas"][:rows]),
        "",
        "| share, self | function |",
        "|---|---|",
        *(f"| {share:.1%} | `{name}` |" for name, share in profile["self"][:rows]),
        "",
        "| share, total | function (event loop and thread pool frames left out) |",
        "|---|---|",
        *(f"| {share:.1%} | `{name}` |" for name, share in profile["total"][: rows * 2]),
    ]
    return "\n".join(lines) + "\n"
