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
# statement_timeout, a read-only default, libraries to preload, an encoding it set on itself)
# must not break its backup or restore; names resolve in pg_catalog first; a lock a project
# holds makes a step fail after a minute rather than wait forever; and a session whose client
# is gone (a step past its time limit) ends within seconds, whatever it was running.
# Seconds a step waits for a lock a project holds before it fails (pg_dump's tables, a restore).
LOCK_TIMEOUT="${DB_SERVER_LOCK_TIMEOUT:-60}"
SESSION_OPTIONS="-c statement_timeout=0 -c lock_timeout=${LOCK_TIMEOUT}s -c idle_in_transaction_session_timeout=0 -c default_transaction_read_only=off -c search_path=pg_catalog -c local_preload_libraries= -c client_encoding=UTF8 -c client_connection_check_interval=10s"

# Wall-clock limit of each step (one database's dump, restore or count), in seconds: a project's
# code that sleeps or waits holds up the run that long at most, and then fails alone.
STEP_TIMEOUT="${DB_SERVER_STEP_TIMEOUT:-3600}"

# Scratch databases (verification and restores in progress) are named with this prefix and a
# random part; project names may not take it (validation.py).
SCRATCH_PREFIX="db_server_scratch_"

# What a project controls can reach these scripts' output (its object names, the notices its
# code raises during a restore): control characters are dropped, so it can neither rewrite the
# operator's terminal nor forge a line, and each stream is cut after 64 KiB.
sanitize() {
  # C0 controls and DEL; then, in UTF-8, the C1 controls (a terminal may take U+009B for ESC [)
  # and the bidirectional overrides that reorder what the operator reads.
  LC_ALL=C tr -d '\000-\010\013-\037\177' | LC_ALL=C awk -v max="${DB_SERVER_MAX_OUTPUT_BYTES:-65536}" '
    { gsub(/\302[\200-\237]|\342\200[\252-\256]|\342\201[\246-\251]/, "") }
    { n += length($0) + 1 }
    n <= max { print; next }
    !cut { print "[... the rest of this output was dropped]"; cut = 1 }'
}

# A metrics file for node_exporter's textfile collector in DB_SERVER_METRICS_DIR, written
# whole, then renamed, so the collector never reads half of one. Nothing without the directory.
#   write_metrics NAME < lines
write_metrics() {
  local dir="${DB_SERVER_METRICS_DIR:-}"
  [[ -n "$dir" && -d "$dir" ]] || { cat >/dev/null; return 0; }
  cat >"$dir/$1.prom.tmp" && chmod 644 "$dir/$1.prom.tmp" && mv -f "$dir/$1.prom.tmp" "$dir/$1.prom"
}

log() { printf '[%s] %s\n' "${0##*/}" "$*" | sanitize >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Runs a PostgreSQL client tool (psql, pg_dump, pg_dumpall) logged in as ROLE, within
# STEP_TIMEOUT; its stderr is sanitized. Reads no stdin unless --stdin comes first, so it can
# run inside a `while read` loop without eating the loop's input.
#   pg_as [--stdin] ROLE TOOL ARGS...
pg_as() {
  local input=/dev/null interactive=()
  if [[ "$1" == --stdin ]]; then
    input=/dev/stdin interactive=(-i)
    shift
  fi
  local role="$1"
  shift
  # The limit runs where the tool runs: a docker exec client that is killed leaves its process
  # in the container running.
  local limited=(timeout --kill-after=30 "$STEP_TIMEOUT" "$@")
  if [[ "$DIRECT" == 1 ]]; then
    PGHOST=/var/run/postgresql PGUSER="$role" PGOPTIONS="$SESSION_OPTIONS" PGAPPNAME=db-server-scripts \
      "${limited[@]}" <"$input" 2> >(sanitize >&2)
  else
    docker exec "${interactive[@]}" --user postgres --env PGHOST=/var/run/postgresql \
      --env PGUSER="$role" --env PGOPTIONS="$SESSION_OPTIONS" --env PGAPPNAME=db-server-scripts \
      "$PG_CONTAINER" "${limited[@]}" <"$input" 2> >(sanitize >&2)
  fi
}

# psql that stops at the first error, prints bare values and reads no ~/.psqlrc.
PSQL=(psql -X -v ON_ERROR_STOP=1 --no-align --tuples-only --quiet)

# SQL as the admin, in the admin database `postgres` only: never inside a project's database,
# whose owner's settings and objects would apply to the admin's session.
admin_sql() { pg_as "$ADMIN_ROLE" "${PSQL[@]}" --dbname=postgres --command="$1"; }
admin_sql_stdin() { fenced | pg_as --stdin "$ADMIN_ROLE" "${PSQL[@]}" --dbname=postgres; }

# Stdin, after a `\restrict <random key>` line: from there on psql (17.6+) runs no
# meta-command, so no text in a session the scripts write, whoever's names are in it, can run
# one (`\!` would be a shell on the server's container, where local logins are trusted). Dumps
# carry their own fence from pg_dump (restricted_dump).
fenced() {
  printf '\\restrict %s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  cat
}

# A SQL literal / identifier, quoted the way PostgreSQL quotes them.
sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }

server_version() { admin_sql 'SHOW server_version'; }

# Databases worth backing up: every one but PostgreSQL's own (`postgres`, `template0`,
# `template1`, by name: an owner may mark its database a template) and scratch databases,
# including those Pulumi retained after their project left projects.py.
all_databases() {
  admin_sql "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')
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

# Drops a database the scripts made. Its owner may have marked it a template (which DROP
# refuses) or taken a lock on it from another database (which WITH (FORCE) does not end):
# both are undone first.
drop_database() {
  local name
  name="$(sql_literal "$1")"
  admin_sql_stdin >/dev/null <<SQL
SELECT pg_terminate_backend(l.pid, 10000) FROM pg_locks l JOIN pg_database d ON d.oid = l.objid
  WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass AND d.datname = $name
    AND l.pid <> pg_backend_pid();
DO \$\$ BEGIN
  IF EXISTS (SELECT FROM pg_database WHERE datname = $name AND datistemplate) THEN
    EXECUTE format('ALTER DATABASE %I IS_TEMPLATE false', $name);
  END IF;
END \$\$;
DROP DATABASE IF EXISTS $(sql_ident "$1") WITH (FORCE);
SQL
}

# A name for a scratch database no one can guess: the prefix, the time and 16 random hex digits.
scratch_name() { printf '%s%s_%s\n' "$SCRATCH_PREFIX" "$(date -u +%s)" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"; }

# Drops scratch databases left by runs killed outright (SIGKILL, a lost container): older than
# any run's steps can keep one (a restore and a count, each within STEP_TIMEOUT).
drop_stale_scratch() {
  local max_age=$((3 * STEP_TIMEOUT)) name born
  while IFS= read -r name; do
    born="${name#"$SCRATCH_PREFIX"}"
    born="${born%%_*}"
    if [[ "$born" =~ ^[0-9]+$ ]] && (($(date -u +%s) - born > max_age)); then
      log "dropping scratch database $name, left by a run that did not finish"
      drop_database "$name" || log "could not drop $name; the next run tries again"
    fi
  done < <(admin_sql "SELECT datname FROM pg_database WHERE left(datname, ${#SCRATCH_PREFIX}) = $(sql_literal "$SCRATCH_PREFIX")")
}

# Restores a plain-format dump from stdin into DATABASE, as ROLE, in one transaction.
#   restore_as ROLE DATABASE < dump.sql
restore_as() {
  pg_as --stdin "$1" "${PSQL[@]}" --single-transaction --dbname="$2" >/dev/null
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Row counts per table of a plain-format dump (gzip), read from its COPY blocks: one data line
# per row (COPY escapes newlines inside values), ended by `\.`. The table is the COPY line's
# quoted name (pg_dump --quote-all-identifiers), spaces and doubled quotes in it included. The
# text is the project's: what its own names or function bodies make of this hurts only the
# check of its own database.
dump_row_counts() {
  gzip -dc "$1" | LC_ALL=C awk '
    !copying && match($0, /^COPY "([^"[:cntrl:]]|"")*"\."([^"[:cntrl:]]|"")*" /) {
      table = substr($0, 6, RLENGTH - 6); rows = 0; copying = 1; next
    }
    copying && /^\\\.$/ { print table "\t" rows; copying = 0; next }
    copying { rows++ }
  '
}

# Whether a plain-format dump (gzip) fences psql's meta-commands with \restrict, as pg_dump
# 17.6+ does: without it, a project's object name could carry a line that psql runs as a command
# (CVE-2025-8715), on the server's container, where local logins are trusted.
restricted_dump() {
  if ! (set +o pipefail; gzip -dc "$1" 2>/dev/null | head -n 40 | grep -q '^\\restrict '); then
    log "$1 has no \\restrict line (pg_dump older than 17.6): not fed to psql"
    return 1
  fi
}

# Whether the server container's pg_dump fences its output (\restrict): 18+, or 17.6, 16.10,
# 15.14, 14.19, 13.22 and later. For a dump streamed to psql, which cannot be read first.
pg_dump_fences() {
  local version major minor
  version="$(pg_as "$ADMIN_ROLE" pg_dump --version)" || return 1
  [[ "$version" =~ ([0-9]+)\.([0-9]+) ]] || return 1
  major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
  case "$major" in
    13) ((minor >= 22)) ;; 14) ((minor >= 19)) ;; 15) ((minor >= 14)) ;;
    16) ((minor >= 10)) ;; 17) ((minor >= 6)) ;; *) ((major >= 18)) ;;
  esac
}

# Row counts per table of a live database, for the tables a counts file lists, counted by ROLE
# (the database's owner: a table may be a view by now, or carry row-level security), in one
# session, so the time limit bounds them all. The names are the quoted identifiers the dump
# gave (dump_row_counts): a project's name cannot leave its quotes.
#   database_row_counts ROLE DATABASE COUNTS_FILE
database_row_counts() {
  local role="$1" database="$2" counts="$3" counted table
  local quoted='^"([^"[:cntrl:]]|"")*"\."([^"[:cntrl:]]|"")*"$'
  while IFS=$'\t' read -r table _; do
    if [[ ! "$table" =~ $quoted ]]; then
      log "$database: not a table name the dump gave: $table"
      return 1
    fi
  done <"$counts"
  counted="$(awk -F'\t' '{ print "SELECT pg_catalog.count(*) FROM " $1 ";" }' "$counts" | fenced |
    pg_as --stdin "$role" "${PSQL[@]}" --dbname="$database")" || return 1
  paste <(cut -f1 "$counts") <(printf '%s\n' "$counted") | sed '/^\t$/d'
}

# The newest complete backup directory's name, or nothing.
latest_backup() {
  if [[ -L "$BACKUP_DIR/latest" ]]; then
    readlink "$BACKUP_DIR/latest"
  fi
}

# The newest complete backup that holds DATABASE (a backup may have left it out: FAILED), or
# nothing.
newest_backup_of() {
  local name
  while IFS= read -r name; do
    if [[ -f "$BACKUP_DIR/$name/COMPLETE" ]] &&
      awk -F'\t' -v kind="database:$1" '$1 == kind { found = 1 } END { exit !found }' "$BACKUP_DIR/$name/manifest.tsv"; then
      printf '%s\n' "$name"
      return 0
    fi
  done < <(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9]{8}T[0-9]{6}Z' -printf '%f\n' 2>/dev/null | sort -r)
}

# Resolves a backup argument (a name under BACKUP_DIR, a path, or empty for latest; with a
# DATABASE, empty is the newest backup that holds it) to a directory that holds a complete
# backup; dies otherwise.
#   resolve_backup [BACKUP] [DATABASE]
resolve_backup() {
  local wanted="${1:-}" database="${2:-}" dir
  if [[ -z "$wanted" && -n "$database" ]]; then
    wanted="$(newest_backup_of "$database")"
    [[ -n "$wanted" ]] || die "no complete backup of $database in $BACKUP_DIR"
  elif [[ -z "$wanted" ]]; then
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
