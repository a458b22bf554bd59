"""Every ``workflow.patched`` branch is pinned by a recorded history, both ways.

A patch keeps two branches: the old one for runs recorded before it, the new
one for the rest. Deleting either must fail replay, or nothing protects runs of
that shape. So for each patch id in the workflow code, some history must fail
to replay once the old branch is gone (``patched`` always ``True``: a history
recorded before the patch, see ``docs/histories.md``) and some once the new
branch is gone (``patched`` always ``False``). Without the forcing every history
replays (``test_replay.py``), so these failures come from the removed branch.
"""

from __future__ import annotations

import pytest

from tests.histories.record import history_files
from tests.histories.replay import (
    patch_ids_in_code,
    patch_ids_in_history,
    replay_failure,
    without_branch,
)

PATCH_IDS = sorted(patch_ids_in_code())
RECORDED = history_files()
MARKERS = {path: patch_ids_in_history(path) for path in RECORDED}


def test_the_patch_ids_are_found_in_the_workflow_code() -> None:
    # Guards the source scan: a patch recorded in any history is either still
    # in the code or deprecated there, so it must be among what the scan found.
    recorded = set().union(*MARKERS.values())

    assert recorded
    assert recorded <= set(PATCH_IDS)


@pytest.mark.parametrize("patch_id", PATCH_IDS)
@pytest.mark.parametrize(
    ("removed", "answer"), [("old branch", True), ("new branch", False)], ids=["old", "new"]
)
async def test_removing_a_patch_branch_fails_a_replay(
    patch_id: str, removed: str, answer: bool
) -> None:
    # Only a history without the marker can take the old branch, and only one
    # with it the new branch; the others replay the same either way.
    candidates = [path for path in RECORDED if (patch_id in MARKERS[path]) is not answer]

    with without_branch(patch_id, answer=answer, histories=candidates):
        pinned = [path.name for path in candidates if await replay_failure(path) is not None]

    assert pinned, (
        f"no recorded history fails with the {removed} of workflow.patched({patch_id!r})"
        " removed: record one from the code "
        + ("before the patch" if answer else "with the patch")
        + " (docs/histories.md)"
    )
