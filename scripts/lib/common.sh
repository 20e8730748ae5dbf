# shellcheck shell=bash
# Shared by the backup, restore, verify and prune scripts. Source it; do not run it.
#
# The scripts reach the servers in one of two ways:
# - from the Docker host (default): `docker exec` into the running containers, so the host needs
#   no PostgreSQL or Redis client, and PostgreSQL trusts the container's own unix socket;
# - inside the scheduled backup container (DB_SERVER_BACKUP_DIRECT=1): the PostgreSQL client
#   tools over the Docker network (PGHOST, PGPASSFILE), and Redis through its data volume
#   mounted read-only at DB_SERVER_REDIS_DATA plus one BGSAVE sent over the network.
# No password is ever put on a command line or printed.

set -euo pipefail
umask 077

PG_CONTAINER="${DB_SERVER_POSTGRES_CONTAINER:-db-server-postgres}"
ADMIN_ROLE="${DB_SERVER_ADMIN_ROLE:-dbadmin}"
BACKUP_DIR="${DB_SERVER_BACKUP_DIR:-./backups}"
DIRECT="${DB_SERVER_BACKUP_DIRECT:-0}"

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Runs a PostgreSQL client tool (psql, pg_dump, pg_dumpall) as the admin role. It reads no
# stdin, so it can run inside a `while read` loop without eating the loop's input.
pg() {
  if [[ "$DIRECT" == 1 ]]; then
    "$@" </dev/null
  else
    docker exec --user postgres --env PGUSER="$ADMIN_ROLE" "$PG_CONTAINER" "$@"
  fi
}

# The same, with stdin passed on (SQL to run, a dump to restore).
pg_stdin() {
  if [[ "$DIRECT" == 1 ]]; then
    "$@"
  else
    docker exec -i --user postgres --env PGUSER="$ADMIN_ROLE" "$PG_CONTAINER" "$@"
  fi
}

# psql that stops at the first error, prints bare values and reads no ~/.psqlrc.
PSQL=(psql -X -v ON_ERROR_STOP=1 --no-align --tuples-only --quiet)
psql_admin() { pg "${PSQL[@]}" "$@"; }
psql_admin_stdin() { pg_stdin "${PSQL[@]}" "$@"; }

# A SQL literal / identifier, quoted the way PostgreSQL quotes them.
sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }

server_version() { psql_admin -d postgres -c 'SHOW server_version'; }

# Databases worth backing up: every one but templates and the admin database `postgres`,
# including those Pulumi retained after their project left projects.py.
all_databases() {
  psql_admin -d postgres -c \
    "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1"
}

database_exists() {
  [[ "$(psql_admin -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = $(sql_literal "$1")")" == 1 ]]
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Row counts per table of a plain-format dump (gzip), read from its COPY blocks: one data line
# per row (COPY escapes newlines inside values), ended by `\.`.
dump_row_counts() {
  gzip -dc "$1" | awk '
    /^COPY / { table = $2; rows = 0; copying = 1; next }
    copying && /^\\\.$/ { print table "\t" rows; copying = 0; next }
    copying { rows++ }
  '
}

# Row counts per table of a live database, for the tables a counts file lists.
database_row_counts() {
  local database="$1" counts="$2" table
  while IFS=$'\t' read -r table _; do
    printf '%s\t%s\n' "$table" "$(psql_admin -d "$database" -c "SELECT count(*) FROM $table")"
  done <"$counts"
}

# The newest complete backup directory's name, or nothing.
latest_backup() {
  if [[ -L "$BACKUP_DIR/latest" ]]; then
    readlink "$BACKUP_DIR/latest"
  fi
}

# Resolves a backup argument (a name under BACKUP_DIR, a path, or empty for latest) to a
# directory that holds a complete backup; dies otherwise.
resolve_backup() {
  local wanted="${1:-}" dir
  if [[ -z "$wanted" ]]; then
    wanted="$(latest_backup)"
    [[ -n "$wanted" ]] || die "no complete backup in $BACKUP_DIR (no 'latest')"
  fi
  if [[ -d "$wanted" ]]; then dir="$wanted"; else dir="$BACKUP_DIR/$wanted"; fi
  [[ -d "$dir" ]] || die "no backup $wanted in $BACKUP_DIR"
  [[ -f "$dir/COMPLETE" ]] || die "backup $dir is not complete (no COMPLETE marker): refusing to use it"
  printf '%s\n' "$dir"
}

# Checks a backup file against its manifest line: size, checksum and that gzip can read it all.
check_file() {
  local dir="$1" file="$2" expected_size expected_sum
  read -r expected_size expected_sum < <(awk -F'\t' -v f="$file" '$2 == f { print $3, $4 }' "$dir/manifest.tsv")
  [[ -n "${expected_sum:-}" ]] || die "$file is not in $dir/manifest.tsv"
  [[ -f "$dir/$file" ]] || die "$dir/$file is missing"
  [[ "$(stat -c %s "$dir/$file")" == "$expected_size" ]] || die "$dir/$file: size differs from the manifest"
  [[ "$(sha256_of "$dir/$file")" == "$expected_sum" ]] || die "$dir/$file: checksum differs from the manifest"
  case "$file" in *.gz) gzip -t "$dir/$file" || die "$dir/$file: gzip stream is damaged" ;; esac
}
