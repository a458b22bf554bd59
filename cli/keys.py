"""``countersign keys create|list|revoke``: the API-key file, no API needed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cli.context import Context
from cli.output import emit_json, table, when
from countersign.security.api_keys import ApiKeyRecord, ApiKeyStore, parse_roles
from countersign.settings import Settings


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
        emit_json(ctx.out, {**_key_json(created.record), "key": created.key})
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
        emit_json(ctx.out, [_key_json(r) for r in records])
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
                    when(r.created_at),
                    when(r.revoked_at) if r.revoked_at else "-",
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
        emit_json(ctx.out, _key_json(record))
        return 0
    ctx.print(f"revoked {record.key_id} ({record.principal_id})")
    return 0
