# shellcheck shell=bash
# Shared by the backup, restore, verify, copy and prune scripts. Source it; do not run it.
#
# Who runs what (README, "Isolation, and its limits"):
# - The admin, a superuser, works only in the `postgres` database and on the cluster: reading
#   the catalogs, CREATE/DROP/RENAME DATABASE, REVOKE, ending sessions, `pg_dumpall --globals-only`.
#   None of that runs code a project wrote.
# - Everything inside a project's database (pg_dump, the restores of its dumps, the row counts)
#   runs logged in as that database's owner, the project's own role. A dump makes the server run
#   the project's code (CHECK constraints and generated columns during COPY, index expressions,
#   materialized views), and it must run with the project's rights, never more. A real login,
#   not SET ROLE from the admin's session: the project's code could RESET ROLE back to it.
#
# The servers are reached through PostgreSQL's unix socket, where the official image trusts
# every local login, so no project password is needed or ever seen:
# - from the Docker host (default): `docker exec` into the running container;
# - inside the scheduled backup container (DB_SERVER_BACKUP_DIRECT=1): PostgreSQL's socket
#   directory, a volume shared with the server's container, and Redis through its data volume
#   mounted read-only at DB_SERVER_REDIS_DATA plus one BGSAVE sent over the network.
# No password is ever put on a command line or printed.

set -euo pipefail
umask 077

PG_CONTAINER="${DB_SERVER_POSTGRES_CONTAINER:-db-server-postgres}"
ADMIN_ROLE="${DB_SERVER_ADMIN_ROLE:-dbadmin}"
BACKUP_DIR="${DB_SERVER_BACKUP_DIR:-./backups}"
DIRECT="${DB_SERVER_BACKUP_DIRECT:-0}"

# Session settings of every login the scripts make: a role's own defaults (a project's
# statement_timeout, a read-only default it set on itself) must not break its backup or restore,
# and names resolve in pg_catalog first.
SESSION_OPTIONS="-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c default_transaction_read_only=off -c search_path=pg_catalog"

# Scratch databases (verification and restores in progress) are named with this prefix and a
# random part; project names may not take it (validation.py).
SCRATCH_PREFIX="db_server_scratch_"

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Runs a PostgreSQL client tool (psql, pg_dump, pg_dumpall) logged in as ROLE. The tool reads
# no stdin, so it can run inside a `while read` loop without eating the loop's input.
#   pg_as ROLE TOOL ARGS...
pg_as() {
  local role="$1"
  shift
  if [[ "$DIRECT" == 1 ]]; then
    PGHOST=/var/run/postgresql PGUSER="$role" PGOPTIONS="$SESSION_OPTIONS" "$@" </dev/null
  else
    docker exec --user postgres --env PGHOST=/var/run/postgresql --env PGUSER="$role" \
      --env PGOPTIONS="$SESSION_OPTIONS" "$PG_CONTAINER" "$@"
  fi
}

# The same, with stdin passed on (SQL to run, a dump to restore).
pg_as_stdin() {
  local role="$1"
  shift
  if [[ "$DIRECT" == 1 ]]; then
    PGHOST=/var/run/postgresql PGUSER="$role" PGOPTIONS="$SESSION_OPTIONS" "$@"
  else
    docker exec -i --user postgres --env PGHOST=/var/run/postgresql --env PGUSER="$role" \
      --env PGOPTIONS="$SESSION_OPTIONS" "$PG_CONTAINER" "$@"
  fi
}

# psql that stops at the first error, prints bare values and reads no ~/.psqlrc.
PSQL=(psql -X -v ON_ERROR_STOP=1 --no-align --tuples-only --quiet)

# SQL as the admin, in the admin database `postgres` only: never inside a project's database,
# whose owner's settings and objects would apply to the admin's session.
admin_sql() { pg_as "$ADMIN_ROLE" "${PSQL[@]}" --dbname=postgres --command="$1"; }
admin_sql_stdin() { pg_as_stdin "$ADMIN_ROLE" "${PSQL[@]}" --dbname=postgres; }

# A SQL literal / identifier, quoted the way PostgreSQL quotes them.
sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }

server_version() { admin_sql 'SHOW server_version'; }

# Databases worth backing up: every one but templates, the admin database `postgres` and
# scratch databases, including those Pulumi retained after their project left projects.py.
all_databases() {
  admin_sql "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'
    AND left(datname, ${#SCRATCH_PREFIX}) <> $(sql_literal "$SCRATCH_PREFIX") ORDER BY 1"
}

database_exists() {
  [[ "$(admin_sql "SELECT count(*) FROM pg_database WHERE datname = $(sql_literal "$1")")" == 1 ]]
}

# The role that owns DATABASE, which everything inside it runs as; dies unless it is a role
# that may log in and is no superuser (a superuser's database is not a project's: running its
# contents as a superuser is what these scripts never do).
owner_of() {
  local database="$1" row
  row="$(admin_sql "SELECT r.rolname || '|' || r.rolsuper || '|' || r.rolcanlogin
    FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $(sql_literal "$database")")"
  [[ -n "$row" ]] || die "no database $database on the server"
  login_role "${row%%|*}" "database $database"
}

# Prints ROLE if it exists, may log in and is no superuser; dies naming WHAT otherwise.
login_role() {
  local role="$1" what="$2" row
  row="$(admin_sql "SELECT rolsuper || '|' || rolcanlogin FROM pg_roles WHERE rolname = $(sql_literal "$role")")"
  [[ -n "$row" ]] || die "$what: its owner role $role does not exist"
  [[ "${row%%|*}" == false ]] ||
    die "$what is owned by the superuser $role: its contents are not run as a superuser; give it a project's role as owner (ALTER DATABASE ... OWNER TO ...)"
  [[ "${row#*|}" == true ]] || die "$what: its owner role $role may not log in (NOLOGIN)"
  printf '%s\n' "$role"
}

# The role a backed-up database is restored as: the one it was dumped as (the manifest's owner
# column), or, for a backup older than that column, the live database's owner. Never the admin.
#   backup_owner BACKUP_DIR DATABASE
backup_owner() {
  local dir="$1" database="$2" owner
  owner="$(awk -F'\t' -v kind="database:$database" '$1 == kind { print $6 }' "$dir/manifest.tsv")"
  if [[ -n "$owner" ]]; then
    login_role "$owner" "database $database"
  elif database_exists "$database"; then
    owner_of "$database"
  else
    die "database $database: the backup names no owner and the server has no such database (restore it with --owner ROLE)"
  fi
}

# Creates a new, empty database owned by OWNER, closed to PUBLIC before anyone can connect:
# it is made with connections disallowed, PUBLIC's CONNECT and TEMPORARY are revoked, and only
# then are connections allowed (for its owner and the admin alone).
#   create_private_database NAME OWNER
create_private_database() {
  local name owner
  name="$(sql_ident "$1")" owner="$(sql_ident "$2")"
  admin_sql "CREATE DATABASE $name OWNER $owner TEMPLATE template0 ALLOW_CONNECTIONS false" >/dev/null
  admin_sql_stdin >/dev/null <<SQL
REVOKE ALL ON DATABASE $name FROM PUBLIC;
ALTER DATABASE $name ALLOW_CONNECTIONS true;
SQL
}

drop_database() {
  admin_sql "DROP DATABASE IF EXISTS $(sql_ident "$1") WITH (FORCE)" >/dev/null
}

# A name for a scratch database no one can guess: the prefix, the time and 16 random hex digits.
scratch_name() { printf '%s%s_%s\n' "$SCRATCH_PREFIX" "$(date -u +%s)" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"; }

# Drops scratch databases left by runs killed outright (SIGKILL, a lost container) more than
# DB_SERVER_SCRATCH_MAX_AGE seconds (a day) ago: what a trap could not clean up.
drop_stale_scratch() {
  local max_age="${DB_SERVER_SCRATCH_MAX_AGE:-86400}" name born
  while IFS= read -r name; do
    born="${name#"$SCRATCH_PREFIX"}"
    born="${born%%_*}"
    if [[ "$born" =~ ^[0-9]+$ ]] && (($(date -u +%s) - born > max_age)); then
      log "dropping scratch database $name, left by a run that did not finish"
      drop_database "$name"
    fi
  done < <(admin_sql "SELECT datname FROM pg_database WHERE left(datname, ${#SCRATCH_PREFIX}) = $(sql_literal "$SCRATCH_PREFIX")")
}

# Restores a plain-format dump from stdin into DATABASE, as ROLE, in one transaction.
#   restore_as ROLE DATABASE < dump.sql
restore_as() {
  pg_as_stdin "$1" "${PSQL[@]}" --single-transaction --dbname="$2" >/dev/null
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

# Row counts per table of a live database, for the tables a counts file lists, counted by ROLE
# (the database's owner: a table may be a view by now, or carry row-level security).
#   database_row_counts ROLE DATABASE COUNTS_FILE
database_row_counts() {
  local role="$1" database="$2" counts="$3" table
  while IFS=$'\t' read -r table _; do
    printf '%s\t%s\n' "$table" \
      "$(pg_as "$role" "${PSQL[@]}" --dbname="$database" --command="SELECT pg_catalog.count(*) FROM $table")"
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
