#!/usr/bin/env bash
# The linters `make lint` runs besides ruff and mypy: shellcheck (Debian's package) for the shell
# scripts, actionlint (from the Go module proxy, cached by version) for the GitHub workflow.
#
# Usage: eval "$(bash .ci/lib/lint-tools.sh)"
#
# STDOUT carries only `export NAME=value` lines; progress goes to STDERR.
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12
cache_dir="${DB_SERVER_CACHE_DIR:-$HOME/.cache/db-server}"
bin="$cache_dir/actionlint/$ACTIONLINT_VERSION/bin"

LOG_TAG=lint-tools
# shellcheck source=.ci/lib/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"

if ! command -v shellcheck >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  step "apt-get install shellcheck" apt-get install -y -qq --no-install-recommends shellcheck >&2 ||
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends shellcheck >&2; }
fi
log "$(shellcheck --version | sed -n 's/^version: /shellcheck /p')"

if [[ ! -x $bin/actionlint ]]; then
  command -v go >/dev/null 2>&1 || die "actionlint is built with Go: no go command on PATH"
  mkdir -p "$bin"
  step "go install actionlint $ACTIONLINT_VERSION" \
    env GOBIN="$bin" go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
fi
log "actionlint $("$bin/actionlint" -version | head -n 1)"
# shellcheck disable=SC2016 # ${PATH} is for the eval that reads this line
printf 'export PATH=%q:"${PATH}"\n' "$bin"
