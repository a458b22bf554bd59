"""Example values for the OpenAPI document: the Data Manager example's run, step by step.

They are plain JSON, kept apart from the schemas so the schemas read as the
wire format and the routes can show the same examples.
"""

from __future__ import annotations

from typing import Any

from countersign.models import ErrorCode

EXAMPLE_MESSAGE = "Delete 50 old records from the users table"
EXAMPLE_RUN_ID = "6f1c2b9e0a7d4c4f8e3b5a2d1c0f9e8d"
EXAMPLE_CALL_ID = "fc_08fcec4a7403d0170069800cf3f76081968afd06038b259278"
EXAMPLE_DIGEST = "9c4f0e3b5f1d6a2e8b7c0d9e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c"
EXAMPLE_APPROVAL_ID = f"{EXAMPLE_RUN_ID}:{EXAMPLE_CALL_ID}"

EXAMPLE_ERROR: dict[str, Any] = {
    "detail": "agent 'nope' does not exist",
    "code": ErrorCode.UNKNOWN_AGENT.value,
}

EXAMPLE_CREATE: dict[str, Any] = {
    "message": EXAMPLE_MESSAGE,
    "user_id": "test_user",
    "session_id": "test_session",
    "stream": False,
}

# The Data Manager's continue request (api.http, step 2), as JSON.
EXAMPLE_CONTINUE: dict[str, Any] = {
    "tools": [
        {
            "tool_call_id": EXAMPLE_CALL_ID,
            "tool_name": "delete_records",
            "tool_args": {"table_name": "users", "count": 50},
            "confirmed": True,
        }
    ],
    "session_id": "test_session",
    "user_id": "test_user",
    "stream": False,
}

EXAMPLE_TOOL: dict[str, Any] = {
    "tool_call_id": EXAMPLE_CALL_ID,
    "tool_name": "delete_records",
    "tool_args": {"table_name": "users", "count": 50},
    "requires_confirmation": True,
    "confirmed": None,
    "confirmation_note": None,
    "result": None,
    "tool_call_error": None,
    "state": "AWAITING_CONFIRMATION",
    "turn": 1,
    "args_digest": EXAMPLE_DIGEST,
    "expires_at": "2026-01-02T10:00:00Z",
    "approvals_required": 1,
    "approver_roles": [],
    "allow_edit": False,
    "decisions": [],
    "result_truncated": False,
    "approval_id": EXAMPLE_APPROVAL_ID,
}

EXAMPLE_PAUSED_RUN: dict[str, Any] = {
    "run_id": EXAMPLE_RUN_ID,
    "agent_id": "data_manager",
    "session_id": "test_session",
    "user_id": "test_user",
    "status": "PAUSED",
    "content": None,
    "message": EXAMPLE_MESSAGE,
    "created_at": "2026-01-01T10:00:00Z",
    "updated_at": "2026-01-01T10:00:01Z",
    "tools": [EXAMPLE_TOOL],
    "error": None,
    "model": "gpt-5.2",
    "demo_model": False,
    "usage": {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150},
    "turns": 1,
    "requester": "test_user",
}

EXAMPLE_COMPLETED_RUN: dict[str, Any] = {
    **EXAMPLE_PAUSED_RUN,
    "status": "COMPLETED",
    "content": "Deleted 50 records from users.",
    "tools": [
        {
            **EXAMPLE_TOOL,
            "confirmed": True,
            "result": "Deleted 50 records from users",
            "tool_call_error": False,
            "state": "EXECUTED",
            "decisions": [
                {
                    "principal_id": "test_user",
                    "roles": ["approver"],
                    "confirmed": True,
                    "note": None,
                    "source": "api",
                    "decided_at": "2026-01-01T10:01:00Z",
                    "edited_args": None,
                }
            ],
        }
    ],
    "turns": 2,
}

EXAMPLE_RUN_LIST: dict[str, Any] = {
    "runs": [
        {
            "run_id": EXAMPLE_RUN_ID,
            "agent_id": "data_manager",
            "session_id": "test_session",
            "user_id": "test_user",
            "status": "PAUSED",
            "pending_approvals": 1,
            "pending_tools": ["delete_records"],
            "started_at": "2026-01-01T10:00:00Z",
            "closed_at": None,
        }
    ],
    "next_page_token": None,
}

EXAMPLE_AGENT: dict[str, Any] = {
    "id": "data_manager",
    "name": "Data Manager",
    "description": "Deletes records and sends notifications, each after a person confirms it.",
    "instructions": ["You help users manage data operations"],
    "model": None,
    "markdown": True,
    "tools": {
        "tools": [
            {
                "name": "delete_records",
                "description": "Delete records from a database table.",
                "parameters": {
                    "type": "object",
                    "properties": {"table_name": {"type": "string"}, "count": {"type": "integer"}},
                    "required": ["table_name", "count"],
                    "additionalProperties": False,
                },
                "requires_confirmation": "always",
                "approver_roles": [],
                "approvals_required": 1,
                "allow_self_approval": True,
                "confirmation_ttl_seconds": 86400.0,
                "on_timeout": "deny",
                "allow_edit": False,
            }
        ],
        "tool_call_limit": None,
        "tool_choice": None,
    },
}

EXAMPLE_APPROVAL: dict[str, Any] = {
    "approval_id": EXAMPLE_APPROVAL_ID,
    "run_id": EXAMPLE_RUN_ID,
    "agent_id": "data_manager",
    "session_id": "test_session",
    "user_id": "test_user",
    "requester": "test_user",
    "message": EXAMPLE_MESSAGE,
    "run_status": "PAUSED",
    "tool_call_id": EXAMPLE_CALL_ID,
    "tool_name": "delete_records",
    "tool_args": {"table_name": "users", "count": 50},
    "args_digest": EXAMPLE_DIGEST,
    "state": "AWAITING_CONFIRMATION",
    "expires_at": "2026-01-02T10:00:00Z",
    "approvals_required": 1,
    "approvals": 0,
    "approver_roles": [],
    "allow_edit": False,
    "decisions": [],
}

EXAMPLE_AUDIT_TRAIL: dict[str, Any] = {
    "run_id": EXAMPLE_RUN_ID,
    "events": [
        {
            "seq": 0,
            "at": "2026-01-01T10:00:00Z",
            "kind": "run.started",
            "run_id": EXAMPLE_RUN_ID,
            "tool_call_id": None,
            "principal": {"id": "test_user", "roles": ["requester"]},
            "source": None,
            "detail": EXAMPLE_MESSAGE,
            "data": {},
            "prev_hash": "0" * 64,
            "hash": EXAMPLE_DIGEST,
        }
    ],
    "chain_intact": True,
    "first_broken_link": None,
}
