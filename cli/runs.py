"""``countersign runs list|show``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from api.agent_schemas import AgentPublic
from api.schemas import RunListItem, RunPublic
from cli.context import Context, note_more, page_params
from cli.output import args_text, emit_json, items, parse, table, when


def agent_ids(ctx: Context) -> list[str]:
    """Ids of every agent the API serves."""
    agents = items(ctx.api.request("GET", "/agents"), "agents")
    return [parse(AgentPublic, a, "agent").id for a in agents]


def cmd_runs_list(ctx: Context) -> int:
    """``runs list``: runs of one agent, or of every agent."""
    params = page_params(ctx, {"session_id": ctx.args.session, "status": ctx.args.status})
    agents = [ctx.args.agent] if ctx.args.agent else agent_ids(ctx)
    raw: list[Any] = []
    for agent in agents:
        body = ctx.api.request("GET", f"/agents/{quote(agent, safe='')}/runs", params=params)
        raw.extend(items(body, "runs"))
        note_more(ctx, body)
    return ctx.print_list(
        raw,
        RunListItem,
        "run",
        ["RUN", "AGENT", "STATUS", "PENDING", "SESSION", "USER", "STARTED"],
        lambda r: [
            r.run_id,
            r.agent_id,
            r.status.value if r.status else "-",
            str(r.pending_approvals),
            r.session_id or "-",
            r.user_id or "-",
            when(r.started_at),
        ],
    )


def cmd_runs_show(ctx: Context) -> int:
    """``runs show RUN_ID --agent A``."""
    path = f"/agents/{quote(ctx.args.agent, safe='')}/runs/{quote(ctx.args.run_id, safe='')}"
    body = ctx.api.request("GET", path)
    if ctx.json:
        emit_json(ctx.out, body)
        return 0
    run = parse(RunPublic, body, "run")
    lines = [
        f"run      {run.run_id}",
        f"agent    {run.agent_id}",
        f"status   {run.status.value}",
        f"session  {run.session_id or '-'}",
        f"user     {run.user_id or '-'}",
    ]
    if run.content:
        lines.append(f"content  {run.content}")
    if run.error:
        lines.append(f"error    {run.error}")
    ctx.print("\n".join(lines))
    if run.tools:
        ctx.print("")
        ctx.print(
            table(
                ["TOOL CALL", "TOOL", "STATE", "ARGS", "APPROVAL", "EXPIRES"],
                [
                    [
                        t.tool_call_id,
                        t.tool_name,
                        t.state.value,
                        args_text(t.tool_args),
                        t.approval_id or "-",
                        when(t.expires_at),
                    ]
                    for t in run.tools
                ],
            )
        )
    return 0
