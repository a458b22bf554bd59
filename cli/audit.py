"""``countersign audit export|verify``: a run's trail as JSON lines, and its check."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from cli.context import Context
from cli.http import CliError
from cli.output import emit_json, items, parse
from countersign.audit_export import AuditHead, VerifyReport, verify_file, write_jsonl
from countersign.models import AuditEvent

HEAD_KEY_ENV = "COUNTERSIGN_AUDIT_HEAD_KEY"


def cmd_audit_export(ctx: Context) -> int:
    """``audit export --agent A --run R [--out F]``: the trail as JSON lines."""
    path = f"/agents/{quote(ctx.args.agent, safe='')}/runs/{quote(ctx.args.run, safe='')}/audit"
    body = ctx.api.request("GET", path)
    events = [parse(AuditEvent, e, "audit event") for e in items(body, "events")]
    head = body.get("head") if isinstance(body, dict) else None
    heads = [parse(AuditHead, head, "audit head")] if head else []
    if ctx.args.out:
        with Path(ctx.args.out).open("w", encoding="utf-8") as fh:
            count = write_jsonl(events, fh, heads)
        sys.stderr.write(f"wrote {count} events of run {ctx.args.run} to {ctx.args.out}\n")
    else:
        write_jsonl(events, ctx.out, heads)
    return 0


def _report_lines(report: VerifyReport) -> list[str]:
    lines = [problem.message for problem in report.unreadable]
    for run in report.runs:
        if run.broken is None:
            lines.append(f"run {run.run_id}: {run.events} events, chain intact")
        else:
            lines.append(f"TAMPERED {run.broken.message}")
    lines += [f"TAMPERED {problem.message}" for problem in report.heads]
    return lines


def cmd_audit_verify(ctx: Context) -> int:
    """``audit verify FILE``: exit 1 when any chain or signed head is broken.

    With ``COUNTERSIGN_AUDIT_HEAD_KEY`` in the environment every run must end
    as its head, signed with that key, says.
    """
    try:
        report = verify_file(Path(ctx.args.file), os.environ.get(HEAD_KEY_ENV) or None)
    except OSError as exc:
        raise CliError(f"cannot read {ctx.args.file}: {exc.strerror or exc}") from None
    if ctx.json:
        emit_json(ctx.out, {"ok": report.ok, **report.model_dump(mode="json")})
    else:
        ctx.print("\n".join(_report_lines(report)) or "no events")
        ctx.print("OK" if report.ok else "FAILED: the trail was changed")
    return 0 if report.ok else 1
