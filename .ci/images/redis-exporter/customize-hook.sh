#!/bin/sh
# mmdebstrap --customize-hook: runs on the build host with the image root as $1, after the
# packages are installed.
set -eu
root=$1

# Upstream's entrypoint is /redis_exporter.
ln -s usr/bin/prometheus-redis-exporter "$root/redis_exporter"
