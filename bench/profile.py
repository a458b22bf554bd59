"""Where the Countersign worker's time goes: ``py-spy`` on it under load.

With ``--profile``, after the timed passes (so that sampling does not slow
what they measure), ``py-spy record --gil`` attaches to the worker while it
runs a load phase of Countersign flows. Only samples of the thread holding
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


async def profile_worker(
    side: Side, worker_pid: int, flows: int, concurrency: int, out: Path
) -> dict[str, Any]:
    """Record the worker with py-spy during ``flows`` flows; summarise the stacks."""
    spy = Path(sys.executable).parent / "py-spy"
    recorder = await asyncio.create_subprocess_exec(
        str(spy),
        "record",
        "--pid",
        str(worker_pid),
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

    async def one(_: int) -> None:
        await side.flow()

    cpu_before, start = cpu_seconds(worker_pid), time.perf_counter()
    try:
        await in_lanes(flows, concurrency, one)
    finally:
        seconds = time.perf_counter() - start
        cpu = cpu_seconds(worker_pid) - cpu_before
        # SIGINT makes py-spy write what it sampled and exit.
        recorder.send_signal(signal.SIGINT)
        _, stderr = await recorder.communicate()
    summary = _summarise_file(out, stderr.decode(errors="replace"))
    summary |= {
        "flows": flows,
        "seconds": round(seconds, 3),
        "rate_hz": RATE,
        # py-spy pauses the worker for each sample, so this phase is slower
        # than the timed ones; its CPU from /proc says how busy it still was.
        "worker_cpu_per_s": round(cpu / seconds, 3),
        "raw_stacks": out.name,
    }
    return summary


def markdown(profile: dict[str, Any], rows: int = 15) -> str:
    """The profile's shares as markdown tables."""
    lines = [
        f"py-spy `--gil`, {profile['samples']:,} samples at {profile['rate_hz']} Hz of the "
        f"worker's thread holding the GIL, over {profile['flows']} flows in "
        f"{profile['seconds']:.0f} s (raw stacks: `bench/results/{profile['raw_stacks']}`, "
        "not committed). The worker used "
        f"{profile['worker_cpu_per_s']:.2f} CPU-seconds per second meanwhile (`/proc`, all "
        "threads: its Python and the SDK's Rust core, which py-spy does not see). Shares are "
        "of the Python samples.",
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
