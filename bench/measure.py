"""The timed passes: each side one flow at a time, then many flows at once.

The order of the sides alternates between passes (Countersign first, then
bare first, ...), so that neither always runs on a warmer or a more
fragmented server. In a pass:

1. latency: ``samples`` flows per side one at a time, the two sides taking
   turns flow by flow, each timed from create to paused and from continue to
   completed;
2. throughput, one side after the other: ``flows`` flows with
   ``concurrency`` in flight, timed as a whole, with the CPU every process of
   the stack used meanwhile read from ``/proc`` before and after, divided by
   the flows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.flows import FlowTimes, Side, history_size, in_lanes
from bench.procs import cpu_seconds
from bench.stack import Stack

logger = logging.getLogger("bench")

PROCESSES = ("temporal", "worker", "api", "model", "bare")


@dataclass(frozen=True)
class PassConfig:
    """How much each side does in one pass."""

    samples: int
    flows: int
    concurrency: int


def _ms(values: list[float]) -> list[float]:
    return [round(v * 1000, 3) for v in values]


def _cpu(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def process_ids(stack: Stack) -> dict[str, int]:
    """The stack's processes and the driver itself, by name."""
    return {name: stack.pid(name) for name in PROCESSES} | {"driver": os.getpid()}


async def latency(order: tuple[Side, Side], samples: int) -> dict[str, list[FlowTimes]]:
    """``samples`` flows per side one at a time, the sides taking turns flow by flow.

    Taking turns, the two sides see the same background load (other work on
    the machine, the server's own housekeeping), so their ratio is steadier
    than that of two blocks measured one after the other.
    """
    times: dict[str, list[FlowTimes]] = {side.name: [] for side in order}
    for _ in range(samples):
        for side in order:
            times[side.name].append(await side.flow())
    return times


async def load(side: Side, stack: Stack, config: PassConfig) -> dict[str, Any]:
    """``flows`` flows with ``concurrency`` in flight: flows/s and CPU per flow."""
    pids = process_ids(stack)
    loaded: list[FlowTimes] = []

    async def one(_: int) -> None:
        loaded.append(await side.flow())

    before = _cpu(pids)
    seconds = await in_lanes(config.flows, config.concurrency, one)
    after = _cpu(pids)
    stack.processes.check_alive()
    return {
        "load": {
            "flows": config.flows,
            "concurrency": config.concurrency,
            "seconds": round(seconds, 3),
            "flows_per_s": round(config.flows / seconds, 3),
            "create_ms": _ms([f.create for f in loaded]),
            "continue_ms": _ms([f.approve for f in loaded]),
        },
        "cpu_ms_per_flow": {
            name: round((after[name] - before[name]) * 1000 / config.flows, 3) for name in pids
        },
    }


async def run_passes(
    sides: tuple[Side, Side], stack: Stack, passes: int, config: PassConfig
) -> list[dict[str, Any]]:
    """``passes`` passes, the order of the two sides alternating between passes."""
    results: list[dict[str, Any]] = []
    for number in range(passes):
        order = sides if number % 2 == 0 else (sides[1], sides[0])
        names = [s.name for s in order]
        logger.info("pass %d/%d: latency, %s", number + 1, passes, " then ".join(names))
        times = await latency(order, config.samples)
        stack.processes.check_alive()
        entry: dict[str, Any] = {"order": names}
        for side in order:
            logger.info("pass %d/%d: load, %s", number + 1, passes, side.name)
            entry[side.name] = {
                "create_ms": _ms([f.create for f in times[side.name]]),
                "continue_ms": _ms([f.approve for f in times[side.name]]),
                "workflow_ids": [f.workflow_id for f in times[side.name]],
            } | await load(side, stack, config)
        results.append(entry)
    return results


async def warm_up(sides: tuple[Side, Side], flows: int) -> None:
    """A few flows on each side first: imports, connections and caches warm up."""
    for side in sides:
        for _ in range(flows):
            await side.flow()


async def history_figures(stack: Stack, workflow_ids: list[str]) -> dict[str, Any]:
    """Events and serialized bytes of each sampled run's history."""
    sizes = [await history_size(stack.client, wid) for wid in workflow_ids]
    return {"events": [s[0] for s in sizes], "bytes": [s[1] for s in sizes]}
