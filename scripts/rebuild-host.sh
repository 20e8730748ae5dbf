#!/usr/bin/env bash
# Rebuild a stack's servers on a new host from the archive in object storage (README, "Rebuilding
# on a new host"): nothing of the old host is needed but the Pulumi state (keep it off the host:
# an s3:// backend) and its passphrase.
#
#   scripts/rebuild-host.sh STACK [--yes]        make rebuild STACK=prod [YES=1]
#
# It sets db-server:archive.restore to latest and runs the repair (`pulumi up --refresh
# --run-program`): the refresh finds the containers and volumes gone, and the update makes them
# again, the empty data volumes filled from the archive before the servers start (the cluster
# to the last archived WAL, Redis's newest snapshot), the roles, databases and passwords with
# them, then the Redis users made again from the state. restore is unset once it is done.
set -euo pipefail
log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

stack="${1:-}" yes=0
[[ -n "$stack" ]] || die "usage: $0 STACK [--yes]"
[[ "${2:-}" == --yes ]] && yes=1
if ((!yes)); then
  [[ -t 0 ]] || die "not rebuilding $stack without confirmation: run in a terminal or pass --yes"
  read -r -p "Rebuild stack $stack's servers from its archive? Type the stack's name to confirm: " answer
  [[ "$answer" == "$stack" ]] || die "not confirmed; nothing changed"
fi
started=$SECONDS
pulumi config set --stack "$stack" --path 'db-server:archive.restore' latest
if ! pulumi up --stack "$stack" --refresh --run-program --yes --skip-preview --non-interactive; then
  die "the rebuild stopped: see above; db-server:archive.restore stays latest, so running this again continues it"
fi
pulumi config rm --stack "$stack" --path 'db-server:archive.restore'
pulumi up --stack "$stack" --yes --skip-preview --non-interactive >/dev/null
log "rebuilt $stack from its archive in $((SECONDS - started)) s"
