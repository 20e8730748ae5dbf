#!/usr/bin/env bash
# A restore drill: the newest backup and all the WAL after it, from the object store's repository
# where there is one (else the local one), restored into a scratch data directory on the drill
# volume (never the live server's), started as a server of its own (a private socket, no TCP,
# archiving off, so nothing of it reaches the repositories), checked, stopped, checked offline
# for bad page checksums, and removed.
#
# Checked: recovery ends and the server takes logins; every database takes its owner's login
# (as the owner, like every step inside a project's database: scripts/lib/common.sh); pages
# pass their checksums. Reported: the time the restored data reaches (its last transaction),
# how long the restore took, and the databases found.
#
# Runs in the pgBackRest container (as root, the server as postgres); exits non-zero on any
# failure, leaving the report in $DRILL_ROOT/state/drill-report.
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
drill_sql() { # ROLE DATABASE SQL
  as_postgres timeout 60 psql -X -v ON_ERROR_STOP=1 --no-align --tuples-only --quiet \
    --field-separator='|' -h "$socket" -p "$port" -U "$1" -d "$2" -c "$3" </dev/null
}

cleanup() {
  if [[ -f "$data/postmaster.pid" ]]; then
    as_postgres pg_ctl -D "$data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data" "$socket"
}

main() {
  local repo started recovered databases database owner deadline count=0
  repo="$(restore_repo)"
  started=$(date +%s)
  mkdir -p "$STATE_DIR"
  trap cleanup EXIT
  trap 'exit 143' TERM INT
  cleanup
  install -d -o postgres -g postgres -m 700 "$data" "$socket"
  log "drill: restoring repo$repo's newest backup and its WAL into $data"
  pgbr restore --repo="$repo" --pg1-path="$data" --archive-mode=off >/dev/null ||
    die "drill: the restore from repo$repo failed"

  as_postgres postgres -D "$data" -c listen_addresses='' -c unix_socket_directories="$socket" \
    -c port="$port" -c hot_standby=off -c archive_mode=off -c shared_buffers=32MB \
    -c max_connections=20 >"$server_log" 2>&1 &
  deadline=$((SECONDS + STEP_TIMEOUT))
  until [[ "$(drill_sql "$ADMIN_ROLE" postgres 'SELECT pg_is_in_recovery()' 2>/dev/null)" == f ]]; do
    kill -0 $! 2>/dev/null || die "drill: the restored server stopped: $(tail -n 5 "$server_log")"
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
    drill_sql "$owner" "$database" 'SELECT count(*) FROM pg_catalog.pg_class' >/dev/null ||
      die "drill: $database does not take its owner $owner's login"
    count=$((count + 1))
  done <<<"$databases"

  as_postgres pg_ctl -D "$data" -m fast -w -t 120 stop >/dev/null ||
    die "drill: the restored server did not stop cleanly"
  as_postgres pg_checksums --check -D "$data" >/dev/null ||
    die "drill: pg_checksums found damaged pages in the restored data"

  printf 'status\tok\nrepo\t%s\nrecovered_to\t%s\ndatabases\t%s\nseconds\t%s\nfinished\t%s\n' \
    "$repo" "${recovered:-no transaction after the backup}" "$count" "$(($(date +%s) - started))" \
    "$(date -u +%FT%TZ)" >"$report"
  log "drill: ok from repo$repo in $(($(date +%s) - started)) s: $count database(s) take their owners' logins, pages pass their checksums, data up to ${recovered:-the end of the backup}"
}

main "$@"
