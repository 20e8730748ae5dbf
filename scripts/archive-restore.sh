#!/usr/bin/env bash
# A new host's data volumes, filled from the archive before their servers first start, in a
# one-shot container of the PostgreSQL image (providers/archive.py), where
# db-server:archive.restore asks for it. Into an empty volume only: a volume that holds files is
# left as it is, whatever the settings say.
#
# ARCHIVE_RESTORE_KIND=postgres: the cluster, from the object store's repository (else the
#   local one), to ARCHIVE_RESTORE (latest: the end of the archived WAL; or a time). The WAL is
#   replayed here, by a server of this container's own (a private socket, no TCP: no project can
#   reach it half-recovered), which promotes to a new timeline, archives its history, and stops
#   cleanly: the stack's server then starts as a primary, taking logins and writes at once.
# ARCHIVE_RESTORE_KIND=redis: the newest Redis snapshot in the object store, as the base of the
#   append-only file (appendonlydir/, manifest), which Redis loads where it would ignore a bare
#   dump.rdb. Redis's ACL users are not in the snapshot: `make repair` makes them again from the
#   Pulumi state, with their passwords.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=scripts/lib/archive.sh
source "$here/lib/archive.sh"

restore_postgres() {
  local repo args
  repo="$(restore_repo)"
  args=(--repo="$repo")
  if [[ "$ARCHIVE_RESTORE" != latest ]]; then
    args+=(--type=time --target="$ARCHIVE_RESTORE" --target-action=promote)
  fi
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  log "restoring the cluster from repo$repo (${ARCHIVE_RESTORE}) into $PGDATA"
  pgbr restore "${args[@]}"
  recover
}

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

# The restored cluster's WAL replayed to its target and promoted, by a private server that
# archives like the stack's (the new timeline's history must reach the repositories), then a
# clean stop.
recover() {
  local socket server_log deadline state
  socket="$(mktemp -d)" server_log="$(mktemp)"
  chown postgres:postgres "$socket" "$server_log"
  as_postgres postgres -D "$PGDATA" -c listen_addresses='' -c unix_socket_directories="$socket" \
    -c hot_standby=off -c archive_mode=on \
    -c "archive_command=pgbackrest --stanza=${PGBACKREST_STANZA:-db} archive-push %p" \
    >"$server_log" 2>&1 &
  deadline=$((SECONDS + ${ARCHIVE_RECOVERY_TIMEOUT_SECONDS:-86400}))
  until state="$(as_postgres psql -X -qAt -h "$socket" -U "$ADMIN_ROLE" -d postgres \
    -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" && [[ "$state" == f ]]; do
    kill -0 $! 2>/dev/null || die "the restored server stopped during recovery: $(tail -n 5 "$server_log" | sanitize)"
    ((SECONDS < deadline)) || die "recovery did not end within ${ARCHIVE_RECOVERY_TIMEOUT_SECONDS:-86400} s"
    sleep 1
  done
  log "recovered: $(sed -n 's/.*\(last completed transaction was at log time .*\)$/\1/p' "$server_log" | tail -n 1)"
  # A fast stop: a shutdown checkpoint, and the archiver pushes what is ready before it ends.
  as_postgres pg_ctl -D "$PGDATA" -m fast -w -t 600 stop >/dev/null ||
    die "the restored server did not stop cleanly: $(tail -n 5 "$server_log" | sanitize)"
  rm -rf "$socket" "$server_log"
}

restore_redis() {
  local newest work dir="$PGDATA/appendonlydir"
  newest="$(rclone_offsite lsf --dirs-only "$(offsite_redis)/" | sort | tail -n 1)"
  [[ -n "$newest" ]] || die "no Redis snapshot in the object store"
  work="$(mktemp -d)"
  rclone_offsite copyto "$(offsite_redis)/${newest%/}/dump.rdb.gz" "$work/dump.rdb.gz"
  mkdir -p "$dir"
  gzip -dc "$work/dump.rdb.gz" >"$dir/appendonly.aof.1.base.rdb"
  : >"$dir/appendonly.aof.1.incr.aof"
  printf 'file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n' \
    >"$dir/appendonly.aof.manifest"
  rm -rf "$work"
  log "restored Redis's snapshot ${newest%/} into $dir"
}

main() {
  if [[ -n "$(ls -A "$PGDATA" 2>/dev/null)" ]]; then
    log "$PGDATA holds files already: nothing restored over them"
    return 0
  fi
  case "${ARCHIVE_RESTORE_KIND:?}" in
    postgres) restore_postgres ;;
    redis) restore_redis ;;
    *) die "unknown ARCHIVE_RESTORE_KIND $ARCHIVE_RESTORE_KIND" ;;
  esac
}

main "$@"
