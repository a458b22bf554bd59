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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from cli.approvals import cmd_approvals_list, cmd_approve, cmd_reject
from cli.audit import cmd_audit_export, cmd_audit_verify
from cli.context import DEFAULT_TIMEOUT, Context
from cli.http import CliError
from cli.keys import cmd_keys_create, cmd_keys_list, cmd_keys_revoke
from cli.runs import cmd_runs_list, cmd_runs_show
from countersign.security.api_keys import ApiKeyError


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
