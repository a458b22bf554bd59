"""``make bench``: Countersign through its HTTP API against a same-work bare workflow.

One run, one Temporal dev server (the product's dynamic config, free ports,
data in a temporary directory), every part in a process of its own: the
scripted model, the Countersign worker (``worker.py``), the API
(``python -m api``) and the bare worker (``python -m bench.bare``); this
driver is another. Then:

1. a warm-up, then ``--passes`` passes with the order of the two sides
   alternated (:mod:`bench.measure`): latency one flow at a time, flows/s and
   CPU per flow with ``--concurrency`` in flight;
2. history events and bytes of sampled runs of each side;
3. the scale figure (:mod:`bench.scale`): ``--paused`` runs held by one worker;
4. with ``--profile``, py-spy on the worker and the API under load (:mod:`bench.profile`).

Results go to ``<out>/<timestamp>.json``, ``<out>/latest.json`` and
``<out>/latest.md``; with ``--docs``, the table also goes into
``docs/benchmarks.md``. ``--small`` is the configuration CI runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from bench import profile, report
from bench.flows import BareSide, CountersignSide
from bench.measure import PassConfig, history_figures, run_passes, warm_up
from bench.procs import ROOT
from bench.scale import hold_paused
from bench.stack import running_stack, server_args
from devstack.temporal_server import temporal_cli

logger = logging.getLogger("bench")

DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS_BEGIN, RESULTS_END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
PROFILE_BEGIN, PROFILE_END = "<!-- bench:profile:begin -->", "<!-- bench:profile:end -->"
HISTORY_SAMPLES = 5

# name: (full default, --small value)
SIZES: dict[str, tuple[int, int]] = {
    "passes": (3, 2),
    "samples": (30, 3),
    "flows": (60, 6),
    "concurrency": (20, 3),
    "paused": (500, 10),
    "cache": (200, 200),
    "warmup": (5, 1),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; unset sizes take the full or the ``--small`` default."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").splitlines()[0]
    )
    helps = {
        "passes": "passes, order of the sides alternating (at least 3 for a real figure)",
        "samples": "flows per side and pass timed one at a time (latency)",
        "flows": "flows per side and pass with --concurrency in flight (flows/s, CPU)",
        "concurrency": "flows in flight in the load phase",
        "paused": "runs held paused at once for the scale figure (10000 for the full one)",
        "cache": "the Countersign worker's workflow cache (below --paused, to show the bound)",
        "warmup": "unmeasured flows per side before the first pass",
    }
    for name, (full, small) in SIZES.items():
        parser.add_argument(
            f"--{name}", type=int, default=None, help=f"{helps[name]} (default {full}; {small})"
        )
    parser.add_argument("--small", action="store_true", help="the small configuration for CI")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the worker and API under load"
    )
    parser.add_argument("--docs", action="store_true", help="write the table to docs/")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    for name, (full, small) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, small if args.small else full)
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    cli_version = subprocess.run(
        [str(temporal_cli()), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": metadata.version("temporalio"),
        "temporal_cli": cli_version,
    }


def source_version() -> str:
    """The commit measured, with ``+changes`` when the tree differs from it."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    head = subprocess.run(
        [git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head.stdout.strip() + ("+changes" if dirty else "")


def new_results(args: argparse.Namespace) -> dict[str, Any]:
    """The results' header: when, what, on which machine, with which settings."""
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "commit": source_version(),
        "machine": machine(),
        # Other work on the machine moves the figures; say how much there was.
        "load_average": {"start": [round(x, 2) for x in os.getloadavg()]},
        "config": {name: getattr(args, name) for name in SIZES} | {"small": args.small},
        "server_args": server_args(),
    }


async def run(args: argparse.Namespace, work_dir: Path, results: dict[str, Any]) -> None:
    """Start the stack, measure everything into ``results``, stop the stack."""
    async with (
        running_stack(work_dir, worker_cache=args.cache) as stack,
        httpx.AsyncClient(base_url=stack.api_url, timeout=120) as api,
    ):
        countersign = CountersignSide(api)
        bare = BareSide(stack.client, stack.bare_queue)
        sides = (countersign, bare)
        await warm_up(sides, args.warmup)
        passes = await run_passes(
            sides, stack, args.passes, PassConfig(args.samples, args.flows, args.concurrency)
        )
        results["passes"] = passes
        last = passes[-1]
        results["history"] = {
            side.name: await history_figures(
                stack, last[side.name]["workflow_ids"][:HISTORY_SAMPLES]
            )
            for side in sides
        }
        results["summary"] = report.summarise(passes, results["history"])
        logger.info("scale: %d runs paused at once", args.paused)
        results["scale"] = await hold_paused(
            stack, countersign, args.paused, args.concurrency, worker_cache=args.cache
        )
        if args.profile:
            logger.info("profiling the worker and the API over %d flows", args.flows)
            try:
                results["profile"] = await profile.profile_processes(
                    countersign,
                    {name: stack.pid(name) for name in ("worker", "api")},
                    args.flows,
                    args.concurrency,
                    args.out / f"profile-{_stamp(results)}",
                )
            except (RuntimeError, OSError) as err:
                # The figures above stand without the profile.
                logger.error("profile failed: %s", err)
                results["profile"] = {"error": str(err)}
    results["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    # Who had to be killed or exited with an error once asked to stop.
    results["stop_problems"] = stack.processes.stop_problems
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")


def _stamp(results: dict[str, Any]) -> str:
    return str(results["started"]).replace(":", "").replace("-", "").replace("+0000", "Z")


def _replace_block(text: str, begin: str, end: str, body: str) -> str:
    head, found, rest = text.partition(begin)
    if not found:
        return text.rstrip("\n") + f"\n\n{begin}\n{body}{end}\n"
    _, found, tail = rest.partition(end)
    if not found:
        raise RuntimeError(f"{DOCS} has {begin} without {end}")
    return f"{head}{begin}\n{body}{end}{tail}"


def write(results: dict[str, Any], out: Path, *, docs: bool) -> Path:
    """Write the JSON and the markdown table, and the docs' blocks with ``docs``."""
    path = out / f"{_stamp(results)}.json"
    text = json.dumps(results, indent=2) + "\n"
    path.write_text(text)
    (out / "latest.json").write_text(text)
    table = report.markdown(results)
    has_profile = "error" not in results.get("profile", {"error": "not asked for"})
    if has_profile:
        table += "\n" + profile.markdown(results["profile"])
    (out / "latest.md").write_text(table)
    if docs and results["config"]["small"]:
        logger.info("--small: %s left as it is", DOCS.relative_to(ROOT))
    elif docs:
        doc = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
        doc = _replace_block(doc, RESULTS_BEGIN, RESULTS_END, report.markdown(results))
        if has_profile:
            doc = _replace_block(
                doc, PROFILE_BEGIN, PROFILE_END, profile.markdown(results["profile"])
            )
        DOCS.write_text(doc)
    return path


async def _main(args: argparse.Namespace, work_dir: Path, results: dict[str, Any]) -> None:
    # SIGTERM stops the run as Ctrl-C does: the stack's processes are stopped on the way out.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await run(args, work_dir, results)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="countersign-bench-"))
    results = new_results(args)
    try:
        asyncio.run(_main(args, work_dir, results))
    except (KeyboardInterrupt, asyncio.CancelledError):
        logger.error("stopped; logs kept in %s", work_dir)
        return 130
    except Exception:
        # What was measured before the failure is kept, under a name that
        # latest.json never points to.
        partial = args.out / f"{_stamp(results)}-failed.json"
        partial.write_text(json.dumps(results, indent=2) + "\n")
        logger.exception(
            "the benchmark failed; figures so far in %s, logs in %s", partial, work_dir
        )
        return 1
    path = write(results, args.out, docs=args.docs)
    shutil.rmtree(work_dir, ignore_errors=True)
    sys.stdout.write((args.out / "latest.md").read_text() + f"\nwritten to {path}\n")
    return 0


if __name__ == "__main__":
    status = main()
    # The driver holds a Temporal client: skip the teardown the SDK's Rust
    # threads can abort (temporalio/sdk-python#300).
    logging.shutdown()
    sys.stdout.flush()
    os._exit(status)
