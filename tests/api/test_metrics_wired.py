"""The real app serves /metrics, and decisions through the API show up in it."""

from __future__ import annotations

import re

from tests.api.conftest import SEED_ARGS, Api
from tests.scripted_openai import ScriptedModel


def _counter(text: str, outcome: str) -> float:
    match = re.search(rf'^countersign_decisions_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_api_decisions(api: Api, model: ScriptedModel) -> None:
    before = (await api.http.get("/metrics")).text
    paused = await api.start_seed_run(model)
    call_id = paused["tools"][0]["tool_call_id"]
    done = await api.continue_run(
        paused,
        [
            {
                "tool_call_id": call_id,
                "tool_name": "delete_records",
                "tool_args": SEED_ARGS,
                "confirmed": True,
            }
        ],
    )
    assert done.status_code == 200, done.text

    response = await api.http.get("/metrics")

    assert response.status_code == 200
    after = response.text
    assert _counter(after, "approved") == _counter(before, "approved") + 1
    assert "countersign_decision_latency_seconds_count" in after
    assert "countersign_pending_approvals" in after
