"""Where the Countersign worker's time goes: ``py-spy`` on it under load.

With ``--profile``, after the timed passes (so that sampling does not slow
what they measure), ``py-spy record`` attaches to the worker while it runs
a load phase of Countersign flows. Its collapsed stacks are reduced here to
the functions with the largest share of samples: by self time (the frame on
top of the stack) and by total time (anywhere in the stack).
"""

from __future__ import annotations

import asyncio
import collections
import re
import signal
import sys
from pathlib import Path
from typing import Any

from bench.flows import Side, in_lanes

TOP = 25
_LINE = re.compile(r":\d+\)$")


def _frame(raw: str) -> str:
    # "name (path/to/file.py:123)" -> "name (file.py)": lines of one function add up.
    frame = _LINE.sub(")", raw.strip())
    name, _, where = frame.partition(" (")
    if where:
        where = where.rstrip(")")
        parts = Path(where).parts
        where = "/".join(parts[-3:]) if "site-packages" in parts else "/".join(parts[-2:])
        return f"{name} ({where})"
    return frame


def summarise_stacks(text: str, top: int = TOP) -> dict[str, Any]:
    """Shares of samples by function, from py-spy's ``--format raw`` output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        # The thread and process markers py-spy puts first are not functions.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count

    def shares(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(n / samples, 4)] for name, n in counter.most_common(top)]

    return {"samples": samples, "self": shares(own), "total": shares(total)}


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
        "--format",
        "raw",
        "--rate",
        "200",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )

    async def one(_: int) -> None:
        await side.flow()

    try:
        await in_lanes(flows, concurrency, one)
    finally:
        # SIGINT makes py-spy write what it sampled and exit.
        recorder.send_signal(signal.SIGINT)
        _, stderr = await recorder.communicate()
    summary = _summarise_file(out, stderr.decode(errors="replace"))
    summary["flows"] = flows
    summary["raw_stacks"] = out.name
    return summary


def markdown(profile: dict[str, Any], rows: int = 15) -> str:
    """The profile's top functions as two markdown tables."""
    lines = [
        f"py-spy, {profile['samples']:,} samples of the worker's Python threads over "
        f"{profile['flows']} flows (raw stacks: `bench/results/{profile['raw_stacks']}`).",
        "",
        "| share, self | function |",
        "|---|---|",
        *(f"| {share:.1%} | `{name}` |" for name, share in profile["self"][:rows]),
        "",
        "| share, total | function |",
        "|---|---|",
        *(f"| {share:.1%} | `{name}` |" for name, share in profile["total"][:rows]),
    ]
    return "\n".join(lines) + "\n"
