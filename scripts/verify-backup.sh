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
# restored that way fails the verification; it is never retried as a superuser.
#
# Exits non-zero on any mismatch, damaged file or failed restore; a backup that fails is marked
# VERIFY-FAILED and never VERIFIED. The scratch database is dropped on every way out.
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

fail() {
  printf '%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >"$dir/VERIFY-FAILED"
  die "$*"
}

main() {
  local file kind database expected actual owner
  dir="$(resolve_backup "${1:-}")"
  trap drop_scratch EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  rm -f "$dir/VERIFIED" "$dir/VERIFY-FAILED"
  drop_stale_scratch

  while IFS=$'\t' read -r kind file _; do
    [[ "$kind" == kind ]] && continue
    (check_file "$dir" "$file") || fail "$file does not match the manifest"
  done <"$dir/manifest.tsv"

  while IFS=$'\t' read -r kind file _; do
    [[ "$kind" == database:* ]] || continue
    database="${kind#database:}"
    owner="$(backup_owner "$dir" "$database")" || fail "$database: no role to restore it as"
    # The dump was read from its COPY blocks at backup time; the scratch copy is counted live.
    expected="$(dump_row_counts "$dir/$file")"
    [[ "$expected" == "$(cat "$dir/$database.rows.tsv")" ]] || fail "$database: row counts in the dump differ from $database.rows.tsv"
    scratch="$(scratch_name)"
    create_private_database "$scratch" "$owner"
    gzip -dc "$dir/$file" | restore_as "$owner" "$scratch" ||
      fail "$database: the dump does not restore as its owner $owner"
    actual="$(database_row_counts "$owner" "$scratch" "$dir/$database.rows.tsv")"
    [[ "$actual" == "$expected" ]] || fail "$database: row counts after restore differ: $(diff <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | tr '\n' ' ')"
    log "  $database: restored as $owner, $(grep -c . <<<"$expected" || true) table(s) with matching row counts"
    drop_scratch
  done <"$dir/manifest.tsv"

  date -u +%Y-%m-%dT%H:%M:%SZ >"$dir/VERIFIED"
  log "verified: $dir"
}

main "$@"
