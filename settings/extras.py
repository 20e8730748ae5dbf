"""The sections beside the servers: the network, scheduled backups, the pooler, the exporters
and the protections, with their checks."""

from dataclasses import dataclass

from settings.base import CONTAINER, DOCKER_NAME, PROJECT_NAME
from settings.postgres import PostgresSettings
from settings.redis import RedisSettings


@dataclass(frozen=True)
class NetworkSettings:
    """The Docker network both containers join, shared with the nginx reverse proxy."""

    name: str = "nginx-network"
    """Network name; projects' containers reach the servers by container name on it."""

    create: bool = True
    """Create the network; false joins an existing one that this stack never deletes."""


@dataclass(frozen=True)
class BackupSettings:
    """Scheduled backups: a container that backs up, verifies and prunes every interval."""

    enabled: bool = False
    """Run the scheduled backup container."""

    interval_seconds: int = 86400
    """Time between backups."""

    keep_daily: int = 7
    """Keep the newest backup of each of this many recent days."""

    keep_weekly: int = 4
    """Keep the newest backup of each of this many recent weeks."""

    volume: str | None = None
    """Named volume the backups are written to. By default named after PostgreSQL's volume,
    ``_pgdata`` becoming ``_backups`` (``db_server_pgdata``: ``db_server_backups``), so each
    stack's backups have their own volume."""

    container_name: str | None = None
    """Name of the backup container. By default named after PostgreSQL's container,
    ``-postgres`` becoming ``-backup`` (``db-server-postgres``: ``db-server-backup``)."""


@dataclass(frozen=True)
class PoolerSettings:
    """PgBouncer in front of PostgreSQL: many clients share few server connections."""

    enabled: bool = False
    """Run the pooler; every project then also gets ``<name>_pooled_url`` and
    ``<name>_host_pooled_url``."""

    image: str = "edoburu/pgbouncer:v1.24.1-p1"
    """An image honouring edoburu/pgbouncer's contract: runs ``pgbouncer`` with the config at
    ``/etc/pgbouncer/pgbouncer.ini``."""

    container_name: str | None = None
    """By default named after PostgreSQL's container, ``-postgres`` becoming ``-pgbouncer``."""

    host_port: int = 6432
    """Port published on 127.0.0.1 of the Docker host."""

    max_client_conn: int = 2000
    """Client connections the pooler takes in all; each project has its own limit too."""


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus exporters beside the servers, logged in as least-privilege users."""

    enabled: bool = False
    """Run postgres_exporter and redis_exporter."""

    postgres_exporter_image: str = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
    """An image honouring the upstream exporter's contract (``DATA_SOURCE_*`` variables)."""

    redis_exporter_image: str = "oliver006/redis_exporter:v1.69.0"
    """An image honouring the upstream exporter's contract (``REDIS_*`` variables)."""

    postgres_exporter_port: int = 9187
    """postgres_exporter's port, published on 127.0.0.1."""

    redis_exporter_port: int = 9121
    """redis_exporter's port, published on 127.0.0.1."""

    textfile_volume: str | None = None
    """Named volume the backup and pgBackRest containers write their metrics into
    (``db_server_backup.prom``, ``db_server_archive.prom``), for node_exporter's textfile
    collector. Made whenever either container runs. By default named after PostgreSQL's
    volume, ``_pgdata`` becoming ``_metrics``."""


@dataclass(frozen=True)
class ProtectionSettings:
    """How hard the stack guards data. The safe values are the defaults."""

    protect: bool = True
    """Volumes, databases and roles carry ``protect``: Pulumi refuses to delete them."""

    retain_on_delete: bool = True
    """Volumes, databases and roles removed from the program stay on the server."""

    adopt_existing_volumes: bool = False
    """Let `up` take over Docker volumes of the stack's names that exist already (after a lost
    Pulumi state, or from a server set up by hand). Off, a volume this stack did not create is
    refused: it may be another stack's."""


def check_extras(
    postgres: PostgresSettings,
    redis: RedisSettings,
    pooler: PoolerSettings,
    metrics: MetricsSettings,
) -> list[str]:
    """The pooler's and exporters' settings, and that their servers are the stack's own."""
    problems: list[str] = []
    if pooler.enabled and postgres.external:
        problems.append(
            f"{PROJECT_NAME}:pooler.enabled: the pooler runs in front of PostgreSQL in mode "
            f"{CONTAINER} only; an external server has its own (RDS Proxy, PgBouncer of its own)"
        )
    if metrics.enabled and (postgres.external or redis.external):
        problems.append(
            f"{PROJECT_NAME}:metrics.enabled: the exporters run beside servers in mode "
            f"{CONTAINER} only; an external server has its provider's metrics"
        )
    volume = metrics.textfile_volume
    if not DOCKER_NAME.fullmatch(volume or ""):
        problems.append(f"{PROJECT_NAME}:metrics.textfile_volume: not a Docker name: {volume!r}")
    elif volume in (postgres.volume, redis.volume):
        problems.append(
            f"{PROJECT_NAME}:metrics.textfile_volume: {volume!r} is already the database server's"
        )
    if not DOCKER_NAME.fullmatch(pooler.container_name or ""):
        problems.append(
            f"{PROJECT_NAME}:pooler.container_name: not a Docker name: {pooler.container_name!r}"
        )
    if pooler.max_client_conn < 1:
        problems.append(
            f"{PROJECT_NAME}:pooler.max_client_conn: must be at least 1, "
            f"got {pooler.max_client_conn}"
        )
    ports = {
        "postgres.host_port": postgres.host_port if not postgres.external else None,
        "redis.host_port": redis.host_port if not redis.external else None,
        "pooler.host_port": pooler.host_port if pooler.enabled else None,
        "metrics.postgres_exporter_port": metrics.postgres_exporter_port
        if metrics.enabled
        else None,
        "metrics.redis_exporter_port": metrics.redis_exporter_port if metrics.enabled else None,
    }
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port is None:
            continue
        if not 1 <= port <= 65535:
            problems.append(f"{PROJECT_NAME}:{name}: must be in 1-65535, got {port}")
        elif port in seen:
            problems.append(
                f"{PROJECT_NAME}:{name}: port {port} is {PROJECT_NAME}:{seen[port]}'s already"
            )
        else:
            seen[port] = name
    return problems


def check_network_and_backup(
    network: NetworkSettings,
    postgres: PostgresSettings,
    redis: RedisSettings,
    backup: BackupSettings,
) -> list[str]:
    """The network's name, and the backups' settings against the servers'."""
    problems: list[str] = []
    if not DOCKER_NAME.fullmatch(network.name):
        problems.append(f"{PROJECT_NAME}:network.name: not a Docker network name: {network.name!r}")
    if backup.enabled and (postgres.external or redis.external):
        problems.append(
            f"{PROJECT_NAME}:backup.enabled: scheduled backups run for servers in mode "
            f"{CONTAINER} only; back an external server up with its own tools "
            "(a managed service's snapshots, pg_dump)"
        )
    prefix = f"{PROJECT_NAME}:backup"
    if backup.interval_seconds < 10:
        problems.append(
            f"{prefix}.interval_seconds: must be at least 10, got {backup.interval_seconds}"
        )
    if backup.keep_daily < 1:
        problems.append(f"{prefix}.keep_daily: must be at least 1, got {backup.keep_daily}")
    if backup.keep_weekly < 0:
        problems.append(f"{prefix}.keep_weekly: must be 0 or more, got {backup.keep_weekly}")
    for name in ("container_name", "volume"):
        value = getattr(backup, name)
        if not isinstance(value, str) or not DOCKER_NAME.fullmatch(value):
            problems.append(f"{prefix}.{name}: not a Docker name: {value!r}")
        elif value in (getattr(postgres, name), getattr(redis, name)):
            problems.append(f"{prefix}.{name}: {value!r} is already the database server's")
    return problems
