#!/usr/bin/env bash
# Healthcheck of the pgBackRest container: unhealthy while the archive does not take WAL (the
# server's archiver failed since it last succeeded, or no `pgbackrest check` passed within three
# check intervals), while a repository's newest backup is older than two backup intervals, or
# when the last restore drill failed. Prints what is wrong.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=scripts/lib/archive.sh
source "$here/lib/archive.sh"

now=$(date +%s)
problems=()
archiver="$(admin_sql "SELECT coalesce(extract(epoch FROM last_archived_time)::bigint, 0) || '|' ||
  coalesce(extract(epoch FROM last_failed_time)::bigint, 0) FROM pg_stat_archiver")" ||
  problems+=("the server does not answer")
if [[ -n "$archiver" ]] && ((${archiver#*|} > ${archiver%|*})); then
  problems+=("archiving fails (pg_stat_archiver: last failure after the last success)")
fi
if ((now - $(last_run check) > 3 * ${ARCHIVE_CHECK_INTERVAL_SECONDS:?})); then
  problems+=("no pgbackrest check passed for $((now - $(last_run check))) s")
fi
for repo in $ARCHIVE_REPOS; do
  # The newest backup pgBackRest's info gave the loop (a backup made before this container,
  # after a rebuild or a switch, counts).
  newest="$(cat "$STATE_DIR/newest-repo$repo" 2>/dev/null || echo 0)"
  if ((now - newest > 2 * ${ARCHIVE_BACKUP_INTERVAL_SECONDS:?})); then
    problems+=("repo$repo has no backup of the last two intervals")
  fi
done
if (($(last_run drill-failed) > $(last_run drill))); then
  problems+=("the last restore drill failed")
fi
if ((${#problems[@]})); then
  printf '%s\n' "${problems[@]}"
  exit 1
fi
echo "archive ok"
