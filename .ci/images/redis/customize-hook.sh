#!/bin/sh
# mmdebstrap --customize-hook: runs on the build host with the image root as $1, after the
# packages are installed. DB_SERVER_IMAGE_RECIPE is this folder.
set -eu
root=$1

install -m 0755 "$DB_SERVER_IMAGE_RECIPE/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
chroot "$root" install -d -o redis -g redis -m 0755 /data
