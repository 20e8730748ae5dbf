#!/bin/sh
# mmdebstrap --customize-hook: runs on the build host with the image root as $1, after the
# packages are installed.
set -eu
root=$1

# Upstream's storage folder, writable by the user it runs as.
chroot "$root" install -d -o nobody -g nogroup -m 0755 /prometheus
