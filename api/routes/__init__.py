"""One router per resource: agents, runs, approvals, health."""
