#!/usr/bin/env bash
# Build the Pulumi CLI and the Python language host from the Go module proxy into a cache on
# this machine, and print the environment that puts them first on PATH.
#
# Usage (note: `eval "$(...)"` would swallow the exit status, so capture first):
#   env_lines="$(bash .ci/lib/pulumi-toolchain.sh)"                 # CLI + host + provider plugins
#   env_lines="$(bash .ci/lib/pulumi-toolchain.sh --core-only)"     # CLI + host only
#   eval "$env_lines"
#
# Switches (argument or environment):
#   --core-only | PULUMI_TOOLCHAIN_CORE_ONLY=1   skip the provider-plugin step; exit 0 once the CLI,
#                                                the language host and its scripts are complete.
#   DB_SERVER_CACHE_DIR                          cache root (default ~/.cache/db-server).
#   PULUMI_HOME                                  kept if the caller set it; otherwise a directory in
#                                                the cache (see "PULUMI_HOME" below).
#   PULUMI_TOOLCHAIN_GOPROXY                     Go module proxy (default https://proxy.golang.org).
#
# STDOUT carries only `export ...` lines; all progress goes to STDERR.
# See docs/toolchain.md for what is built, from which module versions, and what stays blocked.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Recipe. Changing anything in this file or in .ci/patches/pulumi/ changes the cache key.
# ---------------------------------------------------------------------------------------------
PULUMI_VERSION="v3.259.0"
PKG_MODULE="github.com/pulumi/pulumi/pkg/v3"
SDK_MODULE="github.com/pulumi/pulumi/sdk/v3"
VERSION_VAR="github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"

# The language host of the same release lives in its own module
# (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3), which the proxy refuses
# (HTTP 403). Until sdk/v3.79.0 the host was a package inside the sdk module itself; v3.80.0 no
# longer has it. v3.79.0 is therefore the newest host source the proxy serves. It is built from
# that module as is, plus the patches in .ci/patches/pulumi/ (each explains itself).
LANGHOST_SDK_VERSION="v3.79.0"
LANGHOST_PKG="./python/cmd/pulumi-language-python"

# Provider plugins the stacks need. name|version|provider module|commit of the release tag
PLUGINS=(
  "docker|5.1.0|github.com/pulumi/pulumi-docker/provider/v5|e944612c4c970123d9a16a48c40d37dc84c89a70"
  "postgresql|3.18.0|github.com/pulumi/pulumi-postgresql/provider/v3|b57d264d8aee0707e2c0135720c8e2115a9970d4"
  "random|4.21.1|github.com/pulumi/pulumi-random/provider/v4|f2d8b029d0f708bd14bad9479e016560de9c0b6d"
)
# Modules the provider builds would also need: the docker/postgresql Terraform upstreams and the
# random provider's nested shim module. Probed only, for the report.
PLUGIN_EXTRA_MODULES=(
  "github.com/kreuzwerker/terraform-provider-docker|5074970c71ce6cc393c74942d5d628943834beb9"
  "github.com/cyrilgdn/terraform-provider-postgresql|ff936b9548c1076f498523a2bd116915ff977142"
  "github.com/pulumi/pulumi-random/provider/shim|f2d8b029d0f708bd14bad9479e016560de9c0b6d"
)

# ---------------------------------------------------------------------------------------------
CORE_ONLY="${PULUMI_TOOLCHAIN_CORE_ONLY:-0}"
for arg in "$@"; do
  case "$arg" in
    --core-only) CORE_ONLY=1 ;;
    -h|--help) sed -n '2,19p' "$0" >&2; exit 0 ;;
    *) echo "pulumi-toolchain: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
case "$CORE_ONLY" in 1|true|yes) CORE_ONLY=1 ;; *) CORE_ONLY=0 ;; esac

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "$(dirname "$SCRIPT_PATH")/../.." && pwd)"
PATCH_DIR="$REPO_ROOT/.ci/patches/pulumi"

log() { printf '[pulumi-toolchain] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

STEP_NAME=""
STEP_START=0
step_begin() { STEP_NAME="$1"; STEP_START=$SECONDS; log "step '$STEP_NAME': start"; }
step_end() { log "step '$STEP_NAME': done in $((SECONDS - STEP_START)) s"; }

recipe_hash() {
  {
    cat "$SCRIPT_PATH"
    if [ -d "$PATCH_DIR" ]; then
      find "$PATCH_DIR" -type f | LC_ALL=C sort | while read -r f; do
        printf '%s\n' "${f#"$PATCH_DIR"/}"
        cat "$f"
      done
    fi
  } | sha256sum | cut -c1-12
}

CACHE_ROOT="${DB_SERVER_CACHE_DIR:-$HOME/.cache/db-server}"
KEY_DIR="$CACHE_ROOT/pulumi/${PULUMI_VERSION}-$(recipe_hash)"
BIN_DIR="$KEY_DIR/bin"
STAGE_DIR="$KEY_DIR/bin.partial"
BUILD_DIR="$KEY_DIR/build"
COMPLETE_MARK="$KEY_DIR/.complete"

# PULUMI_HOME: by default a directory in the cache, shared by every recipe version, outside the
# keyed build directory (which stays as built). This keeps the developer's ~/.pulumi (cloud
# logins, other plugin versions, workspace settings) out of tests and builds. A caller that wants
# a different one (e.g. plugins installed with `pulumi plugin install` elsewhere) sets it first.
PULUMI_HOME_DIR="${PULUMI_HOME:-$CACHE_ROOT/pulumi/home}"

export GOPROXY="${PULUMI_TOOLCHAIN_GOPROXY:-https://proxy.golang.org}"
export GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else return 1
  fi
}

# Download MODULE@VERSION through the proxy and print its directory in the module cache.
module_dir() {
  local out
  if ! out="$("$GO" mod download -json "$1@$2" 2>&1)"; then
    die "go mod download $1@$2 failed (GOPROXY=$GOPROXY): $out"
  fi
  printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit("no Dir: " + d.get("Error","")))'
}

# Copy a module out of the read-only module cache into a fresh writable directory.
copy_module() {
  rm -rf "$2"
  mkdir -p "$(dirname "$2")"
  cp -r "$1" "$2"
  chmod -R u+w "$2"
}

build_cli() {
  step_begin "cli: pulumi $PULUMI_VERSION"
  local src dst="$BUILD_DIR/pkg"
  src="$(module_dir "$PKG_MODULE" "$PULUMI_VERSION")"
  copy_module "$src" "$dst"
  (
    cd "$dst"
    # pkg/go.mod points the sdk at ../sdk (a sibling directory of the repository, not in the
    # module zip): require the released sdk of the same version instead.
    "$GO" mod edit -dropreplace="$SDK_MODULE" -require="$SDK_MODULE@$PULUMI_VERSION"
    "$GO" mod download "$SDK_MODULE"
    "$GO" build -mod=mod -trimpath \
      -ldflags "-s -w -X $VERSION_VAR=$PULUMI_VERSION" \
      -o "$STAGE_DIR/pulumi" ./cmd/pulumi
  ) >&2
  local got
  got="$("$STAGE_DIR/pulumi" version)"
  [ "$got" = "$PULUMI_VERSION" ] || die "built pulumi reports version '$got', expected $PULUMI_VERSION"
  log "pulumi version -> $got"
  step_end
}

build_langhost() {
  step_begin "language host: pulumi-language-python from sdk $LANGHOST_SDK_VERSION"
  local src dst="$BUILD_DIR/langhost-sdk" p
  src="$(module_dir "$SDK_MODULE" "$LANGHOST_SDK_VERSION")"
  [ -f "$src/python/cmd/pulumi-language-python/main.go" ] \
    || die "$SDK_MODULE@$LANGHOST_SDK_VERSION has no python/cmd/pulumi-language-python"
  copy_module "$src" "$dst"
  local version="$LANGHOST_SDK_VERSION"
  if [ -d "$PATCH_DIR" ]; then
    for p in $(find "$PATCH_DIR" -name 'pulumi-language-python-*.patch' | LC_ALL=C sort); do
      log "applying patch ${p#"$REPO_ROOT"/}"
      patch -d "$dst" -p1 --forward --batch <"$p" >&2 || die "patch failed: $p"
      version="${LANGHOST_SDK_VERSION}+db-server.patched"
    done
  fi
  (
    cd "$dst"
    "$GO" build -mod=mod -trimpath \
      -ldflags "-s -w -X $VERSION_VAR=$version" \
      -o "$STAGE_DIR/pulumi-language-python" "$LANGHOST_PKG"
  ) >&2
  check_langhost_starts "$STAGE_DIR" "$version"
  step_end
}

# The host needs pulumi-language-python-exec beside it; it prints its gRPC port once it serves.
check_langhost_starts() {
  local dir="$1" version="$2" out pid port=""
  out="$(mktemp)"
  # It dials the engine address lazily (first health check after minutes); nothing listens on :1.
  "$dir/pulumi-language-python" 127.0.0.1:1 </dev/null >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    port="$(head -n1 "$out")"
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [[ "$port" =~ ^[0-9]+$ ]] || die "pulumi-language-python did not start: $(head -c 500 "$out")"
  rm -f "$out"
  log "pulumi-language-python started and listened on port $port (version $version)"
}

install_python_scripts() {
  step_begin "python scripts from sdk $PULUMI_VERSION"
  local src
  src="$(module_dir "$SDK_MODULE" "$PULUMI_VERSION")"
  install -m 0755 "$src/python/cmd/pulumi-language-python-exec" "$STAGE_DIR/pulumi-language-python-exec"
  install -m 0755 "$src/python/dist/pulumi-resource-pulumi-python" "$STAGE_DIR/pulumi-resource-pulumi-python"
  python3 -m py_compile "$STAGE_DIR/pulumi-language-python-exec" 2>/dev/null \
    || head -n1 "$STAGE_DIR/pulumi-language-python-exec" | grep -q '^#!' \
    || die "pulumi-language-python-exec is not a script"
  find "$STAGE_DIR" -name '__pycache__' -prune -exec rm -rf {} +
  head -n1 "$STAGE_DIR/pulumi-resource-pulumi-python" | grep -q '^#!' \
    || die "pulumi-resource-pulumi-python is not a script"
  step_end
}

verify_bin() {
  local d="$1"
  [ -x "$d/pulumi" ] && [ -x "$d/pulumi-language-python" ] \
    && [ -x "$d/pulumi-language-python-exec" ] && [ -x "$d/pulumi-resource-pulumi-python" ] \
    && [ "$("$d/pulumi" version 2>/dev/null)" = "$PULUMI_VERSION" ]
}

build_core() {
  mkdir -p "$KEY_DIR"
  if [ -f "$COMPLETE_MARK" ] && verify_bin "$BIN_DIR"; then
    log "cached: $BIN_DIR (built $(cat "$COMPLETE_MARK"))"
    return 0
  fi
  GO="$(find_go)" || die "no Go toolchain: need go >= 1.25 on PATH or in /usr/local/go"
  log "building into $KEY_DIR with $("$GO" version), GOPROXY=$GOPROXY"
  rm -f "$COMPLETE_MARK"
  rm -rf "$STAGE_DIR" "$BIN_DIR"
  mkdir -p "$STAGE_DIR" "$BUILD_DIR"
  local t0=$SECONDS
  build_cli
  install_python_scripts
  build_langhost
  verify_bin "$STAGE_DIR" || die "staged binaries failed the final check"
  mv "$STAGE_DIR" "$BIN_DIR"
  rm -rf "$BUILD_DIR"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$COMPLETE_MARK"
  log "core toolchain complete in $((SECONDS - t0)) s: $BIN_DIR"
  local stale
  for stale in "$CACHE_ROOT"/pulumi/v*-*; do
    [ "$stale" = "$KEY_DIR" ] || [ ! -d "$stale" ] \
      || log "note: $stale ($(du -sh "$stale" | cut -f1)) is from another recipe; delete it if unused"
  done
}

# ---------------------------------------------------------------------------------------------
# Provider plugins. The proxy refuses every module they are built from (see docs/toolchain.md),
# so this step can only pass if the plugins are already installed or on PATH.
# ---------------------------------------------------------------------------------------------
installed_plugin_version() { # name version -> prints where found, returns 1 if not found
  local name="$1" want="$2" found
  found="$(PULUMI_HOME="$PULUMI_HOME_DIR" "$BIN_DIR/pulumi" plugin ls --json 2>/dev/null \
    | python3 -c '
import json, sys
name, want = sys.argv[1], sys.argv[2]
try:
    plugins = json.load(sys.stdin) or []
except ValueError:
    plugins = []
for p in plugins:
    if p.get("kind") == "resource" and p.get("name") == name and p.get("version") == want:
        print(p.get("path") or "resource-%s-v%s" % (name, want))
        break
' "$name" "$want" || true)"
  if [ -n "$found" ]; then printf 'installed (pulumi plugin ls): %s' "$PULUMI_HOME_DIR/plugins/${found#"$PULUMI_HOME_DIR/plugins/"}"; return 0; fi
  local exe
  exe="$(PATH="$BIN_DIR:$PATH" command -v "pulumi-resource-$name" 2>/dev/null || true)"
  if [ -n "$exe" ]; then
    # The CLI uses PATH plugins without asking their version; check the stamp Go recorded.
    local go_bin info
    if go_bin="$(find_go)" && info="$("$go_bin" version -m "$exe" 2>/dev/null)" \
      && grep -Eq "(pkg/version\.Version=v?$want([^0-9.]|$))|(provider/v[0-9]+[[:space:]]+v$want([[:space:]]|$))" <<<"$info"; then
      printf 'on PATH: %s (version %s from its build info)' "$exe" "$want"
      return 0
    fi
    log "plugin $name: $exe is on PATH but its build info does not say version $want; not used"
  fi
  return 1
}

probe_proxy() { # module path, query (version/commit/list) -> "status body"
  local mod="$1" q="$2" proxy="${GOPROXY%%[,|]*}" url tmp code body
  if [ "$q" = "list" ]; then url="$proxy/$mod/@v/list"; else url="$proxy/$mod/@v/$q.info"; fi
  tmp="$(mktemp)"
  code="$(curl -sS -m 30 -o "$tmp" -w '%{http_code}' "$url" 2>"$tmp.err" || true)"
  if [ -z "$code" ] || [ "$code" = "000" ]; then code="000"; cp "$tmp.err" "$tmp"; fi
  body="$(tr '\n' ' ' <"$tmp" | cut -c1-200)"
  rm -f "$tmp" "$tmp.err"
  printf '%s|%s|%s' "$code" "$url" "$body"
}

check_plugins() {
  step_begin "provider plugins"
  local entry name ver mod commit where missing=() report=() r q
  for entry in "${PLUGINS[@]}"; do
    IFS='|' read -r name ver mod commit <<<"$entry"
    if where="$(installed_plugin_version "$name" "$ver")"; then
      log "plugin $name $ver: $where"
      continue
    fi
    missing+=("$name")
    for q in "v$ver" "$commit" list; do
      r="$(probe_proxy "$mod" "$q")"
      report+=("$name $ver: GET ${r#*|} -> HTTP ${r%%|*}")
      if [ "${r%%|*}" = "200" ]; then
        report+=("  $mod is now served at '$q', but this recipe does not build provider plugins yet: extend .ci/lib/pulumi-toolchain.sh (see docs/toolchain.md)")
      fi
    done
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    for entry in "${PLUGIN_EXTRA_MODULES[@]}"; do
      IFS='|' read -r mod commit <<<"$entry"
      r="$(probe_proxy "$mod" "$commit")"
      report+=("needed too: GET ${r#*|} -> HTTP ${r%%|*}")
    done
    # Format each report line as: what, URL, status, body.
    for r in "${report[@]}"; do
      log "  $(sed -E 's/^(.*GET )([^|]*)\|(.*) -> (HTTP [0-9]+)$/\1\2 -> \4, body: \3/' <<<"$r")"
    done
    log "step '$STEP_NAME': FAILED after $((SECONDS - STEP_START)) s: provider plugins not available: ${missing[*]}."
    log "  Not installed (PULUMI_HOME=$PULUMI_HOME_DIR) and not on PATH, and the Go module proxy refuses"
    log "  the modules they are built from (above). Install them with"
    log "  'pulumi plugin install resource <name> <version> --file <binary>' or put"
    log "  pulumi-resource-<name> on PATH, or run with --core-only for the CLI and language host alone."
    return 1
  fi
  step_end
}

print_env() {
  # shellcheck disable=SC2016 # ${PATH} is expanded by the caller's eval, on purpose
  printf 'export PATH=%q:"${PATH}"\n' "$BIN_DIR"
  printf 'export PULUMI_HOME=%q\n' "$PULUMI_HOME_DIR"
  printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
  printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
}

main() {
  local t0=$SECONDS tool
  for tool in curl flock patch python3 sha256sum; do
    command -v "$tool" >/dev/null 2>&1 \
      || die "needs '$tool' on PATH (Debian packages: curl util-linux patch python3 coreutils)"
  done
  mkdir -p "$KEY_DIR" "$PULUMI_HOME_DIR"
  # One build at a time per cache key; a second caller waits and then finds it cached.
  exec 9>"$KEY_DIR/.lock"
  if ! flock -n 9; then
    log "another build holds $KEY_DIR/.lock; waiting"
    flock 9
  fi
  build_core
  local rc=0
  if [ "$CORE_ONLY" = 1 ]; then
    log "step 'provider plugins': skipped (--core-only)"
  else
    check_plugins || rc=1
  fi
  print_env
  log "finished in $((SECONDS - t0)) s (exit $rc)"
  return "$rc"
}

main
