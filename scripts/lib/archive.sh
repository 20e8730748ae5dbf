# shellcheck shell=bash
# pgBackRest as the pgBackRest container (components/continuous_backup.py) and the PITR and
# rebuild scripts run it. Source it after common.sh.
#
# pgBackRest reads its configuration from PGBACKREST_CONFIG (the repositories, their secrets)
# and runs as the postgres user, who owns the data directory. It reads files and calls
# pg_backup_start/stop as the admin through the socket: nothing of a project's runs.

ARCHIVE_REPOS="${ARCHIVE_REPOS:-1}"
ARCHIVE_OFFSITE_REPO="${ARCHIVE_OFFSITE_REPO:-}"
DRILL_ROOT="${DB_SERVER_DRILL_ROOT:-/var/lib/db-server-drill}"

# pgbackrest ARGS..., as postgres, within the step limit; its output is sanitized.
pgbr() {
  if [[ "$(id -u)" == 0 ]]; then
    setpriv --reuid=postgres --regid=postgres --init-groups \
      timeout --kill-after=30 "$STEP_TIMEOUT" pgbackrest "$@" 2> >(sanitize >&2)
  else
    timeout --kill-after=30 "$STEP_TIMEOUT" pgbackrest "$@" 2> >(sanitize >&2)
  fi
}

# The repository the drills and restores read: the object store where there is one (what a
# lost host leaves), else the local one.
restore_repo() { printf '%s\n' "${ARCHIVE_OFFSITE_REPO:-${ARCHIVE_REPOS%% *}}"; }

# pgbackrest info as JSON, for one repository, printable ASCII only: a repository's status
# message can carry the raw bytes of a file that does not decrypt, which no JSON reader takes.
#   archive_info REPO [OPTION...]
archive_info() {
  local repo="$1"
  shift
  pgbr "$@" info --output=json --repo="$repo" | LC_ALL=C tr -cd '\40-\176'
}

# Seconds since the epoch of the newest backup's end in the `info` JSON on stdin, of TYPE (full,
# or any), or 0.
#   newest_backup [full] < info.json
newest_backup() {
  local filter='.'
  [[ -n "${1:-}" ]] && filter='map(select(.type == "full"))'
  jq -r "[.[0].backup // [] | $filter | .[].timestamp.stop] | max // 0"
}

# Whether the newest backup in REPO, restored, fits into DIR's filesystem with a tenth and 1 GiB
# to spare: a drill or a PITR that filled the disk the live data is on would stop every project.
#   fits_on_disk REPO DIR
fits_on_disk() {
  local size free
  size="$(archive_info "$1" | jq -r '[.[0].backup // [] | .[].info.size] | last // 0')"
  free="$(($(df --output=avail -B1 "$2" | tail -n 1)))"
  if ((size + size / 10 + (1 << 30) > free)); then
    log "the newest backup in repo$1 needs $((size >> 20)) MiB restored, $2 has $((free >> 20)) MiB free (with a tenth and 1 GiB to spare)"
    return 1
  fi
}

# When a recurring task last ran: a file's mtime in STATE_DIR, or 0.
STATE_DIR="${DB_SERVER_ARCHIVE_STATE:-$DRILL_ROOT/state}"
last_run() { stat -c %Y "$STATE_DIR/$1" 2>/dev/null || echo 0; }
mark_run() {
  mkdir -p "$STATE_DIR"
  printf '%s\n' "${2:-ok}" >"$STATE_DIR/$1"
}

# A value from pgBackRest's configuration (the first `KEY=` line).
conf_value() {
  awk -v key="$1" 'index($0, key "=") == 1 { print substr($0, length(key) + 2); exit }' \
    "${PGBACKREST_CONFIG:?}"
}

# Where Redis's snapshots go in the object store: beside the archive, under redis/.
offsite_redis() { printf 'offsite:redis\n'; }

# rclone ARGS..., on the object store's repository (its endpoint, keys and path taken from
# pgBackRest's configuration), through rclone's crypt with the same passphrase when the
# repository is encrypted. The configuration is a private temporary file, never an argument.
rclone_offsite() {
  local repo="${ARCHIVE_OFFSITE_REPO:?no object store is configured}" dir status=0 port ca pass
  dir="$(mktemp -d)"
  v() { conf_value "repo$repo-$1"; }
  port="$(v storage-port)" ca="$(v storage-ca-file)" pass="$(v cipher-pass)"
  {
    printf '[store]\ntype = s3\nprovider = Other\n'
    printf 'access_key_id = %s\nsecret_access_key = %s\n' "$(v s3-key)" "$(v s3-key-secret)"
    printf 'endpoint = https://%s%s\nregion = %s\n' "$(v s3-endpoint)" "${port:+:$port}" "$(v s3-region)"
    printf 'force_path_style = %s\n' "$([[ "$(v s3-uri-style)" == path ]] && echo true || echo false)"
    if [[ -n "$pass" ]]; then
      printf '[offsite]\ntype = crypt\nremote = store:%s%s\n' "$(v s3-bucket)" "$(v path)"
      printf 'password = %s\nfilename_encryption = off\ndirectory_name_encryption = false\n' \
        "$(printf '%s' "$pass" | rclone obscure -)"
    else
      printf '[offsite]\ntype = alias\nremote = store:%s%s\n' "$(v s3-bucket)" "$(v path)"
    fi
  } >"$dir/rclone.conf"
  local tls=()
  [[ -n "$ca" ]] && tls+=(--ca-cert "$ca")
  [[ "$(v storage-verify-tls)" == n ]] && tls+=(--no-check-certificate)
  timeout --kill-after=30 "$STEP_TIMEOUT" rclone --config "$dir/rclone.conf" "${tls[@]}" \
    --retries 3 --low-level-retries 3 "$@" 2> >(sanitize >&2) || status=$?
  rm -rf "$dir"
  return "$status"
}
