#!/usr/bin/env bash
# Copy one project's database from the stack's PostgreSQL container to the server the stack now
# manages it on (after postgres.mode became external: the project's role and empty database
# are there already, made by `pulumi up`). See README, "Move to an external server".
#
# Usage: pulumi stack output <database>_host_url --show-secrets \
#          | scripts/copy-database.sh <database> [--ca-file FILE]
#   the target URL comes on stdin, so no password is ever on a command line
#   --ca-file FILE   the CA of the target's certificate, for sslmode verify-ca / verify-full
#
# 1. The database on the old server stops taking the project's connections (CONNECTION LIMIT 0)
#    and its sessions end, so no write lands there after the copy. Nothing there is dropped;
#    `ALTER DATABASE <database> CONNECTION LIMIT -1` on the old server opens it again.
# 2. pg_dump (without owners and grants), logged in as the database's owner, is restored in one
#    transaction by the project's own role into its database on the target, which must have no
#    tables yet. The admin never runs anything inside the project's database: a connection
#    limit of 0 would keep the owner out too, so for the copy the closed database is renamed
#    aside (apps asking for it by name find nothing) and opened for its owner, then renamed back.
# 3. The row count of every table is compared, old server against target; any difference fails.
#
# The target is reached from the Docker host through a throwaway container of the old server's
# image (its client tools match the dump), so the host needs no PostgreSQL client.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { die "usage: ... | $0 <database> [--ca-file FILE]   (the target URL on stdin)"; }

# Percent-decoding of a URL part.
url_decode() { printf '%b' "${1//%/\\x}"; }

# psql on the target as the project's role; stdin passed on. The password reaches psql through
# a pgpass file in a private directory mounted read-only, never through an argument or the env.
psql_target() {
  docker run --rm -i --network host --volume "$secrets:/run/target:ro" \
    --env PGPASSFILE=/run/target/pgpass --env PGSSLMODE="$sslmode" \
    ${ca_file:+--env PGSSLROOTCERT=/run/target/ca.pem} \
    "$image" "${PSQL[@]}" --host="$host" --port="$port" --username="$user" --dbname="$dbname" "$@"
}

# A query that counts the rows of every table, written by the old server for its own tables,
# as the database's owner.
#   row_count_query OWNER DATABASE
row_count_query() {
  pg_as "$1" "${PSQL[@]}" --dbname="$2" --command="
    SELECT coalesce(string_agg(format('SELECT %L, pg_catalog.count(*) FROM %I.%I',
                                      n.nspname || '.' || c.relname, n.nspname, c.relname),
                               ' UNION ALL ' ORDER BY n.nspname, c.relname)
                    || ' ORDER BY 1', 'SELECT 1 WHERE false')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%'"
}

# Ends every session in DATABASE, waiting up to 10 s for each to go.
end_sessions() {
  admin_sql "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity
    WHERE datname = $(sql_literal "$1") AND pid <> pg_backend_pid()" >/dev/null
}

# Puts the database back under its own name, closed (see 1. above); on every way out.
aside=""
put_back() {
  [[ -n "$aside" ]] || return 0
  if ! admin_sql "ALTER DATABASE $(sql_ident "$aside") CONNECTION LIMIT 0" >/dev/null ||
    ! end_sessions "$aside" ||
    ! admin_sql "ALTER DATABASE $(sql_ident "$aside") RENAME TO $(sql_ident "$database")" >/dev/null; then
    log "could not rename $aside back: ALTER DATABASE $aside RENAME TO $database on the old server"
  fi
  aside=""
}

main() {
  local ca_file="" url="" rest query source_counts target_counts tables owner
  database=""
  while (($#)); do
    case "$1" in
      --ca-file) ca_file="${2:-}"; [[ -f "$ca_file" ]] || die "no CA file ${2:-}"; shift 2 ;;
      -*) usage ;;
      *) [[ -z "$database" ]] || usage; database="$1"; shift ;;
    esac
  done
  [[ -n "$database" ]] || usage
  [[ ! -t 0 ]] || usage
  IFS= read -r url || [[ -n "$url" ]] || die "no target URL on stdin"

  local pattern='^postgresql(\+[a-z]+)?://([^:/@]+):([^@]*)@([^:/@]+):([0-9]+)/([^?]+)(\?sslmode=([a-z-]+))?$'
  [[ "$url" =~ $pattern ]] || die "stdin is not a project URL of this stack (<database>_host_url)"
  user="${BASH_REMATCH[2]}" host="${BASH_REMATCH[4]}" port="${BASH_REMATCH[5]}"
  dbname="${BASH_REMATCH[6]}" sslmode="${BASH_REMATCH[8]:-disable}" rest="${BASH_REMATCH[3]}"
  [[ "$dbname" == "$database" ]] || die "the URL on stdin is for database $dbname, not $database"
  database_exists "$database" || die "no database $database in container $PG_CONTAINER"
  owner="$(owner_of "$database")"
  pg_dump_fences || die "the old server's pg_dump predates 17.6: its dump is not fenced against psql meta-commands (CVE-2025-8715); update its image first"
  image="$(docker inspect --format '{{.Image}}' "$PG_CONTAINER")"

  secrets="$(mktemp -d)"
  trap 'put_back; rm -rf "$secrets"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  rest="$(url_decode "$rest")"
  rest="${rest//\\/\\\\}"
  printf '%s:%s:%s:%s:%s\n' "$host" "$port" "$dbname" "$user" "${rest//:/\\:}" >"$secrets/pgpass"
  [[ -z "$ca_file" ]] || cp "$ca_file" "$secrets/ca.pem"

  tables="$(psql_target -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%'")" || die "cannot log in to the target as $user"
  [[ "$tables" == 0 ]] || die "database $database on the target has $tables tables already: not copying over them"

  log "closing $database on the old server to the project's new sessions, ending its sessions"
  admin_sql "ALTER DATABASE $(sql_ident "$database") CONNECTION LIMIT 0" >/dev/null
  end_sessions "$database"
  aside="${database:0:40}__copying_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  admin_sql_stdin >/dev/null <<SQL
ALTER DATABASE $(sql_ident "$database") RENAME TO $(sql_ident "$aside");
ALTER DATABASE $(sql_ident "$aside") CONNECTION LIMIT -1;
SQL

  log "copying $database to $host:$port as $user (read as $owner)"
  pg_as "$owner" pg_dump --no-owner --no-privileges --dbname="$aside" |
    psql_target --single-transaction --file=- >/dev/null

  query="$(row_count_query "$owner" "$aside")"
  source_counts="$(pg_as "$owner" "${PSQL[@]}" --dbname="$aside" --command="$query")"
  target_counts="$(psql_target -c "$query")"
  put_back
  if [[ "$source_counts" != "$target_counts" ]]; then
    diff <(printf '%s\n' "$source_counts") <(printf '%s\n' "$target_counts") >&2 || true
    die "row counts differ between the old server (<) and the target (>)"
  fi
  log "copied $database: $(grep -c . <<<"$source_counts" || true) tables, $(awk -F'|' '{ n += $2 } END { print n + 0 }' <<<"$source_counts") rows, counts equal on both servers"
  log "the old server keeps $database, closed; drop it there once the project runs on the target"
}

main "$@"
