#!/usr/bin/env bash
# Prove a backup restores: check every file against the manifest, restore every database dump
# into a scratch database, compare each table's row count with the dump's, drop the scratch
# databases, and mark the backup VERIFIED.
#
# Usage: scripts/verify-backup.sh [backup]     (default: latest; a name under ./backups or a path)
#
# Each dump is restored and counted logged in as its owner, the project's own role, into a
# scratch database that role owns and no other role may connect to (scripts/lib/common.sh):
# whatever the project's dump runs, it runs with the project's rights. A dump that cannot be
# restored that way fails; it is never retried as a superuser.
#
# Each database is checked on its own, within the scripts' time limit: one that fails is listed
# in VERIFY-FAILED with its reason and the others are checked all the same. Exits non-zero if
# any failed; VERIFIED is written only when every dump in the backup restored. The scratch
# database is dropped on every way out the script sees (one left by a killed run is its owner's
# alone, and the next run drops it once it is older than twice the time limit).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

scratch=""
drop_scratch() {
  if [[ -n "$scratch" ]]; then
    drop_database "$scratch" || log "could not drop scratch database $scratch"
    scratch=""
  fi
}

# Restores one database's dump into a scratch copy as its owner and compares its row counts;
# says why on stderr and fails otherwise.
#   verify_database DIR DATABASE FILE
verify_database() {
  local dir="$1" database="$2" file="$3" owner expected actual
  owner="$(backup_owner "$dir" "$database")" || return 1
  # The dump was read from its COPY blocks at backup time; the scratch copy is counted live.
  expected="$(dump_row_counts "$dir/$file")" || return 1
  if [[ "$expected" != "$(cat "$dir/$database.rows.tsv")" ]]; then
    log "$database: row counts in the dump differ from $database.rows.tsv"
    return 1
  fi
  restricted_dump "$dir/$file" || return 1
  scratch="$(scratch_name)"
  create_private_database "$scratch" "$owner" || return 1
  if ! gzip -dc "$dir/$file" | restore_as "$owner" "$scratch"; then
    log "$database: the dump does not restore as its owner $owner"
    return 1
  fi
  actual="$(database_row_counts "$owner" "$scratch" "$dir/$database.rows.tsv")" || return 1
  if [[ "$actual" != "$expected" ]]; then
    log "$database: row counts after restore differ: $(diff <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | tr '\n' ' ')"
    return 1
  fi
  log "  $database: restored as $owner, $(grep -c . <<<"$expected" || true) table(s) with matching row counts"
}

main() {
  local file kind database failed=0
  dir="$(resolve_backup "${1:-}")"
  trap drop_scratch EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  rm -f "$dir/VERIFIED" "$dir/VERIFY-FAILED"
  drop_stale_scratch

  fail() {
    printf '%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" | sanitize >>"$dir/VERIFY-FAILED"
    log "ERROR: $*"
    failed=1
  }

  while IFS=$'\t' read -r kind file _; do
    [[ "$kind" == kind ]] && continue
    (check_file "$dir" "$file") || fail "$file does not match the manifest"
  done <"$dir/manifest.tsv"
  ((failed == 0)) || die "$dir: damaged files, listed in $dir/VERIFY-FAILED"

  while IFS=$'\t' read -r kind file _; do
    [[ "$kind" == database:* ]] || continue
    database="${kind#database:}"
    verify_database "$dir" "$database" "$file" || fail "$database: does not restore (see the log above)"
    drop_scratch
  done <"$dir/manifest.tsv"

  ((failed == 0)) || die "$dir: not verified; what failed is listed in $dir/VERIFY-FAILED"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$dir/VERIFIED"
  log "verified: $dir"
}

main "$@"
