"""An agent only the CLI's end-to-end test uses, so the shared server's inbox
holds no other test's paused runs under its id."""

from __future__ import annotations

from countersign.agent import Agent
from countersign.data_manager import delete_records

agent = Agent(
    id="cli_operator",
    name="CLI Operator",
    tools=[delete_records],
    instructions=["You help operators clean up data"],
    description="The Data Manager's delete_records, under an agent id of its own.",
)
