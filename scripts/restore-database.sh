#!/usr/bin/env bash
# Restore one project's database from a backup.
#
# Usage: scripts/restore-database.sh <database> [backup] [--into NEW_DATABASE] [--owner ROLE] [--yes]
#   backup        a name under ./backups or a path; default: the newest complete backup that
#                 holds the database
#   --into NAME   restore into a new database NAME instead (it must not exist); it belongs to the
#                 project's role and is closed to every other role, like the live one
#   --owner ROLE  the role to restore as and to own the result; default: the role the backup was
#                 dumped as (its manifest), or the live database's owner
#   --yes         do not ask before replacing the project's live database
#
# The dump is restored logged in as the database's owner, never as the admin, into a fresh
# database that the owner owns and no other role may connect to (scripts/lib/common.sh): the
# project's code in the dump runs with the project's rights. Its row counts are checked; only
# then is it swapped in: the live database is renamed to <database>__before_restore_<timestamp>
# and kept, never dropped, and the restored copy takes its name. Any error stops the restore
# before the swap, drops the unfinished copy, and leaves the live database untouched.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { die "usage: $0 <database> [backup] [--into NEW_DATABASE] [--owner ROLE] [--yes]"; }

pending=""    # a database made by this run and not finished: dropped on the way out
reopen=""     # the live database, while it is closed to new sessions for the swap
reopen_limit=""
cleanup() {
  if [[ -n "$pending" ]]; then
    drop_database "$pending" || log "could not drop $pending"
  fi
  if [[ -n "$reopen" ]]; then
    admin_sql "ALTER DATABASE $(sql_ident "$reopen") CONNECTION LIMIT $reopen_limit" >/dev/null ||
      log "could not reopen $reopen: ALTER DATABASE $reopen CONNECTION LIMIT $reopen_limit"
  fi
}

main() {
  local database="" backup="" into="" owner="" yes=0 dir file target stamp kept expected actual answer live_owner
  while (($#)); do
    case "$1" in
      --into) into="${2:-}"; [[ -n "$into" ]] || usage; shift 2 ;;
      --owner) owner="${2:-}"; [[ -n "$owner" ]] || usage; shift 2 ;;
      --yes) yes=1; shift ;;
      -*) usage ;;
      *) if [[ -z "$database" ]]; then database="$1"; elif [[ -z "$backup" ]]; then backup="$1"; else usage; fi; shift ;;
    esac
  done
  [[ -n "$database" ]] || usage
  dir="$(resolve_backup "$backup" "$database")"
  file="$database.sql.gz"
  check_file "$dir" "$file"
  restricted_dump "$dir/$file" || die "$dir/$file: restore it by hand after reading it, or from a newer backup"
  if [[ -n "$owner" ]]; then
    owner="$(login_role "$owner" "--owner")"
  else
    owner="$(backup_owner "$dir" "$database")"
  fi

  if [[ -n "$into" ]]; then
    [[ "$into" != "$SCRATCH_PREFIX"* ]] || die "--into $into: names starting $SCRATCH_PREFIX are the scripts' scratch databases"
    database_exists "$into" && die "database $into already exists: --into makes a new one"
    target="$into"
  else
    database_exists "$database" || die "no database $database on the server to restore over (use --into NAME)"
    live_owner="$(owner_of "$database")"
    [[ "$live_owner" == "$owner" ]] ||
      die "database $database is owned by $live_owner, the backup was made as $owner: pass --owner, or --into a new database"
    if ((!yes)); then
      [[ -t 0 ]] || die "not replacing $database without confirmation: run in a terminal or pass --yes"
      read -r -p "Replace database $database with its copy from $dir? Type the database name to confirm: " answer
      [[ "$answer" == "$database" ]] || die "not confirmed; nothing changed"
    fi
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    target="$(scratch_name)"
    kept="${database:0:30}__before_restore_$stamp"
  fi

  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  log "restoring $database from $dir into $target as its owner $owner"
  create_private_database "$target" "$owner"
  pending="$target"
  gzip -dc "$dir/$file" | restore_as "$owner" "$target" ||
    die "restore of $database as its owner $owner failed; nothing is kept and the live database is untouched"
  expected="$(cat "$dir/$database.rows.tsv")"
  actual="$(database_row_counts "$owner" "$target" "$dir/$database.rows.tsv")"
  [[ "$actual" == "$expected" ]] ||
    die "row counts of the restored copy differ from the backup; nothing is kept and the live database is untouched"

  if [[ -n "$into" ]]; then
    pending=""
    log "restored $database into $into, owned by $owner and closed to every other role"
    return
  fi
  # Closed to new sessions first, so none slips in between ending the sessions and the renames;
  # then one transaction: the project sees its old database or the restored one, never neither.
  reopen_limit="$(admin_sql "SELECT datconnlimit FROM pg_database WHERE datname = $(sql_literal "$database")")"
  admin_sql "ALTER DATABASE $(sql_ident "$database") CONNECTION LIMIT 0" >/dev/null
  reopen="$database"
  admin_sql_stdin >/dev/null <<SQL
BEGIN;
SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = $(sql_literal "$database") AND pid <> pg_backend_pid();
ALTER DATABASE $(sql_ident "$database") RENAME TO $(sql_ident "$kept");
ALTER DATABASE $(sql_ident "$target") RENAME TO $(sql_ident "$database");
ALTER DATABASE $(sql_ident "$database") CONNECTION LIMIT $reopen_limit;
COMMIT;
SQL
  pending="" reopen="$kept"
  log "restored $database; its previous contents are kept as database $kept (drop it once satisfied)"
}

main "$@"
