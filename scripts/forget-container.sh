#!/usr/bin/env bash
# Make a stack forget one of its server containers before that service moves to an external
# server (README, "Move to an external server"): the container's volume and everything that
# depends on it (the container, its readiness check, and for PostgreSQL the provider with every
# role, database and grant on that server) leave the stack's state. Nothing in Docker changes:
# the container keeps running on its volume, data and all, until you remove both yourself.
# When no server container is left, the network leaves the state too (nginx may still use it).
#
# Usage: scripts/forget-container.sh postgres|redis STACK
set -euo pipefail

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

service="${1:-}" stack="${2:-}"
# The data volume; for PostgreSQL also its socket directory's, which the container mounts too.
case "$service" in
  postgres) volume=db-server-pgdata extra=db-server-pgsocket ;;
  redis) volume=db-server-redisdata extra="" ;;
  *) die "usage: $0 postgres|redis STACK" ;;
esac
[[ -n "$stack" ]] || die "usage: $0 postgres|redis STACK"

urns() { pulumi stack --stack "$stack" --show-urns | tr -s ' \t' '\n' | grep -E "^urn:pulumi:" || true; }

urn="$(urns | grep -E "[:$]docker:index/volume:Volume::$volume\$" | sort -u || true)"
[[ -n "$urn" ]] || die "stack $stack has no $service volume ($volume): nothing to forget"
log "stack $stack forgets its $service container, volume and what depends on them"
pulumi state delete --stack "$stack" --target-dependents --force --yes "$urn"
if [[ -n "$extra" ]]; then
  for other in $(urns | grep -E "[:$]docker:index/volume:Volume::$extra\$" | sort -u); do
    pulumi state delete --stack "$stack" --target-dependents --force --yes "$other"
  done
fi

if ! urns | grep -qE "[:$]docker:index/container:Container::db-server-(postgres|redis)\$"; then
  for network in $(urns | grep -E "[:$](docker:index/network:Network|pulumi-python:dynamic:Resource)::db-server-network(-ready)?\$" | sort -u); do
    pulumi state delete --stack "$stack" --target-dependents --force --yes "$network"
  done
fi
log "done: Docker still runs the container on its volume; set $service.mode to external, then pulumi up"
