#!/usr/bin/env bash
# Point-in-time recovery of the whole cluster (README, "Point-in-time recovery"):
#
#   scripts/pitr.sh STACK TARGET [--yes]         make pitr STACK=prod TARGET='2026-12-01 15:04:05+00' [YES=1]
#   scripts/pitr.sh STACK --switch VOLUME        make pitr-switch STACK=prod VOLUME=...
#   scripts/pitr.sh STACK TARGET --project NAME  make pitr-project STACK=prod PROJECT=shop TARGET=...
#
# TARGET: a time ('2026-12-01 15:04:05+00'), `latest` (the end of the archived WAL), or
# `name:POINT` (a restore point made with pg_create_restore_point).
#
# 1. The archive's newest backup before TARGET, and the WAL up to it, restored by pgBackRest into
#    a NEW volume (<data volume>_pitr_<time>), from the object store where there is one. The live
#    server keeps running, untouched. A repository of another cluster, a target before the oldest
#    backup, a repository that cannot be read: refused with the reason, the new volume removed.
# 2. A scratch server on the new volume (its own container, no port, archiving off) replays the
#    WAL to TARGET, promotes, and is checked: every database takes its owner's login (as the
#    owner: scripts/lib/common.sh), with its table count, and the time it reached is printed.
# 3. Only with --yes (or --switch later): the stack's PostgreSQL moves to the new volume. The old
#    volume is kept (Docker keeps it, the stack forgets it) until you drop it with docker volume rm;
#    db-server:postgres.volume in Pulumi.<stack>.yaml now names the new one: commit it. The
#    backups' and the archive's volumes stay where they are (their names are pinned in the stack's
#    config), and a full backup of the new timeline starts at once.
#
# --project NAME: steps 1 and 2, then only that project's database is copied back from the scratch
# server as its owner (scripts/restore-database.sh, its previous contents kept aside); nothing
# else changes, the new volume is removed.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"

usage() {
  die "usage: $0 STACK TARGET [--yes | --project NAME]  or  $0 STACK --switch VOLUME"
}

# A field of the stack's summary output (python3 reads the JSON; it is a prerequisite).
#   fact PATH...   e.g. fact archive container
fact() {
  python3 -c 'import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1:]:
    value = (value or {}).get(key)
print("" if value is None else value)' "$@" <<<"$summary"
}

config_tar() { docker cp "$archive:/etc/db-server" -; }

# A container of the server's image on the new volume, with the archive's configuration.
#   shot NAME ARGS... (docker create arguments after the image's settings)
shot() {
  local name="$1"
  shift
  docker rm -fv "$name" >/dev/null 2>&1 || true
  # --init: pgBackRest's asynchronous archive-get leaves processes for PID 1 to reap.
  docker create --init --name "$name" --network "$network" --env PGDATA="$data_path" \
    --env PGBACKREST_CONFIG=/etc/db-server/pgbackrest.conf --env PGBACKREST_STANZA=db \
    --volume "$volume:$data_path" ${repository:+--volume "$repository:/var/lib/pgbackrest:ro"} \
    "$@" >/dev/null
  config_tar | docker cp - "$name:/etc/"
}

# ROLE DATABASE SQL on the scratch server, with the scripts' session settings (a role's or a
# database's own settings cannot break the login) and a minute at most.
scratch_sql() {
  docker exec --user postgres --env PGOPTIONS="$SESSION_OPTIONS -c statement_timeout=60s" \
    "$scratch" timeout --kill-after=5 60 psql -X -v ON_ERROR_STOP=1 --no-align --tuples-only \
    --quiet -U "$1" -d "$2" -c "$3" 2> >(sanitize >&2)
}

# TARGET as pgBackRest takes it: a time with its offset, latest, or a restore point's plain name
# (pgBackRest writes it into postgresql.auto.conf as it is).
TIME_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([+-][0-9]{2}(:?[0-9]{2})?|Z)$'
POINT_RE='^name:[A-Za-z0-9_.-]{1,63}$'
check_target() {
  [[ "$1" == latest || "$1" =~ $TIME_RE || "$1" =~ $POINT_RE ]] ||
    die "TARGET '$1' is not a time with its offset ('2026-12-01 15:04:05+00'), latest, or name:POINT (letters, digits, _ . -)"
}

restore_into_new_volume() {
  local target="$1" args=() out
  case "$target" in
    latest) args=(--type=default) ;;
    name:*) args=(--type=name "--target=${target#name:}" --target-action=promote) ;;
    *)
      date -d "$target" >/dev/null 2>&1 || die "TARGET '$target' is not a time"
      args=(--type=time "--target=$target" --target-action=promote)
      ;;
  esac
  local live_system backup_system backup_size free
  live_system="$(docker exec --user postgres "$pg" pg_controldata -D "$data_path" |
    sed -n 's/^Database system identifier:[[:space:]]*//p')"
  read -r backup_system backup_size < <(docker exec --user postgres "$archive" pgbackrest info --output=json --repo="$repo" |
    python3 -c 'import json, sys
info = json.load(sys.stdin)[0]
db, backups = info.get("db") or [{}], info.get("backup") or [{}]
print(db[-1].get("system-id", "-"), backups[-1].get("info", {}).get("size", 0))')
  [[ "$backup_system" != - ]] || backup_system=""
  [[ -n "$backup_system" ]] || die "repo$repo holds no backup of this stack: nothing to recover"
  [[ "$backup_system" == "$live_system" ]] ||
    die "repo$repo holds another cluster's backups (system id $backup_system, this server's is $live_system): not recovering from it"

  # Nothing of the archive's container runs while its repository is read (an expire of the
  # backup being restored, a backup of the volume being switched): stopped until the end.
  docker stop --time 60 "$archive" >/dev/null
  volume="${data_volume}_pitr_$(date -u +%Y%m%dT%H%M%SZ)"
  docker volume create "$volume" >/dev/null
  # A restored copy that filled the disk the live data is on would stop every project.
  free="$(docker run --rm --network none --volume "$volume:/target" --entrypoint df "$image" \
    --output=avail -B1 /target | tail -n 1)"
  ((backup_size + backup_size / 10 + (1 << 30) <= free)) ||
    die "the restored cluster needs $((backup_size >> 20)) MiB and a tenth and 1 GiB to spare; the volumes' disk has $((free >> 20)) MiB free: nothing restored"
  log "restoring from repo$repo to $target into the new volume $volume (the live server is untouched)"
  shot "$restore" --user root --entrypoint bash "$image" -c \
    "chown postgres:postgres '$data_path' && chmod 700 '$data_path' && exec setpriv --reuid=postgres --regid=postgres --init-groups pgbackrest --repo=$repo ${args[*]@Q} restore"
  if ! out="$(docker start --attach "$restore" 2>&1)"; then
    docker rm -fv "$restore" >/dev/null
    printf '%s\n' "$out" | grep -E 'ERROR|HINT' | sanitize >&2 || true
    [[ "$out" == *"unable to find backup set"* ]] &&
      die "$target is before the oldest backup in repo$repo: nothing restored, the live server is untouched"
    die "the restore failed: nothing restored, the live server is untouched"
  fi
  docker rm -fv "$restore" >/dev/null
}

check_scratch() {
  local deadline recovered databases database owner tables
  log "starting a scratch server on $volume to replay the WAL and check it"
  # No connection before the target is reached (hot_standby off), none but the socket's. The
  # WAL it writes is kept, not archived (an empty archive_command): the new timeline's history
  # and first segments are archived by the stack's server once it runs on this volume.
  shot "$scratch" "$image" postgres -c archive_mode=on -c archive_command= -c listen_addresses='' \
    -c hot_standby=off
  docker start "$scratch" >/dev/null
  deadline=$((SECONDS + STEP_TIMEOUT))
  until [[ "$(scratch_sql "$ADMIN_ROLE" postgres 'SELECT pg_is_in_recovery()' 2>/dev/null)" == f ]]; do
    [[ "$(docker inspect --format '{{.State.Running}}' "$scratch")" == true ]] ||
      die "the scratch server stopped: $(docker logs "$scratch" 2>&1 | grep -E 'FATAL|ERROR|DETAIL|HINT' | tail -n 6 | sanitize)"
    ((SECONDS < deadline)) || die "recovery did not end within $STEP_TIMEOUT s"
    sleep 1
  done
  recovered="$(docker logs "$scratch" 2>&1 | sed -n 's/.*last completed transaction was at log time \(.*\)$/\1/p' | tail -n 1)"
  log "recovered up to ${recovered:-the end of the backup} (its last transaction)"
  databases="$(scratch_sql "$ADMIN_ROLE" postgres "SELECT d.datname || '|' || r.rolname FROM pg_database d
    JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname NOT IN ('template0', 'template1') AND r.rolcanlogin
    AND NOT r.rolsuper ORDER BY 1")"
  # Each database with its owner's login; with --project, that one only. A database that does
  # not take it (its own connection limit, a setting of its own) is reported, and stops the
  # recovery of no other.
  while IFS='|' read -r database owner; do
    [[ -n "$database" && (-z "$1" || "$database" == "$1") ]] || continue
    if tables="$(scratch_sql "$owner" "$database" "SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')")"; then
      log "  $database: $owner logs in, $tables table(s)"
    elif [[ -n "$1" ]]; then
      die "$database does not take its owner $owner's login on the recovered cluster"
    else
      log "  $database: does NOT take its owner $owner's login on the recovered cluster (its own settings?)"
    fi
  done <<<"$databases"
}

stop_scratch() { docker rm -fv "$scratch" >/dev/null 2>&1 || true; }

# On any exit: the scratch server gone, the archive's container running again, temporary files
# (a project's dump, the exported state) removed, and a restored volume that was not switched to
# (it holds every project's data) removed unless the run asked to keep it.
finish() {
  stop_scratch
  [[ -z "$work" ]] || rm -rf "$work"
  if [[ -n "$volume" && "$keep_volume" != 1 ]]; then
    docker volume rm "$volume" >/dev/null 2>&1 || true
  fi
  docker start "$archive" >/dev/null 2>&1 || true
}

# Moves the stack's PostgreSQL onto VOLUME (step 3).
switch() {
  local new="$1" state previous
  docker volume inspect "$new" >/dev/null 2>&1 || die "no Docker volume $new"
  [[ "$new" != "$data_volume" ]] || die "$new is the stack's volume already"
  work="$(mktemp -d)" state="$work/state.json"
  docker stop --time 60 "$archive" >/dev/null 2>&1 || true
  log "the stack forgets its data volume $data_volume and keeps it in Docker"
  pulumi stack export --stack "$stack" --file "$state"
  python3 - "$state" "$data_volume" <<'PY'
import json, sys
path, volume = sys.argv[1], sys.argv[2]
state = json.load(open(path))
for resource in state["deployment"].get("resources", []):
    if resource["type"] == "docker:index/volume:Volume" and resource.get("inputs", {}).get("name") == volume:
        resource["protect"] = False
        resource["retainOnDelete"] = True
json.dump(state, open(path, "w"))
PY
  pulumi stack import --stack "$stack" --file "$state" >/dev/null
  rm -rf "$work"
  # The backups' and the archive's volumes are named after the data volume by default: pinned.
  [[ -z "$backup_volume" ]] || pulumi config set --stack "$stack" --path 'db-server:backup.volume' "$backup_volume"
  [[ -z "$repository" ]] || pulumi config set --stack "$stack" --path 'db-server:archive.volume' "$repository"
  pulumi config set --stack "$stack" --path 'db-server:postgres.volume' "$new"
  previous="$(pulumi config get --stack "$stack" --path 'db-server:protection.adopt_existing_volumes' 2>/dev/null || echo false)"
  pulumi config set --stack "$stack" --path 'db-server:protection.adopt_existing_volumes' true
  log "switching the stack's PostgreSQL to $new (pulumi up)"
  if ! pulumi up --stack "$stack" --yes --skip-preview --non-interactive; then
    pulumi config set --stack "$stack" --path 'db-server:protection.adopt_existing_volumes' "$previous"
    die "pulumi up failed: see above; $data_volume is kept, run make repair STACK=$stack"
  fi
  pulumi config set --stack "$stack" --path 'db-server:protection.adopt_existing_volumes' "$previous"
  pulumi up --stack "$stack" --yes --skip-preview --non-interactive >/dev/null
  log "a full backup of the new timeline, into every repository"
  for repo in $(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$archive" | sed -n 's/^ARCHIVE_REPOS=//p'); do
    docker exec --user postgres "$archive" pgbackrest backup --repo="$repo" --type=full >/dev/null ||
      log "the full backup into repo$repo failed: the pgBackRest container tries again"
  done
  log "done: the stack runs on $new; $data_volume is kept until you drop it (docker volume rm $data_volume); commit Pulumi.$stack.yaml"
}

# Copies one project's database back from the scratch server (its previous contents kept aside).
project_back() {
  local name="$1"
  work="$(mktemp -d)"
  DB_SERVER_POSTGRES_CONTAINER="$scratch" DB_SERVER_BACKUP_DIR="$work" \
    "$here/backup-database.sh" --postgres-only "$name" >/dev/null
  DB_SERVER_POSTGRES_CONTAINER="$pg" DB_SERVER_BACKUP_DIR="$work" \
    "$here/restore-database.sh" "$name" --yes
  rm -rf "$work"
}

main() {
  local target="" yes=0 project="" new=""
  work="" volume="" keep_volume=0
  stack="${1:-}"
  [[ -n "$stack" ]] || usage
  shift
  while (($#)); do
    case "$1" in
      --yes) yes=1; shift ;;
      --project) project="${2:-}"; [[ -n "$project" ]] || usage; shift 2 ;;
      --switch) new="${2:-}"; [[ -n "$new" ]] || usage; shift 2 ;;
      -*) usage ;;
      *) [[ -z "$target" ]] || usage; target="$1"; shift ;;
    esac
  done
  summary="$(pulumi stack output summary --json --stack "$stack")"
  archive="$(fact archive container)"
  [[ -n "$archive" ]] || die "stack $stack has no continuous backup (db-server:archive.enabled)"
  pg="$(fact postgres container)" network="$(fact network)"
  data_volume="$(fact archive data_volume)" data_path="$(fact archive data_path)"
  repository="$(fact archive repository_volume)" backup_volume="$(fact archive backup_volume)"
  image="$(docker inspect --format '{{.Config.Image}}' "$pg")"
  repo="$(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$archive" |
    awk -F= '$1 == "ARCHIVE_OFFSITE_REPO" && $2 != "" { o = $2 } $1 == "ARCHIVE_REPOS" { split($2, r, " "); f = r[1] } END { print o ? o : f }')"
  restore="$pg-pitr-restore" scratch="$pg-pitr-check"
  trap finish EXIT
  if [[ -n "$new" ]]; then
    [[ -z "$target" && -z "$project" ]] || usage
    switch "$new"
    return
  fi
  [[ -n "$target" ]] || usage
  check_target "$target"
  restore_into_new_volume "$target"
  check_scratch "$project"
  if [[ -n "$project" ]]; then
    project_back "$project"
    log "$project is back at $target; nothing else changed"
    return
  fi
  stop_scratch
  keep_volume=1
  if ((!yes)); then
    log "checked: the stack still runs on $data_volume. To switch to the recovered cluster: make pitr-switch STACK=$stack VOLUME=$volume (or docker volume rm $volume)"
    return
  fi
  switch "$volume"
}

main "$@"
