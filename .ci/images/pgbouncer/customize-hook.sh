#!/bin/sh
# mmdebstrap --customize-hook: runs on the build host with the image root as $1, after the
# packages are installed. DB_SERVER_IMAGE_RECIPE is this folder.
set -eu
root=$1

install -m 0755 "$DB_SERVER_IMAGE_RECIPE/entrypoint.sh" "$root/entrypoint.sh"
# Upstream's CMD names /usr/bin/pgbouncer; Debian installs it in /usr/sbin.
ln -s ../sbin/pgbouncer "$root/usr/bin/pgbouncer"

# Upstream ships no pgbouncer.ini (a container without one gets a generated one) and an empty
# user list; Debian's sample config would otherwise run whenever a test forgot to mount its own.
rm -f "$root/etc/pgbouncer/pgbouncer.ini" "$root/etc/pgbouncer/userlist.txt"
chroot "$root" install -d -o postgres -g postgres -m 0755 /etc/pgbouncer /var/log/pgbouncer /var/run/pgbouncer
chroot "$root" install -o postgres -g postgres -m 0644 /dev/null /etc/pgbouncer/userlist.txt
