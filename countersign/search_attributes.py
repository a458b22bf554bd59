"""Search attributes that make runs listable and filterable (API and Temporal UI).

``make up`` and the test servers register them; a production namespace needs
``temporal operator search-attribute create`` for each (see the README).
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

AGENT_ID = SearchAttributeKey.for_keyword("CountersignAgentId")
STATUS = SearchAttributeKey.for_keyword("CountersignStatus")
USER_ID = SearchAttributeKey.for_keyword("CountersignUserId")
SESSION_ID = SearchAttributeKey.for_keyword("CountersignSessionId")
PENDING_APPROVALS = SearchAttributeKey.for_int("CountersignPendingApprovals")
PENDING_TOOLS = SearchAttributeKey.for_keyword_list("CountersignPendingTools")

ALL: list[SearchAttributeKey[Any]] = [
    AGENT_ID,
    STATUS,
    USER_ID,
    SESSION_ID,
    PENDING_APPROVALS,
    PENDING_TOOLS,
]
