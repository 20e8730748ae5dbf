"""The shared server: network, volumes, the PostgreSQL and Redis containers, and the admin role."""

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_postgresql as postgresql
import pulumi_random as random

from components.backup_schedule import BackupSchedule, BackupScheduleArgs
from components.healthcheck import shell_healthcheck
from components.redis_acl import server_acl
from components.urls import postgres_url, redis_url
from components.volume_guard import volume_guard
from providers.network_ready import NetworkReady
from providers.server_ready import ServerReady, ServerReadyArgs
from settings import (
    ADMIN_ROLE,
    PASSWORD_SPECIALS,
    POSTGRES_PORT,
    REDIS_PORT,
    BackupSettings,
    NetworkSettings,
    PostgresSettings,
    ProtectionSettings,
    RedisSettings,
)

POSTGRES_PASSWORD_FILE = "/run/secrets/postgres_password"
"""Where the admin password is uploaded; ``POSTGRES_PASSWORD_FILE`` keeps it out of the env."""

REDIS_CONFIG_FILE = "/usr/local/etc/redis/redis.conf"
"""Where the Redis config is uploaded; the command line only names it."""

REDIS_SERVER_ACL = "/usr/local/etc/redis/server.acl"
"""The server's own ACL users (no ``default``, the admin), merged into the ACL file at start."""

REDIS_ADMIN_PASSWORD_FILE = "/run/secrets/redis_admin_password"
"""The Redis admin's password, for the healthcheck and the backup scripts inside the container."""

REDIS_ACL_FILE = "users.acl"
"""The ACL file, in Redis's data directory: project users written by ``ACL SAVE`` survive
restarts and container replacement with the data."""

STOP_GRACE_SECONDS = 60
"""How long a data container gets to shut down cleanly before Docker kills it."""

READY_WAIT_SECONDS = 180
"""How long ``pulumi up`` waits for a new container's server to accept a login."""

# Docker's healthchecks are for `docker ps` and monitoring; `pulumi up` waits on a login of its
# own (providers/server_ready.py), which needs no healthcheck feature of newer engines.
# The entrypoint's first-start init runs a temporary server that listens on the unix socket
# only, so an SQL query over TCP passes only once the real server accepts logins. pg_isready
# alone answers during that temporary server's life.
_POSTGRES_HEALTHCHECK = (
    f'PGPASSWORD="$(cat {POSTGRES_PASSWORD_FILE})" '
    f"psql --no-password --no-psqlrc --host=127.0.0.1 --port={POSTGRES_PORT} "
    f"--username={ADMIN_ROLE} --dbname=postgres --tuples-only --no-align "
    "--command='SELECT 1' | grep -qx 1"
)
_REDIS_HEALTHCHECK = (
    f'REDISCLI_AUTH="$(cat {REDIS_ADMIN_PASSWORD_FILE})" '
    f"redis-cli --user {ADMIN_ROLE} -h 127.0.0.1 -p {REDIS_PORT} ping | grep -qx PONG"
)
# Runs as root before the image's entrypoint: the server's own users replace their lines in the
# ACL file on the volume, project users stay as ACL SAVE wrote them. The entrypoint then hands
# the data directory to the redis user and drops privileges.
_REDIS_START = f"""set -eu
umask 077
acl="$1/{REDIS_ACL_FILE}"
touch "$acl"
grep -v -e '^user default ' -e '^user {ADMIN_ROLE} ' "$acl" > "$acl.kept" || true
cat {REDIS_SERVER_ACL} "$acl.kept" > "$acl"
rm -f "$acl.kept"
chown redis "$acl"
exec docker-entrypoint.sh redis-server {REDIS_CONFIG_FILE}
"""

# Docker's json-file log driver keeps everything forever unless told otherwise.
_LOG_OPTS = {"max-size": "10m", "max-file": "5"}


@dataclass
class DatabaseServerArgs:
    """Inputs of a ``DatabaseServer``; the settings are already validated."""

    network: NetworkSettings
    """The Docker network to create or join."""

    postgres: PostgresSettings
    """The PostgreSQL container."""

    redis: RedisSettings
    """The Redis container."""

    backup: BackupSettings
    """The scheduled backup container, when enabled."""

    protection: ProtectionSettings
    """Whether volumes carry ``protect`` and ``retain_on_delete``."""

    admin_password: pulumi.Input[str] | None = None
    """The ``dbadmin`` password; a random one of 40 characters when not given."""


class DatabaseServer(pulumi.ComponentResource):
    """One PostgreSQL and one Redis container that many projects share.

    Both publish their port on 127.0.0.1 only and join one Docker network, where projects'
    containers reach them by container name. Data lives in named volumes; containers are
    replaced delete-before-replace with a stop grace period, so two servers never share a volume.
    """

    postgres_provider: postgresql.Provider
    """A provider that manages roles and databases as ``dbadmin`` through 127.0.0.1."""

    postgres_volume: docker.Volume
    """The volume holding every database and role: SQL objects are ``deleted_with`` it."""

    network_name: pulumi.Output[str]
    """Name of the Docker network the containers joined."""

    redis_admin_password: pulumi.Output[str]
    """The Redis admin's password (secret); projects have users of their own."""

    redis_admin_host: pulumi.Output[str]
    """Where the Docker host reaches Redis as the admin; known once Redis takes logins."""

    redis_admin_port: pulumi.Output[int]
    """Redis's port on ``redis_admin_host``."""

    redis_admin_url: pulumi.Output[str]
    """The Redis admin's URL on the Docker network (secret)."""

    redis_admin_host_url: pulumi.Output[str]
    """The Redis admin's URL through 127.0.0.1 on the Docker host (secret)."""

    admin_url: pulumi.Output[str]
    """``dbadmin``'s URL on the Docker network (secret)."""

    admin_host_url: pulumi.Output[str]
    """``dbadmin``'s URL through 127.0.0.1 on the Docker host (secret)."""

    postgres_container_id: pulumi.Output[str]
    """Docker id of the PostgreSQL container; it changes only when the container is replaced."""

    redis_container_id: pulumi.Output[str]
    """Docker id of the Redis container; it changes only when the container is replaced."""

    summary: dict[str, object]
    """Non-secret facts about the server: network, container names and host ports."""

    def __init__(
        self, name: str, args: DatabaseServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("db-server:database_server:DatabaseServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        data = pulumi.ResourceOptions(
            parent=self,
            protect=args.protection.protect,
            retain_on_delete=args.protection.retain_on_delete,
        )
        volume_opts = pulumi.ResourceOptions(
            parent=self,
            protect=args.protection.protect,
            retain_on_delete=args.protection.retain_on_delete,
            hooks=volume_guard(name, args.protection.adopt_existing_volumes),
        )

        # First in the program: the containers wait for these, and the engine starts the
        # random provider when it sees the first of them.
        # Wrapped explicitly: the engine marks RandomPassword results secret, but every value
        # derived from a password must stay secret whatever a provider's schema says.
        admin_password: pulumi.Output[str] = pulumi.Output.secret(
            args.admin_password
            if args.admin_password is not None
            else random.RandomPassword(
                f"{name}-admin-password",
                length=40,
                special=True,
                override_special=PASSWORD_SPECIALS,
                opts=child,
            ).result
        )
        # Alphanumeric: it is read from a file by shell scripts and sent over the wire as is.
        self.redis_admin_password = pulumi.Output.secret(
            random.RandomPassword(
                f"{name}-redis-password", length=48, special=False, opts=child
            ).result
        )

        if args.network.create:
            # Shared with nginx and the projects' containers: guarded like the data.
            docker.Network(f"{name}-network", name=args.network.name, opts=data)
            self.network_name = NetworkReady(
                f"{name}-network-ready", args.network.name, opts=child
            ).ready_name
        else:
            self.network_name = pulumi.Output.from_input(args.network.name)

        pg_volume = docker.Volume(f"{name}-pgdata", name=args.postgres.volume, opts=volume_opts)
        self.postgres_volume = pg_volume
        redis_volume = docker.Volume(f"{name}-redisdata", name=args.redis.volume, opts=volume_opts)

        postgres = self._postgres_container(name, args.postgres, pg_volume, admin_password)
        redis = self._redis_container(name, args.redis, redis_volume)
        postgres_ready = self._ready(name, "postgres", postgres, args.postgres, admin_password)
        redis_ready = self._ready(name, "redis", redis, args.redis, self.redis_admin_password)
        self.redis_admin_host = redis_ready.ready_host
        self.redis_admin_port = redis_ready.ready_port
        self.redis_admin_url = redis_url(
            ADMIN_ROLE, self.redis_admin_password, args.redis.container_name, REDIS_PORT, 0
        )
        self.redis_admin_host_url = redis_url(
            ADMIN_ROLE, self.redis_admin_password, "127.0.0.1", args.redis.host_port, 0
        )

        # Host and port come from the readiness check: the provider never dials a server that
        # is not accepting logins yet, and while the server is being (re)created, a preview or
        # a refresh finds the provider unconfigured instead of failing on a refused connection.
        self.postgres_provider = postgresql.Provider(
            f"{name}-postgres-provider",
            host=postgres_ready.ready_host,
            port=postgres_ready.ready_port,
            username=ADMIN_ROLE,
            password=admin_password,
            database="postgres",
            sslmode="disable",
            superuser=True,
            connect_timeout=30,
            opts=child,
        )

        # PUBLIC may connect to these by default: any project's role could reach the admin
        # database. Project databases revoke the same in their own component.
        for database in ("postgres", "template1"):
            postgresql.Grant(
                f"{name}-{database}-revoke-public",
                database=database,
                role="public",
                object_type="database",
                privileges=[],
                opts=pulumi.ResourceOptions(
                    parent=self, provider=self.postgres_provider, deleted_with=pg_volume
                ),
            )

        self.admin_url = postgres_url(
            ADMIN_ROLE, admin_password, args.postgres.container_name, POSTGRES_PORT, "postgres"
        )
        self.admin_host_url = postgres_url(
            ADMIN_ROLE, admin_password, "127.0.0.1", args.postgres.host_port, "postgres"
        )
        if args.backup.enabled:
            BackupSchedule(
                f"{name}-backup",
                BackupScheduleArgs(
                    settings=args.backup,
                    image=postgres.image,
                    network_name=self.network_name,
                    postgres_host=postgres_ready.ready_container_name,
                    redis_host=redis_ready.ready_container_name,
                    redis_volume=redis_volume.name,
                    admin_password=admin_password,
                    redis_admin_password=self.redis_admin_password,
                    protect=args.protection.protect,
                    retain_on_delete=args.protection.retain_on_delete,
                    adopt_existing_volume=args.protection.adopt_existing_volumes,
                ),
                opts=child,
            )

        self.postgres_container_id = postgres.id
        self.redis_container_id = redis.id
        self.summary = {
            "network": self.network_name,
            "postgres": {
                "container": args.postgres.container_name,
                "host_port": args.postgres.host_port,
            },
            "redis": {"container": args.redis.container_name, "host_port": args.redis.host_port},
        }

        self.register_outputs(
            {
                "network_name": self.network_name,
                "admin_url": self.admin_url,
                "admin_host_url": self.admin_host_url,
                "redis_admin_url": self.redis_admin_url,
                "redis_admin_host_url": self.redis_admin_host_url,
                "postgres_container_id": self.postgres_container_id,
                "redis_container_id": self.redis_container_id,
            }
        )

    def _ready(
        self,
        name: str,
        kind: str,
        container: docker.Container,
        settings: PostgresSettings | RedisSettings,
        admin_password: pulumi.Input[str],
    ) -> ServerReady:
        """Exists once the server in ``container`` takes the admin's login from the host."""
        return ServerReady(
            f"{name}-{kind}-ready",
            ServerReadyArgs(
                kind=kind,
                container_id=container.id,
                container_name=settings.container_name,
                host="127.0.0.1",
                port=settings.host_port,
                user=ADMIN_ROLE,
                password=admin_password,
                timeout_seconds=READY_WAIT_SECONDS,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _postgres_container(
        self,
        name: str,
        settings: PostgresSettings,
        volume: docker.Volume,
        admin_password: pulumi.Output[str],
    ) -> docker.Container:
        command = ["postgres"]
        for parameter, value in sorted(settings.parameters.items()):
            command += ["-c", f"{parameter}={value}"]
        return self._data_container(
            f"{name}-postgres",
            settings,
            POSTGRES_PORT,
            volume,
            command=command,
            envs=[
                f"POSTGRES_USER={ADMIN_ROLE}",
                f"POSTGRES_PASSWORD_FILE={POSTGRES_PASSWORD_FILE}",
                "POSTGRES_DB=postgres",
                f"PGDATA={settings.data_path}",
                # Checksums catch silent disk corruption; initdb only reads this once.
                "POSTGRES_INITDB_ARGS=--data-checksums",
            ],
            uploads=[
                docker.ContainerUploadArgs(file=POSTGRES_PASSWORD_FILE, content=admin_password)
            ],
            healthcheck=_POSTGRES_HEALTHCHECK,
            # The official image's stop signal: a fast shutdown that still checkpoints.
            stop_signal="SIGINT",
            shm_size=settings.shm_size_mb,
        )

    def _redis_container(
        self, name: str, settings: RedisSettings, volume: docker.Volume
    ) -> docker.Container:
        config = (
            "# Written by db-server; changes here are replaced on the next `pulumi up`.\n"
            "bind * -::*\n"
            f"port {REDIS_PORT}\n"
            f"databases {settings.databases}\n"
            f"aclfile {settings.data_path}/{REDIS_ACL_FILE}\n"
            f"dir {settings.data_path}\n"
            "appendonly yes\n"
            f"appendfsync {settings.appendfsync}\n"
            "save 3600 1 300 100 60 10000\n"
            f"maxmemory {settings.maxmemory}\n"
            f"maxmemory-policy {settings.maxmemory_policy}\n"
        )
        return self._data_container(
            f"{name}-redis",
            settings,
            REDIS_PORT,
            volume,
            command=["sh", "-c", _REDIS_START, "redis-start", settings.data_path],
            envs=[],
            uploads=[
                docker.ContainerUploadArgs(file=REDIS_CONFIG_FILE, content=config),
                docker.ContainerUploadArgs(
                    file=REDIS_SERVER_ACL,
                    content=self.redis_admin_password.apply(
                        lambda password: server_acl(ADMIN_ROLE, password)
                    ),
                ),
                docker.ContainerUploadArgs(
                    file=REDIS_ADMIN_PASSWORD_FILE, content=self.redis_admin_password
                ),
            ],
            healthcheck=_REDIS_HEALTHCHECK,
            stop_signal="SIGTERM",
            shm_size=None,
        )

    def _data_container(
        self,
        resource_name: str,
        settings: PostgresSettings | RedisSettings,
        port: int,
        volume: docker.Volume,
        *,
        command: list[str],
        envs: list[str],
        uploads: list[docker.ContainerUploadArgs],
        healthcheck: str,
        stop_signal: str,
        shm_size: int | None,
    ) -> docker.Container:
        """A container that holds data: loopback port, network, volume, safe lifecycle."""
        image = docker.RemoteImage(
            f"{resource_name}-image",
            name=settings.image,
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return docker.Container(
            resource_name,
            name=settings.container_name,
            image=image.image_id,
            command=command,
            envs=envs,
            uploads=uploads,
            healthcheck=shell_healthcheck(
                healthcheck,
                interval_s=10,
                timeout_s=5,
                retries=5,
                start_period_s=120,
            ),
            restart="unless-stopped",
            must_run=True,
            stop_signal=stop_signal,
            stop_timeout=STOP_GRACE_SECONDS,
            destroy_grace_seconds=STOP_GRACE_SECONDS,
            memory=settings.memory_mb,
            # A database server that swaps stalls every project at once; with the limit it is
            # OOM-killed and restarted instead. Docker's default, twice the limit, reads back
            # as a change on every preview.
            memory_swap=settings.memory_mb,
            shm_size=shm_size,
            ports=[
                docker.ContainerPortArgs(
                    internal=port, external=settings.host_port, ip="127.0.0.1", protocol="tcp"
                )
            ],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=self.network_name, aliases=[settings.container_name]
                )
            ],
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=volume.name, container_path=settings.data_path
                )
            ],
            log_driver="json-file",
            log_opts=_LOG_OPTS,
            # Stop the old server before the new one starts: two servers on one data directory
            # corrupt it. The uploads carry a password the provider does not mark secret.
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,
                additional_secret_outputs=["uploads"],
            ),
        )
