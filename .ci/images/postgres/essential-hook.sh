#!/bin/sh
# mmdebstrap --essential-hook: runs on the build host, before postgresql-17 is installed, with the
# image root as $1. Like the official image, no Debian "main" cluster is created: the entrypoint
# makes the only cluster in $PGDATA on first start.
set -eu
root=$1
mkdir -p "$root/etc/postgresql-common/createcluster.d"
echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.d/00-docker.conf"
