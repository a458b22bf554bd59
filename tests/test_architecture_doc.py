"""``docs/architecture.md`` stays true to the code it describes.

The page restates facts whose one definition is in the code (the states, the
refusal codes and their HTTP statuses, the roles, the patch ids), so that a
reader need not open five modules. These tests make the code the authority:
a new state, code, role or patch that the page does not list, or a status the
page gets wrong, fails here, and so does a citation of an anchor that is gone.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import workflows
from api.errors import REFUSAL_STATUS, ApiError
from api.policy import PERMISSION_ROLES
from api.routes.decision_tokens import TOKEN_STATUS
from countersign.models import CallState, ErrorCode, RunStatus
from countersign.security import KNOWN_ROLES
from countersign.security.decision_tokens import TokenErrorCode

ROOT = Path(__file__).parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()
ANCHOR = re.compile(r'<a id="([a-z0-9-]+)"></a>')
# A table row whose first cell holds one or more `codes` and whose second cell is the status.
CODE_ROW = re.compile(r"^\| ((?:`[a-z_]+`(?:, )?)+) \| ([^|]+) \|", re.MULTILINE)
# The id a workflow.patched or deprecate_patch call names: a constant or a literal.
PATCH_CALL = re.compile(r"workflow\.(?:patched|deprecate_patch)\(([^)]+)\)")


def _sections() -> dict[str, str]:
    """Each anchor's text, up to the next anchor."""
    parts = ANCHOR.split(DOC)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


SECTIONS = _sections()


def _mermaid(section: str) -> str:
    blocks = re.findall(r"```mermaid\n(.*?)```", SECTIONS[section], re.DOTALL)
    assert len(blocks) == 1, f"#{section} should hold one diagram"
    return str(blocks[0])


def _diagram_states(section: str) -> set[str]:
    # Transitions read "A --> B: label"; [*] is the start and end marker.
    states: set[str] = set()
    for line in _mermaid(section).splitlines():
        if "-->" in line:
            left, _, right = line.partition("-->")
            states |= {left.strip(), right.split(":")[0].strip()}
    return states - {"[*]"}


def _table_codes(section: str) -> dict[str, str]:
    """``{code: status cell}`` of the refusal tables in a section."""
    rows: dict[str, str] = {}
    for codes, status in CODE_ROW.findall(SECTIONS[section]):
        names = re.findall(r"`([a-z_]+)`", codes)
        statuses = [s.strip() for s in status.split(",")]
        for i, name in enumerate(names):
            rows[name] = statuses[i] if len(statuses) == len(names) else statuses[0]
    return rows


def test_every_cited_anchor_exists() -> None:
    anchors = set(SECTIONS)
    cited: set[str] = set(re.findall(r"\]\(#([a-z0-9-]+)\)", DOC))
    sources = [ROOT / "README.md", *ROOT.glob("docs/*.md")]
    for package in ("workflows", "activities", "api", "countersign", "cli", "devstack"):
        sources += (ROOT / package).rglob("*.py")
    sources.append(ROOT / "worker.py")
    for path in sources:
        cited |= set(re.findall(r"architecture\.md#([a-z0-9-]+)", path.read_text()))
    assert cited - anchors == set()


def test_run_states_match_run_status() -> None:
    statuses = {s.value for s in RunStatus}
    assert _diagram_states("run-states") == statuses
    in_table = set(re.findall(r"`([A-Z_]+)`", SECTIONS["run-states"].split("| From |", 1)[1]))
    assert statuses <= in_table


def test_call_states_match_call_state() -> None:
    states = {s.value for s in CallState}
    assert _diagram_states("call-states") == states
    rows = set(re.findall(r"^\| `([A-Z_]+)` \|", SECTIONS["call-states"], re.MULTILINE))
    assert rows == states


def test_every_error_code_is_listed_once() -> None:
    decision = _table_codes("decision-refusals")
    api = _table_codes("api-refusals")
    tokens = {code.value for code in TokenErrorCode}
    assert set(decision) & set(api) == set()
    listed = set(decision) | set(api)
    assert {code.value for code in ErrorCode} - listed == set()
    # And nothing the code no longer has (the API's few literal codes are in its source).
    api_source = "".join(p.read_text() for p in (ROOT / "api").rglob("*.py"))
    stale = {c for c in listed - {e.value for e in ErrorCode} if f'"{c}"' not in api_source}
    assert stale <= tokens
    assert tokens <= set(api)


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_decision_refusal_status_is_the_apis(code: ErrorCode) -> None:
    decision = _table_codes("decision-refusals")
    if code in REFUSAL_STATUS:
        assert code.value in decision, f"{code.value} maps to a status: list it with the refusals"
    if code.value in decision:
        assert decision[code.value] == str(ApiError.refusal(code, "").status_code)


@pytest.mark.parametrize("code", list(TokenErrorCode), ids=str)
def test_token_refusal_status_is_the_apis(code: TokenErrorCode) -> None:
    assert _table_codes("api-refusals")[code.value] == str(TOKEN_STATUS[code])


def test_roles_and_permissions_match_the_policy() -> None:
    roles = SECTIONS["roles"]
    role_rows = set(re.findall(r"^\| `([a-z_]+)` \| [A-Z]", roles, re.MULTILINE))
    assert role_rows == set(KNOWN_ROLES)
    for permission, granted in PERMISSION_ROLES.items():
        row = re.search(rf"^\| `{permission.value}`[^|]*\| ([^|]+) \|", roles, re.MULTILINE)
        assert row is not None, f"no row for the {permission.value} permission"
        assert set(re.findall(r"`([a-z_]+)`", row.group(1))) == set(granted)


def test_every_patch_id_is_documented() -> None:
    patch_ids: set[str] = set()
    for path in Path(workflows.__file__).parent.glob("[!_]*.py"):
        module = importlib.import_module(f"workflows.{path.stem}")
        for arg in PATCH_CALL.findall(path.read_text()):
            arg = arg.strip()
            patch_ids.add(arg.strip("\"'") if arg[0] in "\"'" else getattr(module, arg))
    assert patch_ids, "the workflow guards its changes with workflow.patched"
    missing = {p for p in patch_ids if f"`{p}`" not in SECTIONS["determinism"]}
    assert missing == set()
