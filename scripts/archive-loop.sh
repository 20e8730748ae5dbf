#!/usr/bin/env bash
# Main process of the pgBackRest container (components/continuous_backup.py). Every 30 s:
# - a base backup into each repository when its newest is older than the backup interval: full
#   when the newest full one is older than the full interval (or there is none), differential
#   otherwise; pgBackRest then expires what the retention lets go, WAL included;
# - `pgbackrest check` every check interval: a WAL switch that must reach every repository;
# - a restore drill every drill interval (scripts/archive-drill.sh);
# - with an object store, Redis's snapshot copied there, encrypted, every backup interval;
# - the metrics (db_server_archive_*) for node_exporter's textfile collector.
# A failed task is logged, shows in the metrics and the healthcheck, and is tried next time.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=scripts/lib/redis.sh
source "$here/lib/redis.sh"
# shellcheck source=scripts/lib/archive.sh
source "$here/lib/archive.sh"

backup_interval="${ARCHIVE_BACKUP_INTERVAL_SECONDS:?}"
full_interval="${ARCHIVE_FULL_INTERVAL_SECONDS:?}"
drill_interval="${ARCHIVE_DRILL_INTERVAL_SECONDS:?}"
check_interval="${ARCHIVE_CHECK_INTERVAL_SECONDS:?}"
redis_keep="${ARCHIVE_REDIS_KEEP:-7}"

backups() {
  local repo info newest full type
  for repo in $ARCHIVE_REPOS; do
    # The repository's own word, kept for the healthcheck and the metrics, which never wait
    # for an object store themselves.
    info="$STATE_DIR/info-repo$repo.json"
    archive_info "$repo" >"$info.tmp" || { log "repo$repo: no answer to info"; continue; }
    mv -f "$info.tmp" "$info"
    newest="$(newest_backup <"$info")"
    printf '%s\n' "$newest" >"$STATE_DIR/newest-repo$repo"
    (($(date +%s) - newest >= backup_interval)) || continue
    # A failed backup is tried again after 10 minutes, not every 30 s.
    (($(date +%s) - $(last_run "backup-repo$repo-failed") >= 600)) || continue
    full="$(newest_backup full <"$info")"
    if ((full == 0 || $(date +%s) - full >= full_interval)); then type="full"; else type="diff"; fi
    log "repo$repo: $type backup"
    # The backup waits for its last WAL segment longer than archive-push does (archive-timeout):
    # a backlog of WAL must not fail every backup.
    if pgbr backup --repo="$repo" --type="$type" --archive-timeout=600; then
      mark_run "backup-repo$repo"
    else
      log "repo$repo: $type backup FAILED"
      mark_run "backup-repo$repo-failed" "$(date -u +%FT%TZ)"
    fi
  done
}

# Redis's snapshot, gzip, into the object store through rclone's crypt (the archive's
# passphrase) when the object store's repository is encrypted; the newest ARCHIVE_REDIS_KEEP kept.
redis_offsite() {
  local stamp work
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  work="$(mktemp -d)"
  if redis_snapshot "$work/dump.rdb.gz" && rclone_offsite copyto "$work/dump.rdb.gz" "$(offsite_redis)/$stamp/dump.rdb.gz"; then
    mark_run redis-offsite
    rclone_offsite lsf --dirs-only "$(offsite_redis)/" | sort -r | tail -n +"$((redis_keep + 1))" |
      while IFS= read -r old; do rclone_offsite purge "$(offsite_redis)/$old" || true; done
  else
    log "Redis snapshot to the object store FAILED"
  fi
  rm -rf "$work"
}

metrics() {
  local archiver repo name
  archiver="$(admin_sql "SELECT archived_count, failed_count,
      coalesce(extract(epoch FROM last_archived_time)::bigint, 0),
      coalesce(extract(epoch FROM last_failed_time)::bigint, 0)
    FROM pg_stat_archiver")" || archiver="|||"
  IFS='|' read -r archived failed archived_at failed_at <<<"$archiver"
  {
    echo "# HELP db_server_archive_up Whether the pgBackRest container could read the server's archiver."
    echo "# TYPE db_server_archive_up gauge"
    echo "db_server_archive_up $([[ -n "$archived" ]] && echo 1 || echo 0)"
    echo "# TYPE db_server_archive_wal_archived_total counter"
    echo "db_server_archive_wal_archived_total ${archived:-0}"
    echo "# TYPE db_server_archive_wal_failed_total counter"
    echo "db_server_archive_wal_failed_total ${failed:-0}"
    echo "# TYPE db_server_archive_wal_last_archived_timestamp_seconds gauge"
    echo "db_server_archive_wal_last_archived_timestamp_seconds ${archived_at:-0}"
    echo "# TYPE db_server_archive_wal_last_failed_timestamp_seconds gauge"
    echo "db_server_archive_wal_last_failed_timestamp_seconds ${failed_at:-0}"
    echo "# TYPE db_server_archive_last_check_success_timestamp_seconds gauge"
    echo "db_server_archive_last_check_success_timestamp_seconds $(last_run check)"
    echo "# TYPE db_server_archive_check_interval_seconds gauge"
    echo "db_server_archive_check_interval_seconds $check_interval"
    echo "# TYPE db_server_archive_backup_interval_seconds gauge"
    echo "db_server_archive_backup_interval_seconds $backup_interval"
    echo "# TYPE db_server_archive_last_backup_timestamp_seconds gauge"
    echo "# TYPE db_server_archive_last_backup_size_bytes gauge"
    for repo in $ARCHIVE_REPOS; do
      # A repository without a backup shows as one made at 0, so ArchiveBackupStale fires.
      jq -r --arg repo "$repo" '
        ((.[0].backup // []) | last // {type: "none", timestamp: {stop: 0}}) |
        "db_server_archive_last_backup_timestamp_seconds{repo=\"\($repo)\",type=\"\(.type)\"} \(.timestamp.stop)",
        "db_server_archive_last_backup_size_bytes{repo=\"\($repo)\"} \(.info.repository.delta // 0)"' \
        "$STATE_DIR/info-repo$repo.json" 2>/dev/null || true
    done
    echo "# TYPE db_server_archive_drill_last_success_timestamp_seconds gauge"
    echo "db_server_archive_drill_last_success_timestamp_seconds $(last_run drill)"
    echo "# TYPE db_server_archive_drill_failing gauge"
    name=0
    [[ "$(last_run drill-failed)" -gt "$(last_run drill)" ]] && name=1
    echo "db_server_archive_drill_failing $name"
    echo "# HELP db_server_archive_drill_databases_unchecked Databases of the last drill that did not take their owner's login."
    echo "# TYPE db_server_archive_drill_databases_unchecked gauge"
    echo "db_server_archive_drill_databases_unchecked $(awk -F'\t' '$1 == "unchecked" && $2 != "" { n = split($2, d, " ") } END { print n + 0 }' "$STATE_DIR/drill-report" 2>/dev/null || echo 0)"
    if [[ -n "${ARCHIVE_REDIS_OFFSITE:-}" ]]; then
      echo "# TYPE db_server_archive_redis_offsite_last_success_timestamp_seconds gauge"
      echo "db_server_archive_redis_offsite_last_success_timestamp_seconds $(last_run redis-offsite)"
    fi
  } | write_metrics db_server_archive
}

# The metrics every 30 s, in a loop of their own: a task waiting on an unreachable object store
# never holds them up (they read the server and this container's state files only).
metrics_loop() {
  while :; do
    metrics || log "metrics FAILED"
    sleep 30
  done
}

main() {
  local stanza=0 metrics_pid
  mkdir -p "$STATE_DIR"
  metrics_loop &
  metrics_pid=$!
  trap 'kill "$metrics_pid" 2>/dev/null; exit 0' TERM INT
  while :; do
    if ((!stanza)); then
      if pgbr stanza-create; then stanza=1; else log "stanza-create FAILED; tried again in 30 s"; fi
    fi
    if ((stanza)); then
      backups
      if (($(date +%s) - $(last_run check) >= check_interval)); then
        if pgbr check --archive-timeout=600; then mark_run check; else log "check FAILED: the archive does not take WAL"; fi
      fi
      if (($(date +%s) - $(last_run drill) >= drill_interval && $(date +%s) - $(last_run drill-failed) >= drill_interval)); then
        if "$here/archive-drill.sh"; then mark_run drill; else mark_run drill-failed; fi
      fi
      if [[ -n "${ARCHIVE_REDIS_OFFSITE:-}" ]] && (($(date +%s) - $(last_run redis-offsite) >= backup_interval)); then
        redis_offsite
      fi
    fi
    # In the background, so a stop signal ends the wait at once.
    sleep 30 &
    wait $!
  done
}

main "$@"
