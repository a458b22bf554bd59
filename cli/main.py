"""``countersign``: the command line for people who approve and operate.

Run, approval and audit commands talk to the API (``--api-url`` or
``COUNTERSIGN_API_URL``, default ``http://127.0.0.1:7777``) with a credential
from ``--api-key`` or ``COUNTERSIGN_API_KEY`` (an API key or a JWT, sent as
``Authorization: Bearer``). ``keys`` works on the local key file and needs no
API; ``audit verify`` needs nothing but the file.

Output is a table for people; ``--json`` prints what the API returned (or the
command's own result) as JSON for programs. Every failure is one line on
stderr and exit code 1 (2 for bad usage, as argparse does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from countersign.audit_export import VerifyReport, verify_file, write_jsonl
from countersign.models import AuditEvent
from countersign.security.api_keys import ApiKeyError, ApiKeyRecord, ApiKeyStore, parse_roles
from countersign.settings import Settings

DEFAULT_API_URL = "http://127.0.0.1:7777"
DEFAULT_TIMEOUT = 60.0


class CliError(Exception):
    """A failure to report as one line and exit code 1."""


# ---------------------------------------------------------------- API payloads
# Only the fields the tables show; anything else the API adds is ignored.


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RunRow(_Lenient):
    """A run in ``GET /agents/{agent}/runs``."""

    run_id: str
    agent_id: str
    session_id: str | None = None
    user_id: str | None = None
    status: str | None = None
    pending_approvals: int = 0
    started_at: datetime | None = None


class ToolRow(_Lenient):
    """A tool call in a run body."""

    tool_call_id: str
    tool_name: str
    tool_args: dict[str, Any] = Field(default_factory=dict)
    state: str | None = None
    approval_id: str | None = None
    expires_at: datetime | None = None


class RunDetail(_Lenient):
    """A run body (``GET /agents/{agent}/runs/{run}``)."""

    run_id: str
    agent_id: str
    session_id: str | None = None
    user_id: str | None = None
    status: str
    content: str | None = None
    error: str | None = None
    tools: list[ToolRow] = Field(default_factory=list)


class ApprovalRow(_Lenient):
    """An entry of the approvals inbox."""

    approval_id: str
    agent_id: str
    run_id: str
    tool_name: str
    tool_args: dict[str, Any] = Field(default_factory=dict)
    requester: str | None = None
    state: str | None = None
    approvals: int = 0
    approvals_required: int = 1
    expires_at: datetime | None = None


class AgentRow(_Lenient):
    """An agent in ``GET /agents``."""

    id: str


# ---------------------------------------------------------------- HTTP


class ApiClient:
    """A thin synchronous client for the Countersign API.

    Args:
        base_url: The API's root URL.
        credential: An API key or JWT, or ``None`` (development mode).
        timeout: Seconds per request; deciding waits for the run to settle.
    """

    def __init__(self, base_url: str, credential: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> Any:
        """Send a request and return the decoded JSON body.

        Raises:
            CliError: When the API cannot be reached or answers with an error.
        """
        try:
            response = self._http.request(method, path, params=params, json=json_body)
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot reach the Countersign API at {self.base_url} ({_reason(exc)}); "
                "is it running? Start it with `make up`, or set --api-url / COUNTERSIGN_API_URL"
            ) from None
        except httpx.TimeoutException:
            raise CliError(f"the API at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to {self.base_url} failed: {_reason(exc)}") from None
        if response.is_error:
            raise CliError(_error_line(response))
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"the API answered {response.status_code} with a body that is not JSON"
            ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text or type(exc).__name__


def _error_line(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        code = body.get("code")
        text = f"{response.status_code} {code}: {body['detail']}" if code else str(body["detail"])
    else:
        text = f"{response.status_code} {response.reason_phrase}"
    if response.status_code == 401:
        text += " (pass --api-key or set COUNTERSIGN_API_KEY)"
    return text


# ---------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _args(value: dict[str, Any], limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _emit_json(out: TextIO, value: Any) -> None:
    json.dump(value, out, indent=2, default=str)
    out.write("\n")


def _parse(model: type[BaseModel], value: Any, what: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise CliError(f"unexpected {what} from the API: {exc.errors()[0]['msg']}") from None


def _items(body: Any, key: str) -> list[Any]:
    """The list in a page body (``{"runs": [...]}``) or a bare list."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get(key), list):
        items: list[Any] = body[key]
        return items
    raise CliError(f"unexpected answer from the API: no {key!r} list")


# ---------------------------------------------------------------- commands


class Context:
    """What every command gets: parsed arguments, output stream, API client."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self._client: ApiClient | None = None

    @property
    def json(self) -> bool:
        """Whether to print JSON."""
        return bool(getattr(self.args, "json", False))

    @property
    def api(self) -> ApiClient:
        """The API client, created on first use."""
        if self._client is None:
            url = self.args.api_url or os.environ.get("COUNTERSIGN_API_URL") or DEFAULT_API_URL
            key = self.args.api_key or os.environ.get("COUNTERSIGN_API_KEY") or None
            self._client = ApiClient(url, key, self.args.timeout)
        return self._client

    def close(self) -> None:
        """Release the API client."""
        if self._client is not None:
            self._client.close()

    def print(self, text: str) -> None:
        """Write one block of text."""
        self.out.write(text + "\n")


def _page_params(ctx: Context, filters: dict[str, str | None]) -> dict[str, str]:
    values = {
        **filters,
        "limit": str(ctx.args.limit) if ctx.args.limit else None,
        "page_token": ctx.args.page_token,
    }
    return {k: v for k, v in values.items() if v}


def _note_more(ctx: Context, body: Any) -> None:
    # On stderr, so that --json output stays one JSON document.
    token = body.get("next_page_token") if isinstance(body, dict) else None
    if token:
        sys.stderr.write(f"more results: repeat with --page-token {token}\n")


def _agent_ids(ctx: Context) -> list[str]:
    agents = _items(ctx.api.request("GET", "/agents"), "agents")
    return [_parse(AgentRow, a, "agent").id for a in agents]


def cmd_runs_list(ctx: Context) -> int:
    """``runs list``: runs of one agent, or of every agent."""
    params = _page_params(ctx, {"session_id": ctx.args.session, "status": ctx.args.status})
    agents = [ctx.args.agent] if ctx.args.agent else _agent_ids(ctx)
    raw: list[Any] = []
    for agent in agents:
        body = ctx.api.request("GET", f"/agents/{quote(agent, safe='')}/runs", params=params)
        raw.extend(_items(body, "runs"))
        _note_more(ctx, body)
    if ctx.json:
        _emit_json(ctx.out, raw)
        return 0
    runs: list[RunRow] = [_parse(RunRow, r, "run") for r in raw]
    if not runs:
        ctx.print("no runs")
        return 0
    ctx.print(
        table(
            ["RUN", "AGENT", "STATUS", "PENDING", "SESSION", "USER", "STARTED"],
            [
                [
                    r.run_id,
                    r.agent_id,
                    r.status or "-",
                    str(r.pending_approvals),
                    r.session_id or "-",
                    r.user_id or "-",
                    _when(r.started_at),
                ]
                for r in runs
            ],
        )
    )
    return 0


def cmd_runs_show(ctx: Context) -> int:
    """``runs show RUN_ID --agent A``."""
    path = f"/agents/{quote(ctx.args.agent, safe='')}/runs/{quote(ctx.args.run_id, safe='')}"
    body = ctx.api.request("GET", path)
    if ctx.json:
        _emit_json(ctx.out, body)
        return 0
    run: RunDetail = _parse(RunDetail, body, "run")
    lines = [
        f"run      {run.run_id}",
        f"agent    {run.agent_id}",
        f"status   {run.status}",
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
                        t.state or "-",
                        _args(t.tool_args),
                        t.approval_id or "-",
                        _when(t.expires_at),
                    ]
                    for t in run.tools
                ],
            )
        )
    return 0


def cmd_approvals_list(ctx: Context) -> int:
    """``approvals list``: the inbox."""
    params = _page_params(
        ctx, {"status": ctx.args.status, "agent_id": ctx.args.agent, "tool_name": ctx.args.tool}
    )
    body = ctx.api.request("GET", "/approvals", params=params)
    raw = _items(body, "approvals")
    _note_more(ctx, body)
    if ctx.json:
        _emit_json(ctx.out, raw)
        return 0
    rows: list[ApprovalRow] = [_parse(ApprovalRow, a, "approval") for a in raw]
    if not rows:
        ctx.print("no approvals")
        return 0
    ctx.print(
        table(
            ["APPROVAL", "AGENT", "TOOL", "ARGS", "REQUESTER", "APPROVALS", "EXPIRES"],
            [
                [
                    a.approval_id,
                    a.agent_id,
                    a.tool_name,
                    _args(a.tool_args),
                    a.requester or "-",
                    f"{a.approvals}/{a.approvals_required}",
                    _when(a.expires_at),
                ]
                for a in rows
            ],
        )
    )
    return 0


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
        _emit_json(ctx.out, answer)
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


def _key_store(ctx: Context) -> ApiKeyStore:
    path: Path = ctx.args.file or Settings().api_keys_file
    return ApiKeyStore(path)


def _key_json(record: ApiKeyRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"hash"})


def cmd_keys_create(ctx: Context) -> int:
    """``keys create --id ID --roles R1,R2``: print the new key once."""
    store = _key_store(ctx)
    created = store.create(ctx.args.id, parse_roles(ctx.args.roles))
    if ctx.json:
        _emit_json(ctx.out, {**_key_json(created.record), "key": created.key})
        return 0
    record = created.record
    ctx.print(created.key)
    sys.stderr.write(
        f"created key {record.key_id} for {record.principal_id} "
        f"(roles: {', '.join(record.roles)}) in {store.path}\n"
        "this is the only time the key is shown: store it now\n"
    )
    return 0


def cmd_keys_list(ctx: Context) -> int:
    """``keys list``: ids, principals and roles, never secrets."""
    records = _key_store(ctx).records()
    if ctx.json:
        _emit_json(ctx.out, [_key_json(r) for r in records])
        return 0
    if not records:
        ctx.print("no keys")
        return 0
    ctx.print(
        table(
            ["KEY ID", "PRINCIPAL", "ROLES", "CREATED", "REVOKED"],
            [
                [
                    r.key_id,
                    r.principal_id,
                    ",".join(r.roles),
                    _when(r.created_at),
                    _when(r.revoked_at) if r.revoked_at else "-",
                ]
                for r in records
            ],
        )
    )
    return 0


def cmd_keys_revoke(ctx: Context) -> int:
    """``keys revoke KEY_ID``."""
    record = _key_store(ctx).revoke(ctx.args.key_id)
    if ctx.json:
        _emit_json(ctx.out, _key_json(record))
        return 0
    ctx.print(f"revoked {record.key_id} ({record.principal_id})")
    return 0


def cmd_audit_export(ctx: Context) -> int:
    """``audit export --agent A --run R [--out F]``: the trail as JSON lines."""
    path = f"/agents/{quote(ctx.args.agent, safe='')}/runs/{quote(ctx.args.run, safe='')}/audit"
    body = ctx.api.request("GET", path)
    events = [_parse(AuditEvent, e, "audit event") for e in _items(body, "events")]
    if ctx.args.out:
        with Path(ctx.args.out).open("w", encoding="utf-8") as fh:
            count = write_jsonl(events, fh)
        sys.stderr.write(f"wrote {count} events of run {ctx.args.run} to {ctx.args.out}\n")
    else:
        write_jsonl(events, ctx.out)
    return 0


def _report_lines(report: VerifyReport) -> list[str]:
    lines = [problem.message for problem in report.unreadable]
    for run in report.runs:
        if run.broken is None:
            lines.append(f"run {run.run_id}: {run.events} events, chain intact")
        else:
            lines.append(f"TAMPERED {run.broken.message}")
    return lines


def cmd_audit_verify(ctx: Context) -> int:
    """``audit verify FILE``: exit 1 when any chain is broken."""
    try:
        report = verify_file(Path(ctx.args.file))
    except OSError as exc:
        raise CliError(f"cannot read {ctx.args.file}: {exc.strerror or exc}") from None
    if ctx.json:
        _emit_json(ctx.out, {"ok": report.ok, **report.model_dump(mode="json")})
    else:
        ctx.print("\n".join(_report_lines(report)) or "no events")
        ctx.print("OK" if report.ok else "FAILED: the trail was changed")
    return 0 if report.ok else 1


# ---------------------------------------------------------------- parser


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="page size (the API's default otherwise)")
    parser.add_argument("--page-token", help="from the previous page's hint")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the command must not be reset by the
    # subcommand's default; both positions work.
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    common.add_argument(
        "--api-url", default=argparse.SUPPRESS, help="default: $COUNTERSIGN_API_URL"
    )
    common.add_argument(
        "--api-key", default=argparse.SUPPRESS, help="API key or JWT; default: $COUNTERSIGN_API_KEY"
    )
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="seconds")

    parser = argparse.ArgumentParser(
        prog="countersign", description="Durable human approval for AI agents' tool calls."
    )
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.add_argument("--api-url", default=None, help="default: $COUNTERSIGN_API_URL")
    parser.add_argument(
        "--api-key", default=None, help="API key or JWT; default: $COUNTERSIGN_API_KEY"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(
        group: Any, name: str, handler: Callable[[Context], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, parents=[common], help=help_text)
        sub.set_defaults(handler=handler)
        return sub

    runs = commands.add_parser("runs", help="list and show runs").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = leaf(runs, "list", cmd_runs_list, "list runs (of every agent unless --agent)")
    p.add_argument("--agent")
    p.add_argument("--session")
    p.add_argument("--status", help="RUNNING, PAUSED, COMPLETED, ERROR or CANCELLED")
    _paging(p)
    p = leaf(runs, "show", cmd_runs_show, "show one run with its tool calls")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--agent", required=True)

    approvals = commands.add_parser("approvals", help="the approvals inbox").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = leaf(approvals, "list", cmd_approvals_list, "list approvals (pending by default)")
    p.add_argument("--status", default="pending")
    p.add_argument("--agent")
    p.add_argument("--tool")
    _paging(p)

    for verb, handler in (("approve", cmd_approve), ("reject", cmd_reject)):
        p = leaf(commands, verb, handler, f"{verb} a pending tool call")
        p.add_argument("approval_id", metavar="APPROVAL_ID")
        p.add_argument("--note")
        p.add_argument("--user", help="development mode only: decide as this user id")

    keys = commands.add_parser("keys", help="API keys (local key file)").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    file_help = "key file; default: $COUNTERSIGN_API_KEYS_FILE or data/api_keys.json"
    p = leaf(keys, "create", cmd_keys_create, "create a key and print it once")
    p.add_argument("--id", required=True, help="principal id, e.g. alice")
    p.add_argument("--roles", required=True, help="comma-separated, e.g. approver,viewer")
    p.add_argument("--file", type=Path, help=file_help)
    p = leaf(keys, "list", cmd_keys_list, "list keys (never their secrets)")
    p.add_argument("--file", type=Path, help=file_help)
    p = leaf(keys, "revoke", cmd_keys_revoke, "revoke a key by id")
    p.add_argument("key_id", metavar="KEY_ID")
    p.add_argument("--file", type=Path, help=file_help)

    audit = commands.add_parser("audit", help="export and verify audit trails").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = leaf(audit, "export", cmd_audit_export, "write a run's trail as JSON lines")
    p.add_argument("--agent", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--out", help="file to write; default: stdout")
    p = leaf(audit, "verify", cmd_audit_verify, "check the hash chains of an exported file")
    p.add_argument("file", metavar="FILE")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
        out: Where results go (default: stdout); errors always go to stderr.

    Returns:
        The exit code: 0 on success, 1 on failure (or a broken audit chain).
    """
    args = build_parser().parse_args(argv)
    ctx = Context(args, out or sys.stdout)
    try:
        code: int = args.handler(ctx)
    except (CliError, ApiKeyError) as exc:
        sys.stderr.write(f"countersign: error: {exc}\n")
        return 1
    finally:
        ctx.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
