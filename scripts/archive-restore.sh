#!/usr/bin/env bash
# A new host's data volumes, filled from the archive before their servers first start, in a
# one-shot container of the PostgreSQL image (providers/archive.py), where
# db-server:archive.restore asks for it. Into an empty volume only: a volume that holds files is
# left as it is, whatever the settings say.
#
# ARCHIVE_RESTORE_KIND=postgres: the cluster, from the object store's repository (else the
#   local one), to ARCHIVE_RESTORE (latest: the end of the archived WAL; or a time); the server
#   then replays the WAL at its first start and takes logins on a new timeline.
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
