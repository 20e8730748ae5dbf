#!/usr/bin/env bash
# Before `up` makes or changes the PostgreSQL container, in a one-shot container of its image
# with the new pgBackRest configuration (providers/archive.py): every repository can be read
# (the key, the endpoint, the bucket, the passphrase of what is there already), written (a file
# made and removed), and holds this cluster's backups or none. A repository holding another
# cluster's backups is refused; so is one holding backups while the data volume is empty (a
# lost host: the server would start a new, empty cluster over its own archive) unless the
# settings ask to restore from it (ARCHIVE_RESTORE). Nothing here touches the live server: its
# data volume is mounted read-only.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=scripts/lib/archive.sh
source "$here/lib/archive.sh"

# A repository's status message, on one line, 2000 characters at most.
status_message() {
  jq -r '.[0].repo[0].status.message // "no status"' | tr '\n' ' ' | cut -c1-2000
}

main() {
  local cluster="" repo info code system message
  if [[ -f "$PGDATA/global/pg_control" ]]; then
    cluster="$(setpriv --reuid=postgres --regid=postgres --init-groups pg_controldata -D "$PGDATA" |
      sed -n 's/^Database system identifier:[[:space:]]*//p')"
  fi
  for repo in $ARCHIVE_REPOS; do
    info="$(archive_info "$repo" --io-timeout=20)" ||
      die "repo$repo: unable to connect or read: see the lines above"
    code="$(jq -r '.[0].repo[0].status.code' <<<"$info")"
    message="$(status_message <<<"$info")"
    case "$code" in
      0 | 1 | 2 | 3) ;;  # ok, no stanza yet, no valid backup yet, no stanza data yet
      *) die "repo$repo: ERROR: $message$(
        [[ "$message" == *"unable to load info file"* ]] && echo " (cipher: the files do not decrypt)")" ;;
    esac
    system="$(jq -r '[.[0].db[]?."system-id"] | last // empty' <<<"$info")"
    if [[ -n "$system" && -n "$cluster" && "$system" != "$cluster" ]]; then
      die "repo$repo: ERROR: its backups and archive do not match the database: they are of the cluster with system id $system, this server's is $cluster"
    fi
    if [[ -n "$system" && -z "$cluster" && -z "${ARCHIVE_RESTORE:-}" ]]; then
      die "repo$repo: ERROR: it holds the backups of a cluster (system id $system) and the data volume is empty: not starting a new cluster over its archive"
    fi
    if [[ "$repo" == "$ARCHIVE_OFFSITE_REPO" ]]; then
      if ! rclone_offsite touch offsite:.db-server-write-check ||
        ! rclone_offsite deletefile offsite:.db-server-write-check; then
        die "repo$repo: ERROR: the object store takes no file (unable to write): see the lines above"
      fi
    elif ! touch /var/lib/pgbackrest/.db-server-write-check ||
      ! rm /var/lib/pgbackrest/.db-server-write-check; then
      die "repo$repo: ERROR: the local repository's volume takes no file (unable to write)"
    fi
    log "repo$repo: readable, writable, $([[ -n "$system" ]] && echo "this cluster's backups" || echo empty)"
  done
}

main "$@"
