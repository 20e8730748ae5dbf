#!/bin/sh
# Stand-in for the official redis image's docker-entrypoint.sh, for tests only (see ../README.md).
set -e

# "--appendonly yes" or "my.conf" alone mean "redis-server with these arguments".
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# As root: hand /data to the redis user, then run this script again as that user so that
# redis-server ends up as PID 1 and gets `docker stop`'s SIGTERM itself.
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$1" = 'redis-server' ]; then
	# The official image compiles redis-server with protected mode off (a container's port is only
	# reachable once published); Debian's build keeps it on. Restore the official default, unless
	# a config file comes first: then its settings rule, as they would in the official image.
	case "${2:-}" in
	*.conf | -) ;;
	*)
		shift
		set -- redis-server --protected-mode no "$@"
		;;
	esac
fi

# Files written under /data are private to redis, as in the official image.
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
