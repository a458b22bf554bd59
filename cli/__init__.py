"""The ``countersign`` command: runs, approvals, keys and the audit trail, over the HTTP API."""
