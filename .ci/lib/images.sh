#!/usr/bin/env bash
# Build the local stand-ins for the images the stack and its monitoring run (no registry here):
# the official postgres:17 and redis:8, edoburu/pgbouncer, the postgres and redis exporters, and
# prom/prometheus (whose promtool checks the alert rules), and an S3-compatible object store for the
# continuous backup's tests. .ci/images/README.md says which is which.
#
# Usage: eval "$(bash .ci/lib/images.sh)"   (after .ci/lib/docker-engine.sh)
#
# Each image is a Debian trixie root made by mmdebstrap from the recipe in .ci/images/<name>/
# (packages, hooks, entrypoint), imported with `docker import`, with the recipe's Dockerfile
# (ENV, ENTRYPOINT, CMD, STOPSIGNAL...) built on top as db-server-test/<name>:<major>-<hash12>, where the hash covers the recipe and this script. A tag
# that already exists is not built again; the mmdebstrap tarball is cached under
# "$DB_SERVER_CACHE_DIR/images/" by the same hash, so a lost image is re-imported in seconds.
#
# STDOUT carries only `export NAME=value` lines; progress goes to STDERR.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
recipes="$repo_root/.ci/images"
this_script="$repo_root/.ci/lib/images.sh"
cache_dir="${DB_SERVER_CACHE_DIR:-$HOME/.cache/db-server}/images"
suite=trixie

LOG_TAG=images
# shellcheck source=.ci/lib/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"

# Lines of a recipe file without comments and blank lines.
recipe_lines() {
  grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1" || true
}

# 12 hex digits over the recipe folder's files (names and contents) and this script.
recipe_hash() {
  local name=$1
  {
    (cd "$recipes" && find "$name" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    sha256sum <"$this_script"
  } | sha256sum | cut -c1-12
}

# The Debian mirror (and security mirror) this machine's apt uses, as mmdebstrap source lines.
# DB_SERVER_DEBIAN_MIRROR overrides the main one.
debian_sources() {
  local codename="" main="${DB_SERVER_DEBIAN_MIRROR:-}" security=""
  if [[ -r /etc/os-release ]]; then
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"')
  fi
  # "URI SUITE" pairs from one-line sources.list files and deb822 .sources files.
  local pairs
  pairs=$(
    {
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }'
      cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk 'function flush() { if (types ~ /(^| )deb( |$)/) for (u in uris) for (s in suites) print uris[u], suites[s]
                                delete uris; delete suites; types = "" }
             /^[[:space:]]*$/ { flush(); next }
             /^Types:/ { types = $0; sub(/^Types:[[:space:]]*/, "", types) }
             /^URIs:/ { split(substr($0, 6), uris, " ") }
             /^Suites:/ { split(substr($0, 8), suites, " ") }
             END { flush() }'
    } | awk 'NF == 2'
  )
  if [[ -z $main && -n $codename ]]; then
    main=$(awk -v s="$codename" '$2 == s { print $1; exit }' <<<"$pairs")
  fi
  if [[ -n $codename ]]; then
    security=$(awk -v s="$codename-security" '$2 == s { print $1; exit }' <<<"$pairs")
  fi
  main=${main:-http://deb.debian.org/debian}
  printf 'deb %s %s main\n' "${main%/}" "$suite" "${main%/}" "$suite-updates"
  if [[ -n $security ]]; then
    printf 'deb %s %s-security main\n' "${security%/}" "$suite"
  fi
}

ensure_mmdebstrap() {
  command -v mmdebstrap >/dev/null 2>&1 && return
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends mmdebstrap >&2
}

# mmdebstrap NAME TARBALL: the image root as a tarball, from the recipe in .ci/images/NAME/.
# The hooks are single-quoted on purpose: mmdebstrap runs them under sh with the root as "$1".
# shellcheck disable=SC2016
make_rootfs() {
  local name=$1 out=$2 recipe="$recipes/$1"
  local build_log="$cache_dir/$name-mmdebstrap.log"
  local -a packages sources args
  mapfile -t packages < <(recipe_lines "$recipe/packages")
  mapfile -t sources < <(debian_sources)
  log "sources: ${sources[*]}"
  args=(
    --variant=apt
    --include="$(
      IFS=,
      printf '%s' "${packages[*]}"
    )"
    --aptopt='Acquire::Retries "3"'
    # Documentation and translations only make the image bigger; licences stay.
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
  )
  if [[ -x $recipe/essential-hook.sh ]]; then
    args+=(--essential-hook='"$DB_SERVER_IMAGE_RECIPE/essential-hook.sh" "$1"')
  fi
  if [[ -x $recipe/customize-hook.sh ]]; then
    args+=(--customize-hook='"$DB_SERVER_IMAGE_RECIPE/customize-hook.sh" "$1"')
  fi
  args+=(
    --customize-hook='chroot "$1" dpkg-query -W >"$DB_SERVER_IMAGE_PACKAGES"'
    --customize-hook='rm -rf "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old'
  )
  if ! DB_SERVER_IMAGE_RECIPE="$recipe" DB_SERVER_IMAGE_PACKAGES="$out.packages" \
    mmdebstrap "${args[@]}" "$suite" "$out" "${sources[@]}" >"$build_log" 2>&1; then
    log "ERROR: mmdebstrap failed for $name; last lines of $build_log:"
    tail -n 30 "$build_log" >&2
    return 1
  fi
}

# docker import NAME's root, then docker build the recipe's Dockerfile (the image settings) on it.
import_image() {
  local name=$1 tarball=$2 tag=$3 hash=$4
  local base="db-server-test/$name-root:$hash" build_log="$cache_dir/$name-docker-build.log"
  docker import --message "Debian $suite root for the db-server test stand-in $name image" \
    "$tarball" "$base" >/dev/null
  if ! docker build --build-arg BASE="$base" --tag "$tag" "$recipes/$name" >"$build_log" 2>&1; then
    log "ERROR: docker build failed for $name; last lines of $build_log:"
    tail -n 30 "$build_log" >&2
    return 1
  fi
  # The root stays as the final image's base layer; only its tag goes.
  docker image rm "$base" >/dev/null
}

# Old tarballs and tags of this image only take space; an image still used by a container stays.
prune_old() {
  local name=$1 tag=$2 hash=$3 old
  find "$cache_dir" -maxdepth 1 -name "$name-*.tar*" ! -name "$name-$hash.tar*" -delete
  while IFS= read -r old; do
    [[ $old == "$tag" ]] && continue
    if docker image rm "$old" >/dev/null 2>&1; then
      log "removed old image $old"
    fi
  done < <(docker image ls --format '{{.Repository}}:{{.Tag}}' "db-server-test/$name")
}

# build_image NAME MAJOR: ensures the image exists and prints its export line.
build_image() {
  local name=$1 major=$2 hash tag tarball
  hash=$(recipe_hash "$name")
  tag="db-server-test/$name:$major-$hash"
  tarball="$cache_dir/$name-$hash.tar"

  if docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag exists; nothing to build"
  else
    if [[ -s $tarball ]]; then
      log "using cached root $tarball"
    else
      # mmdebstrap picks its output format from the name, so the partial file ends in .tar too.
      step "mmdebstrap $name ($suite)" make_rootfs "$name" "$tarball.partial.tar"
      mv "$tarball.partial.tar.packages" "$tarball.packages"
      mv "$tarball.partial.tar" "$tarball"
    fi
    step "docker import + build $tag" import_image "$name" "$tarball" "$tag" "$hash"
    prune_old "$name" "$tag" "$hash"
  fi
  log "$tag: $(docker image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
  local variable=${name^^}
  printf 'export DB_SERVER_TEST_%s_IMAGE=%q\n' "${variable//-/_}" "$tag"
}

main() {
  timeout 10 docker info >/dev/null 2>&1 ||
    die "no Docker engine answers \`docker info\`; run .ci/lib/docker-engine.sh first"
  mkdir -p "$cache_dir"
  # One build at a time per cache: a second caller waits, then finds the image built.
  exec 9>"$cache_dir/.lock"
  flock -w 600 9 || die "another image build held $cache_dir/.lock for 10 minutes"
  ensure_mmdebstrap
  build_image postgres 17
  build_image redis 8
  build_image pgbouncer 1
  build_image postgres-exporter 0.17
  build_image redis-exporter 1
  build_image prometheus 2
  build_image s3 5
  log "images ready in $SECONDS s"
}

main "$@"
