#!/usr/bin/env bash
# Runs a command with what Pulumi needs for STACK, so a first run is one command:
#   scripts/stack-env.sh STACK [--create] COMMAND...
#
# - Backend: PULUMI_BACKEND_URL, PULUMI_ACCESS_TOKEN or an existing `pulumi login` win. With none
#   of them, it logs in to a local backend, file://$DB_SERVER_HOME/state (a lasting login, so a
#   plain `pulumi stack output` finds the stack later).
# - Passphrase: PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE win. Otherwise
#   $DB_SERVER_HOME/STACK.passphrase is used where it exists; with --create, a stack that is not
#   there yet on a self-managed backend (Pulumi Cloud keeps its own keys) gets a new random one,
#   in that file (0600). Losing it loses the stack's secrets.
# - Stack: with --create, a stack that is not there is created (`pulumi stack init`).
# DB_SERVER_HOME defaults to ${XDG_DATA_HOME:-~/.local/share}/db-server.
set -euo pipefail

stack=${1:?usage: stack-env.sh STACK [--create] COMMAND...}
shift
if [[ ! $stack =~ ^[A-Za-z0-9_.-]+$ || $stack == .* ]]; then
  echo "db-server: STACK must be a plain stack name (letters, digits, _ . -), got '$stack'" >&2
  exit 2
fi
create=false
if [[ ${1:-} == --create ]]; then
  create=true
  shift
fi
home=${DB_SERVER_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/db-server}

say() { echo "db-server: $*" >&2; }

logged_in() {
  [[ -n ${PULUMI_BACKEND_URL:-} || -n ${PULUMI_ACCESS_TOKEN:-} ]] && return 0
  local credentials=${PULUMI_HOME:-$HOME/.pulumi}/credentials.json
  [[ -f $credentials ]] && python3 -c 'import json, sys
sys.exit(0 if json.load(open(sys.argv[1])).get("current") else 1)' "$credentials"
}

stack_exists() {
  local listing
  # A listing that fails stops here (set -e): it never reads as "no such stack".
  listing=$(pulumi stack ls --json --non-interactive)
  python3 -c 'import json, sys
sys.exit(0 if any(s["name"].split("/")[-1] == sys.argv[1] for s in json.load(sys.stdin)) else 1)' \
    "$stack" <<<"$listing"
}

backend_url() {
  pulumi whoami --verbose --json --non-interactive | python3 -c 'import json, sys
print(json.load(sys.stdin)["url"])'
}

if ! logged_in; then
  mkdir -p "$home/state"
  chmod 700 "$home"
  pulumi login --non-interactive "file://$home/state" >/dev/null
  say "no Pulumi login: logged in to the local backend file://$home/state"
fi

passphrase_file="$home/$stack.passphrase"
if [[ -z ${PULUMI_CONFIG_PASSPHRASE+set} && -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} ]]; then
  if [[ -f $passphrase_file ]]; then
    export PULUMI_CONFIG_PASSPHRASE_FILE=$passphrase_file
  elif $create && ! stack_exists && [[ $(backend_url) != https://* ]]; then
    mkdir -p "$home"
    chmod 700 "$home"
    # noclobber: a second first run at the same moment fails here instead of replacing the
    # passphrase the first one created its stack with.
    (set -C && umask 077 && python3 -c "import secrets; print(secrets.token_urlsafe(32))" >"$passphrase_file")
    export PULUMI_CONFIG_PASSPHRASE_FILE=$passphrase_file
    say "stack $stack: its secrets passphrase is in $passphrase_file (keep a copy: without it the stack's secrets are lost)"
  fi
fi

if $create && ! stack_exists; then
  pulumi stack init --non-interactive "$stack" >/dev/null
  say "stack $stack created"
fi

exec "$@"
