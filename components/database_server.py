"""The shared server: network, volumes, the PostgreSQL and Redis containers, and the admin role."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import pulumi
import pulumi_docker as docker
import pulumi_postgresql as postgresql
import pulumi_random as random

from components.archive_repository import ArchiveRepository, ArchiveRepositoryArgs
from components.backup_schedule import BackupSchedule, BackupScheduleArgs
from components.continuous_backup import ContinuousBackup, ContinuousBackupArgs
from components.healthcheck import shell_healthcheck
from components.redis_acl import server_acl
from components.urls import Target, postgres_urls, redis_urls
from components.volume_guard import volume_guard
from providers.network_ready import NetworkReady
from providers.server_ready import ExternalServer, ServerReady, ServerReadyArgs
from settings import (
    ADMIN_ROLE,
    CONTAINER,
    EXTERNAL,
    PASSWORD_SPECIALS,
    POSTGRES_PORT,
    REDIS_PORT,
    ArchiveSecrets,
    ArchiveSettings,
    BackupSettings,
    Endpoint,
    NetworkSettings,
    PostgresSettings,
    ProtectionSettings,
    RedisSettings,
)

POSTGRES_SOCKET_DIR = "/var/run/postgresql"
"""PostgreSQL's unix socket directory in the official image, where every local login is trusted.
It is a volume shared with the backup container: its scripts log in there as each database's
owner, so a project's code in its dump never runs with the admin's rights
(scripts/lib/common.sh)."""

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

EXTERNAL_WAIT_SECONDS = 30
"""How long ``pulumi up`` tries an external server, which should be up already."""

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


_Settings = TypeVar("_Settings", PostgresSettings, RedisSettings)


class _DataContainer(NamedTuple):
    """A server's container and the volume its data lives in."""

    container: docker.Container
    volume: docker.Volume


def _once_ready(ready: ServerReady, host: str) -> pulumi.Output[str]:
    """``host``, known once the readiness check passed."""
    return ready.ready_host.apply(lambda _: host)


def _warn(warnings: list[str] | None) -> None:
    for warning in warnings or []:
        pulumi.log.warn(warning)


def _service_summary(
    settings: PostgresSettings | RedisSettings, endpoint: Endpoint
) -> dict[str, object]:
    if settings.external:
        return {"mode": EXTERNAL, "host": endpoint.host, "port": endpoint.port}
    return {
        "mode": CONTAINER,
        "container": settings.container_name,
        "host_port": settings.host_port,
    }


# Docker's json-file log driver keeps everything forever unless told otherwise.
_LOG_OPTS = {"max-size": "10m", "max-file": "5"}


@dataclass
class DatabaseServerArgs:
    """Inputs of a ``DatabaseServer``; the settings are already validated."""

    network: NetworkSettings
    """The Docker network to create or join."""

    postgres: PostgresSettings
    """PostgreSQL: the container, or the external server."""

    redis: RedisSettings
    """Redis: the container, or the external server."""

    backup: BackupSettings
    """The scheduled backup container, when enabled."""

    protection: ProtectionSettings
    """Whether volumes carry ``protect`` and ``retain_on_delete``."""

    archive: ArchiveSettings
    """Continuous backup with pgBackRest, when enabled."""

    archive_secrets: ArchiveSecrets
    """Its object store's keys and the repositories' passphrase."""

    admin_password: pulumi.Input[str] | None = None
    """The PostgreSQL admin's password; a random one of 40 characters when not given."""

    redis_admin_password: pulumi.Input[str] | None = None
    """The Redis admin's password; a random one of 48 characters when not given."""

    metrics_volume: str | None = None
    """The volume the backup and pgBackRest containers write their metrics into, for
    node_exporter's textfile collector; made when either runs. None: no metrics files."""


@dataclass
class PostgresAccess:
    """What a project needs of PostgreSQL: the admin's provider and where its URLs point."""

    provider: postgresql.Provider
    """Manages roles and databases as the admin; configured once the server takes logins."""

    endpoint: Endpoint
    """Where Pulumi and the projects reach the server."""

    sslmode: str
    """libpq ``sslmode`` the projects' URLs carry (none for ``disable``)."""

    admin: str
    """The admin role the provider logs in as."""

    admin_is_superuser: bool
    """Whether it is a superuser; if not, it must be a member of a project's role to act as
    its owner."""

    ready_host: pulumi.Output[str]
    """``endpoint.host``, known once the server takes logins: for containers beside it."""

    deleted_with: pulumi.Resource | None
    """The container's data volume: SQL objects go with it, and a destroy never dials a server
    that may be gone. None for an external server, where they are dropped one by one."""

    salt_seed: pulumi.Output[str]
    """32 random bytes (base64, secret) that the logins' SCRAM salts are derived from
    (components/scram.py)."""


@dataclass
class RedisAccess:
    """What a project needs of Redis: the admin's connection and where its URLs point."""

    endpoint: Endpoint
    """Where Pulumi and the projects reach the server."""

    tls: bool
    """Connect with TLS (``rediss://`` URLs)."""

    ca_file: str | None
    """PEM file of the server certificate's CA, with TLS."""

    admin_user: str
    """The ACL user that manages project users."""

    admin_password: pulumi.Output[str]
    """Its password (secret)."""

    admin_host: pulumi.Output[str]
    """``endpoint.admin_host``, known once Redis takes the admin's login."""

    admin_port: pulumi.Output[int]
    """``endpoint.admin_port``, likewise."""

    ready_host: pulumi.Output[str]
    """``endpoint.host``, known once Redis takes logins: for containers beside it."""

    deleted_with: pulumi.Resource | None
    """The container's data volume, where the ACL file lives; None for an external server."""


class DatabaseServer(pulumi.ComponentResource):
    """The PostgreSQL and Redis servers that many projects share.

    Each service is a container of the stack's own or an external server (``mode``). A
    container publishes its port on 127.0.0.1 only and joins one Docker network, where projects'
    containers reach it by container name; its data lives in a named volume, and it is replaced
    delete-before-replace with a stop grace period, so two servers never share a volume. For an
    external server nothing is created: the stack checks the admin's login and privileges, then
    manages the projects on it.
    """

    postgres: PostgresAccess
    """How projects' roles and databases are made, and where their URLs point."""

    redis: RedisAccess
    """How projects' Redis users are made, and where their URLs point."""

    network_name: pulumi.Output[str] | None
    """Name of the Docker network the containers joined; None with no container."""

    redis_admin_url: pulumi.Output[str]
    """The Redis admin's URL for the projects' side of the server (secret)."""

    redis_admin_host_url: pulumi.Output[str]
    """The Redis admin's URL from the Docker host, where Pulumi runs (secret)."""

    admin_url: pulumi.Output[str]
    """The PostgreSQL admin's URL for the projects' side of the server (secret)."""

    admin_host_url: pulumi.Output[str]
    """The PostgreSQL admin's URL from the Docker host, where Pulumi runs (secret)."""

    summary: dict[str, object]
    """Non-secret facts about the servers: modes, network, containers and addresses."""

    def __init__(
        self, name: str, args: DatabaseServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("db-server:database_server:DatabaseServer", name, None, opts)
        self._name = name
        self._args = args
        self._archive: ArchiveRepository | None = None
        self._metrics: docker.Volume | None = None
        child = pulumi.ResourceOptions(parent=self)
        pg, rd = args.postgres, args.redis

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
        redis_admin_password: pulumi.Output[str] = pulumi.Output.secret(
            args.redis_admin_password
            if args.redis_admin_password is not None
            else random.RandomPassword(
                f"{name}-redis-password", length=48, special=False, opts=child
            ).result
        )

        postgres_ready, postgres_container = self._postgres(admin_password)
        redis_ready, redis_container = self._redis(redis_admin_password)
        self.network_name = self._network if postgres_container or redis_container else None

        pg_end, rd_end = pg.endpoint(), rd.endpoint()
        # Host and port come from the readiness check: the provider never dials a server that
        # is not accepting logins yet, and while the server is being (re)created, a preview or
        # a refresh finds the provider unconfigured instead of failing on a refused connection.
        provider = postgresql.Provider(
            f"{name}-postgres-provider",
            host=postgres_ready.ready_host,
            port=postgres_ready.ready_port,
            username=pg.admin,
            password=admin_password,
            database=pg.admin_database,
            sslmode=pg.ssl,
            sslrootcert=pg.ca_file,
            superuser=pg.admin_is_superuser,
            connect_timeout=30,
            opts=child,
        )
        pg_volume = postgres_container.volume if postgres_container else None
        # One seed for every login's salt, instead of a random resource per login.
        salt_seed = random.RandomBytes(f"{name}-login-salt-seed", length=32, opts=child)
        self.postgres = PostgresAccess(
            provider,
            pg_end,
            pg.ssl,
            pg.admin,
            pg.admin_is_superuser,
            _once_ready(postgres_ready, pg_end.host),
            pg_volume,
            pulumi.Output.secret(salt_seed.base64),
        )
        self.redis = RedisAccess(
            endpoint=rd_end,
            tls=rd.use_tls,
            ca_file=rd.ca_file,
            admin_user=rd.admin,
            admin_password=redis_admin_password,
            admin_host=redis_ready.ready_host,
            admin_port=redis_ready.ready_port,
            ready_host=_once_ready(redis_ready, rd_end.host),
            deleted_with=redis_container.volume if redis_container else None,
        )

        if postgres_container is not None:
            # PUBLIC may connect to these by default: any project's role could reach the admin
            # database. Project databases revoke the same in their own component. On an
            # external server they belong to its owner; the readiness check warns instead.
            for database in ("postgres", "template1"):
                postgresql.Grant(
                    f"{name}-{database}-revoke-public",
                    database=database,
                    role="public",
                    object_type="database",
                    privileges=[],
                    opts=pulumi.ResourceOptions(
                        parent=self, provider=provider, deleted_with=pg_volume
                    ),
                )
        postgres_ready.warnings.apply(_warn)
        redis_ready.warnings.apply(_warn)

        admin_urls = postgres_urls(
            pg.admin,
            admin_password,
            pg.admin_database,
            {
                "network": Target(pg_end.host, pg_end.port, pg.ssl),
                "host": Target(pg_end.admin_host, pg_end.admin_port, pg.ssl),
            },
        )
        self.admin_url, self.admin_host_url = admin_urls["network"], admin_urls["host"]
        redis_admin_urls = redis_urls(
            rd.admin,
            redis_admin_password,
            0,
            {
                "network": Target(rd_end.host, rd_end.port),
                "host": Target(rd_end.admin_host, rd_end.admin_port),
            },
            tls=rd.use_tls,
        )
        self.redis_admin_url = redis_admin_urls["network"]
        self.redis_admin_host_url = redis_admin_urls["host"]
        if args.backup.enabled and postgres_container and redis_container:
            BackupSchedule(
                f"{name}-backup",
                BackupScheduleArgs(
                    settings=args.backup,
                    image=postgres_container.container.image,
                    network_name=self._network,
                    postgres_socket_volume=_once_ready(postgres_ready, pg.socket_volume),
                    redis_host=redis_ready.ready_container_name,
                    redis_volume=redis_container.volume.name,
                    redis_admin_password=redis_admin_password,
                    metrics_volume=self._metrics_volume(),
                    protect=args.protection.protect,
                    retain_on_delete=args.protection.retain_on_delete,
                    adopt_existing_volume=args.protection.adopt_existing_volumes,
                ),
                opts=child,
            )

        if args.protection.protect and postgres_container and not args.archive.s3:
            # A protected stack holds other teams' data: one disk holding every copy of it is
            # said in every preview until the archive reaches an object store.
            pulumi.log.warn(
                "Every copy of this stack's data is on this host's disk: set "
                "db-server:archive.s3_endpoint and s3_bucket (README, Backups off the host)."
            )
        if self._archive is not None and postgres_container is not None:
            self._continuous_backup(
                self._archive,
                postgres_container,
                postgres_ready,
                redis_ready,
                redis_container,
                redis_admin_password,
            )

        self.summary = {
            "network": self.network_name,
            "postgres": _service_summary(pg, pg_end),
            "redis": _service_summary(rd, rd_end),
        }
        if self._archive is not None:
            # What `make pitr` and the runbooks find the stack's pieces by.
            archive = args.archive
            self.summary["archive"] = {
                "container": archive.container_name,
                "data_volume": pg.volume,
                "data_path": pg.data_path,
                "repository_volume": archive.volume if archive.local else None,
                "object_store": f"s3://{archive.s3_bucket}{archive.s3_path}"
                if archive.s3
                else None,
                "backup_volume": args.backup.volume if args.backup.enabled else None,
            }
        self.register_outputs(
            {
                "network_name": self.network_name,
                "admin_url": self.admin_url,
                "admin_host_url": self.admin_host_url,
                "redis_admin_url": self.redis_admin_url,
                "redis_admin_host_url": self.redis_admin_host_url,
            }
        )

    @functools.cached_property
    def _network(self) -> pulumi.Output[str]:
        """The containers' network, made when the first container needs it; its name is known
        once the network exists, when the stack creates it."""
        settings = self._args.network
        if not settings.create:
            return pulumi.Output.from_input(settings.name)
        # Shared with nginx and the projects' containers: guarded like the data.
        docker.Network(
            f"{self._name}-network",
            name=settings.name,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=self._args.protection.protect,
                retain_on_delete=self._args.protection.retain_on_delete,
            ),
        )
        return NetworkReady(
            f"{self._name}-network-ready", settings.name, opts=pulumi.ResourceOptions(parent=self)
        ).ready_name

    def _volume(self, resource_name: str, volume_name: str, *, data: bool = True) -> docker.Volume:
        """A named volume; one that holds ``data`` carries the stack's protections."""
        protection = self._args.protection
        return docker.Volume(
            resource_name,
            name=volume_name,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=protection.protect and data,
                retain_on_delete=protection.retain_on_delete and data,
                hooks=self._volume_hooks,
            ),
        )

    @functools.cached_property
    def _volume_hooks(self) -> pulumi.ResourceHookBinding | None:
        """One guard for both volumes: a hook's name is registered once per stack."""
        return volume_guard(self._name, self._args.protection.adopt_existing_volumes)

    def _postgres(
        self, admin_password: pulumi.Output[str]
    ) -> tuple[ServerReady, _DataContainer | None]:
        """PostgreSQL's readiness check, and its container and volume unless it is external."""
        return self._service(
            "postgres", self._args.postgres, "pgdata", self._postgres_container, admin_password
        )

    def _redis(
        self, admin_password: pulumi.Output[str]
    ) -> tuple[ServerReady, _DataContainer | None]:
        """Redis's readiness check, and its container and volume unless it is external."""
        return self._service(
            "redis", self._args.redis, "redisdata", self._redis_container, admin_password
        )

    @functools.cached_property
    def _redis_volume(self) -> docker.Volume | None:
        """Redis's data volume, made when first needed (the archive's restore fills it on a new
        host, before Redis's container); None for an external Redis."""
        redis = self._args.redis
        return None if redis.external else self._volume(f"{self._name}-redisdata", redis.volume)

    def _service(
        self,
        kind: str,
        settings: _Settings,
        volume_suffix: str,
        make_container: Callable[
            [_Settings, docker.Volume, docker.Volume | None, pulumi.Output[str]], docker.Container
        ],
        admin_password: pulumi.Output[str],
    ) -> tuple[ServerReady, _DataContainer | None]:
        if settings.external:
            return self._ready_external(kind, settings, admin_password), None
        volume = (
            self._redis_volume
            if isinstance(settings, RedisSettings)
            else self._volume(f"{self._name}-{volume_suffix}", settings.volume)
        )
        assert volume is not None  # a container's
        socket_volume = (
            # No data: Docker may remove it with the container; only its name is guarded.
            self._volume(f"{self._name}-pgsocket", settings.socket_volume, data=False)
            if isinstance(settings, PostgresSettings)
            else None
        )
        container = make_container(settings, volume, socket_volume, admin_password)
        ready = self._ready(kind, container, settings, admin_password)
        return ready, _DataContainer(container, volume)

    def _ready_external(
        self,
        kind: str,
        settings: PostgresSettings | RedisSettings,
        admin_password: pulumi.Input[str],
    ) -> ServerReady:
        """Exists once the external server takes the admin's login and the admin has what
        per-project work needs; fails with what is missing otherwise."""
        endpoint = settings.endpoint()
        external = (
            ExternalServer(
                database=settings.admin_database,
                sslmode=settings.ssl,
                ca_file=settings.ca_file,
                superuser=settings.admin_is_superuser,
            )
            if isinstance(settings, PostgresSettings)
            else ExternalServer(
                tls=settings.use_tls, ca_file=settings.ca_file, databases=settings.databases
            )
        )
        return ServerReady(
            f"{self._name}-{kind}-ready",
            ServerReadyArgs(
                kind=kind,
                container_id=EXTERNAL,
                container_name=f"{endpoint.admin_host}:{endpoint.admin_port}",
                host=endpoint.admin_host,
                port=endpoint.admin_port,
                user=settings.admin,
                password=admin_password,
                timeout_seconds=EXTERNAL_WAIT_SECONDS,
                external=external,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _ready(
        self,
        kind: str,
        container: docker.Container,
        settings: PostgresSettings | RedisSettings,
        admin_password: pulumi.Input[str],
    ) -> ServerReady:
        """Exists once the server in ``container`` takes the admin's login from the host."""
        return ServerReady(
            f"{self._name}-{kind}-ready",
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
        settings: PostgresSettings,
        volume: docker.Volume,
        socket_volume: docker.Volume | None,
        admin_password: pulumi.Output[str],
    ) -> docker.Container:
        assert socket_volume is not None  # made for every PostgreSQL container
        name = f"{self._name}-postgres"
        image: pulumi.Input[str] = self._pull(name, settings).image_id
        archiving = self._archiving(image, settings, volume, socket_volume)
        command = ["postgres"]
        parameters = [f"{p}={v}" for p, v in sorted(settings.parameters.items())]
        for parameter in parameters + (archiving.parameters if archiving else []):
            command += ["-c", parameter]
        shared = [
            docker.ContainerVolumeArgs(
                volume_name=socket_volume.name, container_path=POSTGRES_SOCKET_DIR
            )
        ]
        return self._data_container(
            name,
            settings,
            archiving.image if archiving else image,
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
                *(archiving.envs if archiving else []),
            ],
            uploads=[
                docker.ContainerUploadArgs(file=POSTGRES_PASSWORD_FILE, content=admin_password),
                *(archiving.uploads if archiving else []),
            ],
            healthcheck=_POSTGRES_HEALTHCHECK,
            # The official image's stop signal: a fast shutdown that still checkpoints.
            stop_signal="SIGINT",
            shm_size=settings.shm_size_mb,
            shared=shared + (archiving.volumes if archiving else []),
            depends_on=archiving.postgres_gates if archiving else [],
            # pgBackRest's asynchronous archive-push leaves processes that outlive their parent;
            # with PostgreSQL as PID 1 they would be its orphans, and one that exits non-zero
            # reads to the postmaster as a crashed backend: a restart of every session. Docker's
            # init reaps them instead.
            init=archiving is not None,
        )

    def _archiving(
        self,
        base_image: pulumi.Input[str],
        settings: PostgresSettings,
        volume: docker.Volume,
        socket_volume: docker.Volume,
    ) -> ArchiveRepository | None:
        """What the server archives its WAL with, when it does (and, on a new host, the
        restore of its data and Redis's from the archive)."""
        archive = self._args.archive
        if not archive.enabled:
            return None
        protection = self._args.protection
        self._archive = ArchiveRepository(
            f"{self._name}-archive",
            ArchiveRepositoryArgs(
                settings=archive,
                secrets=self._args.archive_secrets,
                base_image=base_image,
                base_name=settings.image,
                server_name=settings.container_name,
                network=self._network,
                data_volume=volume,
                data_path=settings.data_path,
                socket_volume=socket_volume,
                redis_volume=self._redis_volume,
                redis_data_path=self._args.redis.data_path,
                protect=protection.protect,
                retain_on_delete=protection.retain_on_delete,
                adopt_existing_volume=protection.adopt_existing_volumes,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return self._archive

    def _metrics_volume(self) -> pulumi.Output[str] | None:
        """The metrics files' volume, made once for the containers that write there. Nothing in
        it outlives the next write: no protection, and a new host starts with an empty one."""
        name = self._args.metrics_volume
        if name is None:
            return None
        if self._metrics is None:
            adopt = self._args.protection.adopt_existing_volumes
            self._metrics = docker.Volume(
                f"{self._name}-metrics-volume",
                name=name,
                # Another stack's volume of that name would mix its metrics with this one's.
                opts=pulumi.ResourceOptions(
                    parent=self, hooks=volume_guard(f"{self._name}-metrics", adopt)
                ),
            )
        return self._metrics.name

    def _continuous_backup(
        self,
        archiving: ArchiveRepository,
        postgres: _DataContainer,
        postgres_ready: ServerReady,
        redis_ready: ServerReady,
        redis: _DataContainer | None,
        redis_admin_password: pulumi.Output[str],
    ) -> None:
        """The pgBackRest container, once the server takes logins (its archive checked first)."""
        pg = self._args.postgres
        ContinuousBackup(
            f"{self._name}-pgbackrest",
            ContinuousBackupArgs(
                settings=self._args.archive,
                config=archiving.config,
                image=postgres.container.image,
                server_container_id=pulumi.Output.all(
                    postgres_ready.ready_host, postgres.container.id
                ).apply(lambda ready: str(ready[1])),
                server_container_name=pg.container_name,
                data_volume=postgres.volume.name,
                data_path=pg.data_path,
                socket_volume=_once_ready(postgres_ready, pg.socket_volume),
                repository_volume=archiving.repository.name if archiving.repository else None,
                network_name=self._network,
                redis_host=redis_ready.ready_container_name,
                redis_volume=redis.volume.name if redis else None,
                redis_admin_password=redis_admin_password,
                metrics_volume=self._metrics_volume(),
                adopt_existing_volume=self._args.protection.adopt_existing_volumes,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _redis_container(
        self,
        settings: RedisSettings,
        volume: docker.Volume,
        _socket_volume: docker.Volume | None,
        admin_password: pulumi.Output[str],
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
        name = f"{self._name}-redis"
        return self._data_container(
            name,
            settings,
            self._pull(name, settings).image_id,
            REDIS_PORT,
            volume,
            command=["sh", "-c", _REDIS_START, "redis-start", settings.data_path],
            envs=[],
            uploads=[
                docker.ContainerUploadArgs(file=REDIS_CONFIG_FILE, content=config),
                docker.ContainerUploadArgs(
                    file=REDIS_SERVER_ACL,
                    content=admin_password.apply(lambda password: server_acl(ADMIN_ROLE, password)),
                ),
                docker.ContainerUploadArgs(file=REDIS_ADMIN_PASSWORD_FILE, content=admin_password),
            ],
            healthcheck=_REDIS_HEALTHCHECK,
            stop_signal="SIGTERM",
            shm_size=None,
            # On a new host, its snapshot restored from the archive first.
            depends_on=self._archive.redis_gates if self._archive else [],
        )

    def _pull(
        self, resource_name: str, settings: PostgresSettings | RedisSettings
    ) -> docker.RemoteImage:
        """The server's image, pulled (kept when the stack lets it go)."""
        return docker.RemoteImage(
            f"{resource_name}-image",
            name=settings.image,
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _data_container(
        self,
        resource_name: str,
        settings: PostgresSettings | RedisSettings,
        image: pulumi.Input[str],
        port: int,
        volume: docker.Volume,
        *,
        command: list[str],
        envs: list[str],
        uploads: list[docker.ContainerUploadArgs],
        healthcheck: str,
        stop_signal: str,
        shm_size: int | None,
        shared: list[docker.ContainerVolumeArgs] | None = None,
        depends_on: list[pulumi.Resource] | None = None,
        init: bool = False,
    ) -> docker.Container:
        """A container that holds data: loopback port, network, volume, safe lifecycle;
        ``shared`` are volumes it shares with the containers beside it."""
        return docker.Container(
            resource_name,
            name=settings.container_name,
            image=image,
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
            init=True if init else None,
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
                    name=self._network,
                    aliases=[settings.container_name],
                )
            ],
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=volume.name, container_path=settings.data_path
                ),
                *(shared or []),
            ],
            log_driver="json-file",
            log_opts=_LOG_OPTS,
            # Stop the old server before the new one starts: two servers on one data directory
            # corrupt it. The uploads carry a password the provider does not mark secret.
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,
                additional_secret_outputs=["uploads"],
                depends_on=depends_on,
            ),
        )
