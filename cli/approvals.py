"""``countersign approvals list``, ``approve`` and ``reject``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from api.schemas import ApprovalPublic
from cli.context import Context, note_more, page_params
from cli.output import args_text, emit_json, items, when


def cmd_approvals_list(ctx: Context) -> int:
    """``approvals list``: the inbox."""
    params = page_params(
        ctx, {"status": ctx.args.status, "agent_id": ctx.args.agent, "tool_name": ctx.args.tool}
    )
    body = ctx.api.request("GET", "/approvals", params=params)
    raw = items(body, "approvals")
    note_more(ctx, body)
    return ctx.print_list(
        raw,
        ApprovalPublic,
        "approval",
        ["APPROVAL", "AGENT", "TOOL", "ARGS", "REQUESTER", "APPROVALS", "EXPIRES"],
        lambda a: [
            a.approval_id,
            a.agent_id,
            a.tool_name,
            args_text(a.tool_args),
            a.requester,
            f"{a.approvals}/{a.approvals_required}",
            when(a.expires_at),
        ],
    )


def _decide(ctx: Context, verb: str) -> int:
    body: dict[str, Any] = {}
    if ctx.args.note:
        body["note"] = ctx.args.note
    if ctx.args.user:
        body["user_id"] = ctx.args.user
    # The id is ``run:call``; keep the colon readable, encode anything else.
    path = f"/approvals/{quote(ctx.args.approval_id, safe=':')}/{verb}"
    answer = ctx.api.request("POST", path, json_body=body)
    if ctx.json:
        emit_json(ctx.out, answer)
        return 0
    run = answer.get("run", answer) if isinstance(answer, dict) else answer
    status = run.get("status", "?") if isinstance(run, dict) else "?"
    past = "approved" if verb == "approve" else "rejected"
    ctx.print(f"{past} {ctx.args.approval_id}; run is now {status}")
    return 0


def cmd_approve(ctx: Context) -> int:
    """``approve APPROVAL_ID [--note]``."""
    return _decide(ctx, "approve")


def cmd_reject(ctx: Context) -> int:
    """``reject APPROVAL_ID [--note]``."""
    return _decide(ctx, "reject")
