#!/usr/bin/env bash
# Prove a backup restores: check every file against the manifest, restore every database dump
# into a scratch database, compare each table's row count with the dump's, drop the scratch
# databases, and mark the backup VERIFIED.
#
# Usage: scripts/verify-backup.sh [backup]     (default: latest; a name under ./backups or a path)
#
# Exits non-zero on any mismatch, damaged file or failed restore; a backup that fails is marked
# VERIFY-FAILED and never VERIFIED.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

scratch=""
drop_scratch() {
  if [[ -n "$scratch" ]]; then
    psql_admin -d postgres -c "DROP DATABASE IF EXISTS $(sql_ident "$scratch") WITH (FORCE)" >/dev/null || true
  fi
}

fail() {
  printf '%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >"$dir/VERIFY-FAILED"
  die "$*"
}

main() {
  local file kind database expected actual
  dir="$(resolve_backup "${1:-}")"
  trap drop_scratch EXIT
  rm -f "$dir/VERIFIED" "$dir/VERIFY-FAILED"

  while IFS=$'\t' read -r kind file _; do
    [[ "$kind" == kind ]] && continue
    ( check_file "$dir" "$file" ) || fail "$file does not match the manifest"
  done <"$dir/manifest.tsv"

  while IFS=$'\t' read -r kind file _; do
    [[ "$kind" == database:* ]] || continue
    database="${kind#database:}"
    scratch="verify_$(date -u +%s)_$$_${database:0:30}"
    psql_admin -d postgres -c "CREATE DATABASE $(sql_ident "$scratch") TEMPLATE template0" >/dev/null
    # The dump was read from its COPY blocks at backup time; the scratch copy is counted live.
    expected="$(dump_row_counts "$dir/$file")"
    [[ "$expected" == "$(cat "$dir/$database.rows.tsv")" ]] || fail "$database: row counts in the dump differ from $database.rows.tsv"
    gzip -dc "$dir/$file" | psql_admin_stdin --single-transaction -d "$scratch" >/dev/null ||
      fail "$database: the dump does not restore"
    actual="$(database_row_counts "$scratch" "$dir/$database.rows.tsv")"
    [[ "$actual" == "$expected" ]] || fail "$database: row counts after restore differ: $(diff <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | tr '\n' ' ')"
    log "  $database: restored, $(wc -l <<<"$expected") table(s) with matching row counts"
    drop_scratch
    scratch=""
  done <"$dir/manifest.tsv"

  date -u +%Y-%m-%dT%H:%M:%SZ >"$dir/VERIFIED"
  log "verified: $dir"
}

main "$@"
