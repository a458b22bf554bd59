"""The results file of a fault session, and its table.

``python -m tests.faults.results PATH`` prints the table of a results file, as
``docs/reliability.md`` shows it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.config import FaultConfig
from tests.faults.verify import Verdict

COLUMNS = (
    ("kill", "kind"),
    ("kills", "kill_count"),
    ("runs", "runs"),
    ("orphan runs", "orphan_runs"),
    ("calls", "calls"),
    ("executed", "executed"),
    ("rejected", "rejected"),
    ("expired", "expired"),
    ("effects", "effects"),
    ("acked", "acknowledged"),
    ("lost", "lost"),
    ("doubled", "doubled"),
    ("stuck", "stuck"),
    ("due while down", "timers_due_while_down"),
    ("audit ok", "audit_verified"),
    ("recovery s (max)", "recovery_seconds"),
    ("recovery s (each)", "recoveries"),
)


@dataclass
class Results:
    """Verdicts of one session, written to ``path`` after each test."""

    path: Path
    seed: int
    config: FaultConfig
    command: str
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    def add(self, verdict: Verdict) -> None:
        """Record a verdict and rewrite the file, so an interrupted session keeps it."""
        self.verdicts.append(verdict.as_json())
        self.path.write_text(json.dumps(self.as_json(), indent=2) + "\n")

    def as_json(self) -> dict[str, Any]:
        """The whole file."""
        return {
            "seed": self.seed,
            "config": self.config.name,
            "settings": self.config.environment(),
            "concurrency": self.config.concurrency,
            "command": self.command,
            "verdicts": self.verdicts,
        }


def _cell(verdict: dict[str, Any], key: str) -> str:
    if key == "kill_count":
        return str(len(verdict["kills"]))
    if key == "recoveries":
        return ", ".join(f"{k['recovery_seconds']:.1f}" for k in verdict["kills"])
    value = verdict[key]
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def table(data: dict[str, Any]) -> str:
    """The verdicts as a Markdown table, one row per kind of kill."""
    rows = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "|".join(" --- " for _ in COLUMNS) + "|",
    ]
    for verdict in data["verdicts"]:
        rows.append("| " + " | ".join(_cell(verdict, key) for _, key in COLUMNS) + " |")
    settings = ", ".join(f"{k}={v}" for k, v in data["settings"].items())
    head = (
        f"Configuration {data['config']} ({data['concurrency']} concurrent flows; {settings}), "
        f"seed {data['seed']}."
    )
    notes = [
        f"- {v['kind']}: " + ", ".join(f"{n} after {a}" for a, n in answers.items())
        for v in data["verdicts"]
        if (answers := v.get("orphan_create_answers"))
    ]
    tail = "\n\nOrphan runs, by the answer to the create that started them:\n" + "\n".join(notes)
    return head + "\n\n" + "\n".join(rows) + (tail if notes else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of the results file named on the command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m tests.faults.results RESULTS.json\n")
        return 2
    sys.stdout.write(table(json.loads(Path(args[0]).read_text())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
