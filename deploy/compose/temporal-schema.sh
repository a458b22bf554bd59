#!/bin/sh
# One-shot job of docker-compose.yml (image temporalio/admin-tools): creates
# Temporal's two PostgreSQL databases if they are missing and brings their
# schemas to the version this admin-tools image ships. The server starts only
# after it succeeds. Re-running it changes nothing on an up-to-date database,
# and after an image upgrade it applies the new schema versions.
set -eu

: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS (PostgreSQL host)}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${SQL_PASSWORD:?set SQL_PASSWORD (read by temporal-sql-tool)}"
port="${DB_PORT:-5432}"
schemas=/etc/temporal/schema/postgresql/v12

sql() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" "$@"
}

for pair in "temporal:temporal" "temporal_visibility:visibility"; do
    database="${pair%%:*}"
    schema="${pair#*:}"
    sql --db "$database" create
    # Version 0.0 only creates the schema_version bookkeeping (a no-op when it
    # exists); update-schema then applies every versioned step not yet applied.
    sql --db "$database" setup-schema -v 0.0
    sql --db "$database" update-schema -d "$schemas/$schema/versioned"
done
echo "Temporal schemas are up to date"
