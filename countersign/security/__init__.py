"""Security building blocks: API keys, JWT, signed decision tokens.

HTTP rate limits and the request size guard live in the API (``api/rate_limit.py``).

Each module is one idea and has no dependency on the API package, so the CLI,
the API and the tests share the same code.
"""

from __future__ import annotations

ROLE_REQUESTER = "requester"
ROLE_APPROVER = "approver"
ROLE_VIEWER = "viewer"
ROLE_ADMIN = "admin"

KNOWN_ROLES = (ROLE_REQUESTER, ROLE_APPROVER, ROLE_VIEWER, ROLE_ADMIN)
"""The roles the API checks; tools may name further roles in ``approver_roles``."""
