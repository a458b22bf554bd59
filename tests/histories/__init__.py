"""Recorded ``AgentRunWorkflow`` histories that the replay test runs in CI."""
