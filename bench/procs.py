"""The benchmark's processes: start each on its own, read its CPU and memory, stop it.

Every part runs in a process of its own (Temporal dev server, scripted model,
Countersign worker, API, bare worker) so that ``/proc/<pid>/stat`` charges
each its own CPU. They run in their own session: a Ctrl-C reaches the driver
only, which then stops them in reverse order with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parents[1]
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 45.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS_PER_SECOND


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _die_with_parent() -> None:
    # Between fork and exec: a driver killed with SIGKILL must not leave its
    # children holding ports and CPU.
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


async def poll_until(
    probe: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.1
) -> None:
    """Retry ``probe`` until it answers true.

    Raises:
        TimeoutError: Not true within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Processes:
    """The processes the benchmark started, by name, stopped last-started first."""

    log_dir: Path
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # None until stop_all ran: a run that never stopped its processes says so.
    stop_problems: list[str] | None = None

    def start(self, name: str, command: Sequence[str], env: Mapping[str, str]) -> int:
        """Start ``command`` as ``name``; its output goes to ``<log_dir>/<name>.log``.

        Returns:
            Its process id.
        """
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        log.close()
        self.started[name] = process
        logger.info("started %s (pid %d)", name, process.pid)
        return process.pid

    def pid(self, name: str) -> int:
        """The process id of ``name``."""
        return self.started[name].pid

    def check_alive(self) -> None:
        """Raise if a process exited on its own, naming it and its log.

        Raises:
            RuntimeError: A process is no longer running.
        """
        for name, process in self.started.items():
            code = process.poll()
            if code is not None:
                raise RuntimeError(
                    f"{name} exited with code {code}; see {self.log_dir / (name + '.log')}"
                )

    def stop_all(self) -> list[str]:
        """SIGTERM each process, last started first; kill any that outstays its budget.

        Returns:
            The names of processes that had to be killed or exited with an error.
        """
        problems: list[str] = []
        for name, process in reversed(self.started.items()):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    problems.append(name)
                    continue
            if process.returncode not in (0, -signal.SIGTERM):
                problems.append(name)
        self.started.clear()
        self.stop_problems = problems
        return problems
