#!/usr/bin/env bash
# Main process of the scheduled backup container (components/backup_schedule.py): back up,
# verify what was written, apply retention, sleep; forever. A failed run is logged and the next
# one tried at the next interval; a backup that left databases out (exit 3) is verified for the
# rest. The container's healthcheck turns unhealthy when the latest backup is not verified and
# fresh, or left a database out.
# After each run it writes db_server_backup.prom for node_exporter's textfile collector
# (monitoring/README.md): what BackupsStale and BackupFailing read.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"
interval="${BACKUP_INTERVAL_SECONDS:?}"
last_failure=0

# The latest backup's facts, from its marker files: the metrics say what the healthcheck tests.
metrics() {
  local latest="$BACKUP_DIR/latest" verified=0 left_out=0 size=0
  [[ -f "$latest/VERIFIED" ]] && verified="$(stat -c %Y "$latest/VERIFIED")"
  [[ -f "$latest/FAILED" ]] && left_out="$(wc -l <"$latest/FAILED")"
  [[ -d "$latest/" ]] && size="$(du -sb "$latest/" | cut -f1)"
  cat <<METRICS
# HELP db_server_backup_last_success_timestamp_seconds When the latest backup was verified by a restore (0: never).
# TYPE db_server_backup_last_success_timestamp_seconds gauge
db_server_backup_last_success_timestamp_seconds $verified
# HELP db_server_backup_interval_seconds Time between scheduled backups.
# TYPE db_server_backup_interval_seconds gauge
db_server_backup_interval_seconds $interval
# HELP db_server_backup_last_size_bytes Size of the latest backup's files.
# TYPE db_server_backup_last_size_bytes gauge
db_server_backup_last_size_bytes $size
# HELP db_server_backup_databases_left_out Databases the latest backup could not dump.
# TYPE db_server_backup_databases_left_out gauge
db_server_backup_databases_left_out $left_out
# HELP db_server_backup_last_failure_timestamp_seconds When a backup or its verification last failed (0: not since start).
# TYPE db_server_backup_last_failure_timestamp_seconds gauge
db_server_backup_last_failure_timestamp_seconds $last_failure
METRICS
}

trap 'exit 0' TERM INT
while :; do
  started=$SECONDS
  status=0
  backup="$("$here/backup-database.sh")" || status=$?
  if ((status == 0 || status == 3)) && [[ -n "$backup" ]]; then
    ((status == 0)) || echo "[backup-loop] $backup left databases out: see $backup/FAILED" >&2
    if ! "$here/verify-backup.sh" "$backup"; then
      echo "[backup-loop] verification of $backup FAILED" >&2
      last_failure="$(date +%s)"
    fi
  else
    echo "[backup-loop] backup FAILED; next try in ${interval}s" >&2
    last_failure="$(date +%s)"
  fi
  metrics | write_metrics db_server_backup || echo "[backup-loop] metrics FAILED" >&2
  "$here/prune-backups.sh" --daily "${BACKUP_KEEP_DAILY:?}" --weekly "${BACKUP_KEEP_WEEKLY:?}" ||
    echo "[backup-loop] retention FAILED" >&2
  remaining=$((interval - (SECONDS - started)))
  # In the background, so a stop signal ends the wait at once.
  sleep "$((remaining > 0 ? remaining : 0))" &
  wait $!
done
