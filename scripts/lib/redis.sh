# shellcheck shell=bash
# Redis as the backup scripts reach it: one admin command at a time, and a snapshot by BGSAVE.
# Source it after common.sh. From the Docker host, commands run through `docker exec` into the
# Redis container with its own redis-cli; inside the backup containers (DB_SERVER_BACKUP_DIRECT=1)
# over the network, and the snapshot is read from Redis's data volume, mounted read-only.
# BGSAVE runs nothing of a project's: the server writes its own snapshot.

REDIS_CONTAINER="${DB_SERVER_REDIS_CONTAINER:-db-server-redis}"
REDIS_DATA="${DB_SERVER_REDIS_DATA:-/redis-data}"
REDIS_USER="${DB_SERVER_REDIS_USER:-$ADMIN_ROLE}"
REDIS_ADMIN_PASSWORD_FILE=/run/secrets/redis_admin_password

redis_cli() {
  # The password stays inside the container: read from its secret file into REDISCLI_AUTH there.
  # shellcheck disable=SC2016 # expanded by the container's shell
  docker exec -i "$REDIS_CONTAINER" sh -c \
    'REDISCLI_AUTH="$(cat '"$REDIS_ADMIN_PASSWORD_FILE"')" exec redis-cli --user "$0" "$@"' \
    "$REDIS_USER" "$@"
}

# One Redis command over the network with bash's /dev/tcp, for the backup container, which has
# no redis-cli. The password comes from DB_SERVER_REDIS_PASSWORD_FILE and is sent, never shown.
# Prints a status or integer reply's value, or a bulk reply's text.
redis_direct() {
  local reply password length body=""
  password="$(<"${DB_SERVER_REDIS_PASSWORD_FILE:?DB_SERVER_REDIS_PASSWORD_FILE is not set}")"
  exec 3<>"/dev/tcp/${DB_SERVER_REDIS_HOST:-$REDIS_CONTAINER}/${DB_SERVER_REDIS_PORT:-6379}"
  printf 'AUTH %s %s\r\n%s\r\n' "$REDIS_USER" "$password" "$*" >&3
  if ! read -r -t 10 reply <&3 || [[ "$reply" != "+OK"* ]]; then
    exec 3>&-
    die "Redis refused AUTH"
  fi
  read -r -t 10 reply <&3 || { exec 3>&-; die "no reply from Redis to $1"; }
  reply="${reply%$'\r'}"
  case "$reply" in
    '$'*) length="${reply#\$}"; read -r -t 10 -N "$length" body <&3 ;;
    [+:]*) body="${reply:1}" ;;
    *) exec 3>&-; die "Redis answered $1 with: $reply" ;;
  esac
  exec 3>&-
  printf '%s\n' "$body"
}

redis_command() {
  if [[ "$DIRECT" == 1 ]]; then redis_direct "$@"; else redis_cli "$@"; fi
}

# One field of INFO persistence, e.g. rdb_saves.
redis_persistence() { redis_command INFO persistence | tr -d '\r' | sed -n "s/^$1://p"; }

# BGSAVE, wait for it to finish (bounded), and copy the snapshot out, gzip-compressed.
redis_snapshot() {
  local target="$1" before i
  before="$(redis_persistence rdb_saves)"
  [[ -n "$before" ]] || die "Redis did not report rdb_saves (INFO persistence)"
  # A save already running makes BGSAVE fail; then the wait below is for a later one.
  redis_command BGSAVE >/dev/null || true
  for ((i = 0; i < 600; i++)); do
    if [[ "$(redis_persistence rdb_bgsave_in_progress)" == 0 && "$(redis_persistence rdb_saves)" -gt "$before" ]]; then
      break
    fi
    sleep 0.5
  done
  ((i < 600)) || die "Redis BGSAVE did not finish within 300 s"
  [[ "$(redis_persistence rdb_last_bgsave_status)" == ok ]] || die "Redis BGSAVE failed"
  if [[ "$DIRECT" == 1 ]]; then
    gzip -c "$REDIS_DATA/dump.rdb" >"$target"
  else
    docker exec "$REDIS_CONTAINER" cat /data/dump.rdb | gzip -c >"$target"
  fi
}

