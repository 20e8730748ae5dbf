# shellcheck shell=bash
# Progress logging for the .ci/lib scripts: everything goes to stderr, because their stdout
# carries only `export` lines. Set LOG_TAG before sourcing.

log() { printf '[%s] %s\n' "${LOG_TAG:?}" "$*" >&2; }

die() {
  log "ERROR: $*"
  exit 1
}

# Runs "$@" as a named step and reports how long it took.
step() {
  local name=$1 start=$SECONDS
  shift
  log "$name ..."
  "$@"
  log "$name done in $((SECONDS - start)) s"
}
