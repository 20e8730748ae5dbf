#!/usr/bin/env bash
# Back up the shared server into ./backups/<UTC timestamp>/:
#   <database>.sql.gz        pg_dump of each project database (plain SQL, gzip)
#   <database>.rows.tsv      row count of every table in that dump
#   globals.sql.gz           roles and other cluster-wide objects (pg_dumpall --globals-only)
#   redis.rdb.gz             a Redis snapshot taken by BGSAVE
#   manifest.tsv             kind, file, bytes, sha256, server version of every file, and the
#                            role each database was dumped as (its owner, who restores it)
#   COMPLETE                 written last; only then does the backup become `latest`
#
# Usage: scripts/backup-database.sh [--postgres-only] [database ...]
#   (default: every project database, and Redis; --postgres-only leaves Redis out)
#
# A database that cannot be dumped is listed in FAILED (name and reason) and left out; the
# others are backed up all the same, and the script exits 3. Any other failing step fails the
# whole backup with a non-zero exit: the directory keeps its `.partial` suffix, gets no
# COMPLETE marker and never becomes `latest`. Files are readable by
# their owner only. Each database is dumped logged in as its owner, the project's own role; the
# admin only lists the databases and dumps the globals (scripts/lib/common.sh says why).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# shellcheck source=scripts/lib/redis.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/redis.sh"

# Dumps DATABASE as OWNER into DIR/<database>.sql.gz, with its row counts; fails (without
# stopping the caller) if the dump fails, runs past its time limit, or comes from a pg_dump that
# does not fence psql's meta-commands (\restrict, 17.6+: names could carry shell commands).
#   dump_database DIR DATABASE OWNER
dump_database() {
  local dir="$1" database="$2" owner="$3"
  # As the owner: pg_dump runs nothing of the project's with more rights than the project's.
  # --clean --if-exists: the dump also restores over an existing database's objects.
  pg_as "$owner" pg_dump --clean --if-exists --quote-all-identifiers --lock-wait-timeout="${LOCK_TIMEOUT}s" \
    --dbname="$database" | gzip -c >"$dir/$database.sql.gz" || return 1
  restricted_dump "$dir/$database.sql.gz" || return 1
  dump_row_counts "$dir/$database.sql.gz" >"$dir/$database.rows.tsv" || return 1
}

main() {
  local stamp dir final databases database version owner
  mkdir -p "$BACKUP_DIR"
  chmod 700 "$BACKUP_DIR"
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  dir="$BACKUP_DIR/$stamp.partial"
  final="$BACKUP_DIR/$stamp"
  [[ ! -e "$dir" && ! -e "$final" ]] || die "$final already exists"
  mkdir -m 700 "$dir"

  local redis=1
  if [[ "${1:-}" == --postgres-only ]]; then
    redis=0
    shift
  fi
  version="$(server_version)"
  if (($# > 0)); then
    databases=("$@")
    for database in "${databases[@]}"; do
      database_exists "$database" || die "no database $database on the server"
    done
  else
    mapfile -t databases < <(all_databases)
  fi
  log "backing up ${#databases[@]} database(s)$( ((redis)) && echo " and Redis") into $final"

  printf 'kind\tfile\tbytes\tsha256\tserver_version\towner\n' >"$dir/manifest.tsv"
  add() { # kind file [owner]
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(stat -c %s "$dir/$2")" "$(sha256_of "$dir/$2")" \
      "$version" "${3:-}" >>"$dir/manifest.tsv"
  }

  # Each database on its own: one that cannot be dumped (its owner holds a lock, refused its
  # own login, forced row-level security on itself) is listed in FAILED and the others are
  # backed up all the same.
  for database in "${databases[@]}"; do
    if owner="$(owner_of "$database")" && dump_database "$dir" "$database" "$owner"; then
      add "database:$database" "$database.sql.gz" "$owner"
      add "rows:$database" "$database.rows.tsv" "$owner"
      log "  $database (as $owner): $(stat -c %s "$dir/$database.sql.gz") bytes, $(wc -l <"$dir/$database.rows.tsv") table(s)"
    else
      rm -f "$dir/$database.sql.gz" "$dir/$database.rows.tsv"
      printf '%s\t%s\n' "$database" "could not be dumped as its owner; see the log of $stamp" >>"$dir/FAILED"
      log "  $database: FAILED, not in this backup"
    fi
  done

  # Cluster-wide, read from the catalogs only: the admin's.
  pg_as "$ADMIN_ROLE" pg_dumpall --globals-only | gzip -c >"$dir/globals.sql.gz"
  add globals globals.sql.gz
  if ((redis)); then
    redis_snapshot "$dir/redis.rdb.gz"
    add redis redis.rdb.gz
  fi

  date -u +%Y-%m-%dT%H:%M:%SZ >"$dir/COMPLETE"
  mv "$dir" "$final"
  # Atomic: a reader sees the old latest or the new one, never none.
  ln -sfn "$stamp" "$BACKUP_DIR/.latest.tmp"
  mv -T "$BACKUP_DIR/.latest.tmp" "$BACKUP_DIR/latest"
  printf '%s\n' "$final"
  if [[ -f "$final/FAILED" ]]; then
    log "complete without $(wc -l <"$final/FAILED") database(s), listed in $final/FAILED"
    return 3
  fi
  log "complete: $final"
}

main "$@"
