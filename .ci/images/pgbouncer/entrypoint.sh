#!/bin/sh
# Stand-in for the edoburu/pgbouncer image's /entrypoint.sh, for tests only (see ../README.md).
# It keeps what upstream does with a config file of one's own at /etc/pgbouncer/pgbouncer.ini,
# the way the stack runs it. Upstream writes a config from DATABASE_URL, DB_HOST... when there is
# none; this one stops instead, so a test cannot pass on a generated config by mistake.
set -e

PG_CONFIG_FILE=/etc/pgbouncer/pgbouncer.ini
_AUTH_FILE="${AUTH_FILE:-/etc/pgbouncer/userlist.txt}"

# As upstream (its issue 33): an empty auth file where none is mounted.
if [ ! -e "$_AUTH_FILE" ]; then
	touch "$_AUTH_FILE"
fi

if [ ! -f "$PG_CONFIG_FILE" ]; then
	echo "error: no $PG_CONFIG_FILE; this stand-in does not write one from the environment, mount or upload it" >&2
	exit 1
fi

echo "Starting $*..."
exec "$@"
