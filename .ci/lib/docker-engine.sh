#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
#
# Usage: eval "$(bash .ci/lib/docker-engine.sh)"
#
# If `docker info` already answers, nothing happens. Otherwise Debian's docker.io is installed
# (it brings dockerd, containerd, runc and iptables) and dockerd is started in the background,
# logging to "$DB_SERVER_CACHE_DIR/dockerd.log". The daemon stays running after this script
# exits so later steps (image builds, tests) and later runs can reuse it.
#
# STDOUT carries only `export NAME=value` lines; progress goes to STDERR.
set -euo pipefail

cache_dir="${DB_SERVER_CACHE_DIR:-$HOME/.cache/db-server}"
daemon_log="$cache_dir/dockerd.log"
wait_seconds="${DB_SERVER_DOCKERD_WAIT_SECONDS:-60}"
daemon_pid=""

LOG_TAG=docker-engine
# shellcheck source=.ci/lib/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"

engine_answers() {
  command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

install_engine() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends docker.io iptables >&2
}

start_daemon() {
  mkdir -p "$cache_dir"
  # A dockerd that is still starting (or a stale pid file) must not make us start a second one.
  if [[ -s /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    daemon_pid=$(cat /var/run/docker.pid)
    log "dockerd already running as pid $daemon_pid; waiting for it"
    return
  fi
  printf '\n==== dockerd started by %s at %s ====\n' "$0" "$(date -Is)" >>"$daemon_log"
  # setsid + nohup: the daemon must outlive this script and the shell that ran it.
  setsid nohup dockerd >>"$daemon_log" 2>&1 </dev/null &
  daemon_pid=$!
  log "dockerd started as pid $daemon_pid, log: $daemon_log"
}

wait_for_daemon() {
  local deadline=$((SECONDS + wait_seconds))
  while ((SECONDS < deadline)); do
    if timeout 5 docker info >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
      log "ERROR: dockerd (pid $daemon_pid) exited. Last lines of $daemon_log:"
      tail -n 40 "$daemon_log" >&2 || true
      exit 1
    fi
    sleep 1
  done
  log "ERROR: dockerd did not answer \`docker info\` within ${wait_seconds} s. Last lines of $daemon_log:"
  tail -n 40 "$daemon_log" >&2 || true
  exit 1
}

# The client that comes first on PATH may be newer than Debian's daemon; the CLI negotiates the
# API version down by itself, and this proves that it does.
check_client() {
  local versions
  versions=$(docker version --format '{{.Client.Version}} (API {{.Client.APIVersion}}) -> daemon {{.Server.Version}} (API {{.Server.APIVersion}})') ||
    die "the docker client at $(command -v docker) cannot talk to the daemon"
  log "client $(command -v docker) $versions"
}

if engine_answers; then
  log "docker info answers; nothing to do"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  step "install docker.io" install_engine
fi
command -v docker >/dev/null 2>&1 || die "no docker client on PATH after installing docker.io"
step "start dockerd" start_daemon
step "wait for dockerd" wait_for_daemon
check_client
