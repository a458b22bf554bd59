#!/bin/sh
# One-shot job of docker-compose.yml (image temporalio/admin-tools): waits for
# the Temporal frontend, creates Countersign's namespace if it is missing and
# registers the search attributes that runs are listed by. Re-running it
# changes nothing, so it runs on every `docker compose up`.
#
# Keep the register lines in step with countersign/search_attributes.py
# (tests/ops/test_compose.py checks that they are).
#
# The `temporal` CLI reads TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE from the
# environment. On Temporal Cloud this script does not apply: see the README.
set -eu

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS (host:port of the Temporal frontend)}"
namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${TEMPORAL_NAMESPACE_RETENTION:-30d}"
attempts="${TEMPORAL_WAIT_ATTEMPTS:-60}"

# The server's health check only says its port is open; wait for the frontend
# to answer before asking it anything.
attempt=1
until temporal operator cluster health >/dev/null 2>&1; do
    if [ "$attempt" -ge "$attempts" ]; then
        echo "Temporal at $TEMPORAL_ADDRESS did not become healthy" >&2
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
done

if temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
    echo "namespace $namespace already exists"
else
    temporal operator namespace create --namespace "$namespace" --retention "$retention"
fi

# A new namespace reaches the frontend's namespace cache some seconds after it
# is created; until then search attribute calls answer "namespace not found".
attempt=1
until temporal operator search-attribute list --namespace "$namespace" >/dev/null 2>&1; do
    if [ "$attempt" -ge "$attempts" ]; then
        echo "namespace $namespace did not become usable" >&2
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep 1
done

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
