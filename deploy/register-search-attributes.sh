#!/bin/sh
# Registers Countersign's search attributes on the compose stack's Temporal
# namespace. Run once per `docker compose up` by the one-shot temporal-setup
# service (temporalio/admin-tools); re-running it changes nothing.
# Keep in step with countersign/search_attributes.py (tests/ops/test_compose.py
# checks that it is).
set -eu

namespace="${TEMPORAL_NAMESPACE:-default}"

register() {
    if temporal operator search-attribute list --namespace "$namespace" | grep -qw "$1"; then
        echo "search attribute $1 already registered"
    else
        temporal operator search-attribute create --namespace "$namespace" --name "$1" --type "$2"
    fi
}

register CountersignAgentId Keyword
register CountersignStatus Keyword
register CountersignUserId Keyword
register CountersignSessionId Keyword
register CountersignPendingApprovals Int
register CountersignPendingTools KeywordList
