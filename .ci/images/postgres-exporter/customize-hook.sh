#!/bin/sh
# mmdebstrap --customize-hook: runs on the build host with the image root as $1, after the
# packages are installed.
set -eu
root=$1

# Upstream's entrypoint is /bin/postgres_exporter (/bin is /usr/bin in Debian's merged /usr).
ln -s prometheus-postgres-exporter "$root/usr/bin/postgres_exporter"
