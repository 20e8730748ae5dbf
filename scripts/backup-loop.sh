#!/usr/bin/env bash
# Main process of the scheduled backup container (components/backup_schedule.py): back up,
# verify what was written, apply retention, sleep; forever. A failed run is logged and the next
# one tried at the next interval; a backup that left databases out (exit 3) is verified for the
# rest. The container's healthcheck turns unhealthy when the latest backup is not verified and
# fresh, or left a database out.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
interval="${BACKUP_INTERVAL_SECONDS:?}"

trap 'exit 0' TERM INT
while :; do
  started=$SECONDS
  status=0
  backup="$("$here/backup-database.sh")" || status=$?
  if ((status == 0 || status == 3)) && [[ -n "$backup" ]]; then
    ((status == 0)) || echo "[backup-loop] $backup left databases out: see $backup/FAILED" >&2
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
