#!/usr/bin/env bash
# Main process of the scheduled backup container (components/backup_schedule.py): back up,
# verify what was written, apply retention, sleep; forever. A failed run is logged and the next
# one tried at the next interval; the container's healthcheck turns unhealthy when the latest
# backup is not verified and fresh.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
interval="${BACKUP_INTERVAL_SECONDS:?}"

trap 'exit 0' TERM INT
while :; do
  started=$SECONDS
  if backup="$("$here/backup-database.sh")"; then
    "$here/verify-backup.sh" "$backup" || echo "[backup-loop] verification of $backup FAILED" >&2
  else
    echo "[backup-loop] backup FAILED; next try in ${interval}s" >&2
  fi
  "$here/prune-backups.sh" --daily "${BACKUP_KEEP_DAILY:?}" --weekly "${BACKUP_KEEP_WEEKLY:?}" ||
    echo "[backup-loop] retention FAILED" >&2
  remaining=$((interval - (SECONDS - started)))
  # In the background, so a stop signal ends the wait at once.
  sleep "$((remaining > 0 ? remaining : 0))" &
  wait $!
done
