#!/usr/bin/env bash
# Restore one project's database from a backup.
#
# Usage: scripts/restore-database.sh <database> [backup] [--into NEW_DATABASE] [--yes]
#   backup        a name under ./backups or a path; default: the latest complete backup
#   --into NAME   restore into a new scratch database NAME instead (it must not exist)
#   --yes         do not ask before replacing the project's live database
#
# The dump is first restored into a fresh database and its row counts checked; only then is it
# swapped in: the live database is renamed to <database>__before_restore_<timestamp> and kept,
# never dropped, and the restored copy takes its name, owner and closed PUBLIC access. Any error
# stops the restore before the swap, with the live database untouched.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { die "usage: $0 <database> [backup] [--into NEW_DATABASE] [--yes]"; }

main() {
  local database="" backup="" into="" yes=0 dir file owner target stamp kept expected actual
  while (($#)); do
    case "$1" in
      --into) into="${2:-}"; [[ -n "$into" ]] || usage; shift 2 ;;
      --yes) yes=1; shift ;;
      -*) usage ;;
      *) if [[ -z "$database" ]]; then database="$1"; elif [[ -z "$backup" ]]; then backup="$1"; else usage; fi; shift ;;
    esac
  done
  [[ -n "$database" ]] || usage
  dir="$(resolve_backup "$backup")"
  file="$database.sql.gz"
  check_file "$dir" "$file"

  if [[ -n "$into" ]]; then
    database_exists "$into" && die "database $into already exists: --into makes a new one"
    target="$into"
  else
    database_exists "$database" || die "no database $database on the server to restore over (use --into NAME)"
    if ((!yes)); then
      [[ -t 0 ]] || die "not replacing $database without confirmation: run in a terminal or pass --yes"
      read -r -p "Replace database $database with its copy from $dir? Type the database name to confirm: " answer
      [[ "$answer" == "$database" ]] || die "not confirmed; nothing changed"
    fi
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    target="${database:0:30}__restore_$stamp"
    kept="${database:0:30}__before_restore_$stamp"
  fi

  # The owner comes from the live database, or (for a database that is gone) from the dump.
  owner="$(psql_admin -d postgres -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $(sql_literal "$database")")"
  if [[ -z "$owner" ]]; then
    owner="$(gzip -dc "$dir/$file" | sed -n 's/^ALTER SCHEMA "public" OWNER TO "\(.*\)";$/\1/p' | head -1)"
  fi
  [[ -n "$owner" ]] || owner="$ADMIN_ROLE"

  log "restoring $database from $dir into $target (owner $owner)"
  psql_admin -d postgres -c "CREATE DATABASE $(sql_ident "$target") OWNER $(sql_ident "$owner") TEMPLATE template0" >/dev/null
  psql_admin -d postgres -c "REVOKE ALL ON DATABASE $(sql_ident "$target") FROM PUBLIC" >/dev/null
  if ! gzip -dc "$dir/$file" | psql_admin_stdin --single-transaction -d "$target" >/dev/null; then
    [[ -n "$into" ]] || psql_admin -d postgres -c "DROP DATABASE $(sql_ident "$target")" >/dev/null
    die "restore of $database failed; $([[ -n "$into" ]] && echo "$target is left for inspection" || echo "the live database is untouched")"
  fi
  expected="$(cat "$dir/$database.rows.tsv")"
  actual="$(database_row_counts "$target" "$dir/$database.rows.tsv")"
  [[ "$actual" == "$expected" ]] || die "row counts in $target differ from the backup; the live database is untouched"

  if [[ -z "$into" ]]; then
    # One transaction: the project sees its old database or the restored one, never neither.
    psql_admin_stdin -d postgres >/dev/null <<SQL
BEGIN;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $(sql_literal "$database") AND pid <> pg_backend_pid();
ALTER DATABASE $(sql_ident "$database") RENAME TO $(sql_ident "$kept");
ALTER DATABASE $(sql_ident "$target") RENAME TO $(sql_ident "$database");
COMMIT;
SQL
    log "restored $database; its previous contents are kept as database $kept (drop it once satisfied)"
  else
    log "restored $database into $into"
  fi
}

main "$@"
