#!/usr/bin/env bash
# A restore drill: the newest backup and all the WAL after it, from the object store's repository
# where there is one (else the local one), restored into a scratch data directory on the drill
# volume (never the live server's), started as a server of its own (a private socket, no TCP,
# archiving off, so nothing of it reaches the repositories), checked, stopped, checked offline
# for bad page checksums, and removed.
#
# First the live server gets a restore point (db_server_drill_<time>) and switches WAL, and the
# drill recovers to that point: it proves the archive holds every segment up to now, not only
# the backup. It does not start when the restored copy would leave the disk short.
#
# The verdict: recovery reaches the point, the admin logs in, pages pass their checksums. Each
# database is then tried with its owner's login (as the owner, with the scripts' session
# settings and a time limit, like every step inside a project's database: scripts/lib/common.sh);
# one that does not take it (its own connection limit, a setting of its own) is reported, and
# fails no one else's drill. Reported in $DRILL_ROOT/state/drill-report: the status, the point
# and time reached, how long it took, the databases checked and those that were not.
#
# Runs in the pgBackRest container (as root, the server as postgres); exits non-zero on any
# failure of the verdict.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=scripts/lib/archive.sh
source "$here/lib/archive.sh"

data="$DRILL_ROOT/data"
socket="$DRILL_ROOT/socket"
server_log="$DRILL_ROOT/server.log"
report="$STATE_DIR/drill-report"
port=5433

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
# ROLE DATABASE SQL, with the scripts' session settings (a role's or a database's own settings
# cannot break the login) and a minute at most; what the server says is sanitized.
drill_sql() {
  as_postgres env PGOPTIONS="$SESSION_OPTIONS -c statement_timeout=60s" timeout --kill-after=5 60 \
    psql -X -v ON_ERROR_STOP=1 --no-align --tuples-only --quiet --field-separator='|' \
    -h "$socket" -p "$port" -U "$1" -d "$2" -c "$3" </dev/null 2> >(sanitize >&2)
}

cleanup() {
  local status=$?
  if [[ -f "$data/postmaster.pid" ]]; then
    as_postgres pg_ctl -D "$data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data" "$socket"
  if ((status != 0)); then
    printf 'status\tfailed\nfinished\t%s\n' "$(date -u +%FT%TZ)" >"$report"
  fi
}

# A restore point on the live server, its WAL switched and archived: the drill's target.
restore_point() {
  local point segment deadline
  point="db_server_drill_$(date -u +%Y%m%dT%H%M%SZ)"
  admin_sql "SELECT pg_create_restore_point('$point')" >/dev/null ||
    die "drill: the live server does not take the restore point"
  segment="$(admin_sql 'SELECT pg_walfile_name(pg_switch_wal())')"
  deadline=$((SECONDS + 600))
  until [[ "$(admin_sql "SELECT coalesce(last_archived_wal >= '$segment', false) FROM pg_stat_archiver")" == t ]]; do
    ((SECONDS < deadline)) || die "drill: WAL segment $segment was not archived within 600 s"
    sleep 2
  done
  printf '%s\n' "$point"
}

main() {
  local repo started recovered databases database owner deadline point count=0 unchecked=()
  repo="$(restore_repo)"
  started=$(date +%s)
  mkdir -p "$STATE_DIR"
  trap cleanup EXIT
  trap 'exit 143' TERM INT
  cleanup
  install -d -o postgres -g postgres -m 700 "$data" "$socket"
  fits_on_disk "$repo" "$DRILL_ROOT" || die "drill: not enough free space for a restored copy"
  point="$(restore_point)"
  log "drill: restoring repo$repo's newest backup and its WAL to $point into $data"
  pgbr restore --repo="$repo" --pg1-path="$data" --archive-mode=off --type=name \
    --target="$point" --target-action=promote >/dev/null ||
    die "drill: the restore from repo$repo failed"

  as_postgres postgres -D "$data" -c listen_addresses='' -c unix_socket_directories="$socket" \
    -c port="$port" -c hot_standby=off -c archive_mode=off -c shared_buffers=32MB \
    -c max_connections=20 >"$server_log" 2>&1 &
  deadline=$((SECONDS + STEP_TIMEOUT))
  until [[ "$(drill_sql "$ADMIN_ROLE" postgres 'SELECT pg_is_in_recovery()' 2>/dev/null)" == f ]]; do
    kill -0 $! 2>/dev/null || die "drill: the restored server stopped: $(tail -n 5 "$server_log" | sanitize)"
    ((SECONDS < deadline)) || die "drill: recovery did not end within $STEP_TIMEOUT s"
    sleep 1
  done
  recovered="$(sed -n 's/.*last completed transaction was at log time \(.*\)$/\1/p' "$server_log" | tail -n 1)"

  databases="$(drill_sql "$ADMIN_ROLE" postgres "SELECT d.datname, r.rolname, r.rolcanlogin
    FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
    WHERE d.datname NOT IN ('template0', 'template1') ORDER BY 1")"
  while IFS='|' read -r database owner can_login; do
    [[ -n "$database" ]] || continue
    if [[ "$can_login" != t ]]; then
      log "drill: $database: owner $owner may not log in; not checked"
      continue
    fi
    if drill_sql "$owner" "$database" 'SELECT 1' >/dev/null; then
      count=$((count + 1))
    else
      log "drill: $database does not take its owner $owner's login (its own settings?); the other databases are checked all the same"
      unchecked+=("$database")
    fi
  done <<<"$databases"
  grep -q "recovery stopping at restore point \"$point\"" "$server_log" ||
    die "drill: recovery ended before the restore point $point: the archive misses WAL"

  as_postgres pg_ctl -D "$data" -m fast -w -t 120 stop >/dev/null ||
    die "drill: the restored server did not stop cleanly"
  as_postgres pg_checksums --check -D "$data" >/dev/null ||
    die "drill: pg_checksums found damaged pages in the restored data"

  printf 'status\tok\nrepo\t%s\npoint\t%s\nrecovered_to\t%s\ndatabases\t%s\nunchecked\t%s\nseconds\t%s\nfinished\t%s\n' \
    "$repo" "$point" "${recovered:-no transaction after the backup}" "$count" "${unchecked[*]}" \
    "$(($(date +%s) - started))" "$(date -u +%FT%TZ)" >"$report"
  log "drill: ok from repo$repo in $(($(date +%s) - started)) s, to $point: $count database(s) take their owners' logins${unchecked[*]:+, not: ${unchecked[*]}}; pages pass their checksums"
}

main "$@"
