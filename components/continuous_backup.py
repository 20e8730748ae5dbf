"""Continuous backup: the pgBackRest container beside PostgreSQL, and the check that its
repositories take the cluster's WAL before `up` goes on."""

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.backup_schedule import script_uploads
from components.healthcheck import shell_healthcheck
from components.pgbackrest import (
    ENVIRONMENT,
    REPO_PATH,
    archive_env,
    config_uploads,
    offsite_repository,
)
from components.volume_guard import volume_guard
from providers.archive import ArchiveReady
from settings import ADMIN_ROLE, REDIS_PORT, ArchiveSettings

_SCRIPT_FILES = (
    "archive-loop.sh",
    "archive-drill.sh",
    "archive-health.sh",
    "lib/common.sh",
    "lib/redis.sh",
    "lib/archive.sh",
)
_IN_CONTAINER = "/opt/db-server/scripts"
_REDIS_PASSWORD_FILE = "/run/secrets/redis_admin_password"
_REDIS_DATA = "/redis-data"
_DRILL = "/var/lib/db-server-drill"
_METRICS = "/var/lib/db-server-metrics"
_SOCKET_DIR = "/var/run/postgresql"


@dataclass
class ContinuousBackupArgs:
    """Inputs of a ``ContinuousBackup``."""

    settings: ArchiveSettings
    """Intervals, retention, repositories, names."""

    config: pulumi.Input[str]
    """pgbackrest.conf (secret), the server container's own."""

    image: pulumi.Input[str]
    """The server's (derived) image: pgBackRest of the same version, PostgreSQL's tools."""

    server_container_id: pulumi.Input[str]
    """The PostgreSQL container: a new one is checked again."""

    server_container_name: str
    """Where the repositories' check runs, as archive_command does."""

    data_volume: pulumi.Input[str]
    """PostgreSQL's data volume, mounted read-only: base backups read its files."""

    data_path: str
    """Where it is mounted, PGDATA (pgBackRest checks it is the server's)."""

    socket_volume: pulumi.Input[str]
    """PostgreSQL's socket directory, known once the server takes logins: pgBackRest calls
    pg_backup_start/stop as the admin there, and the metrics read pg_stat_archiver."""

    repository_volume: pulumi.Input[str] | None
    """The local repository's volume, where there is one."""

    network_name: pulumi.Input[str]
    """The server's Docker network, where Redis is."""

    redis_host: pulumi.Input[str]
    """Redis's container name on that network, for the snapshot sent to the object store."""

    redis_volume: pulumi.Input[str] | None
    """Redis's data volume, mounted read-only to copy the snapshot BGSAVE writes; None for an
    external Redis (its snapshots are its service's)."""

    redis_admin_password: pulumi.Input[str]
    """The Redis admin's password (secret): BGSAVE is an admin's command."""

    metrics_volume: pulumi.Input[str] | None
    """Where node_exporter's textfile collector reads the metrics, when the stack runs it."""

    adopt_existing_volume: bool
    """Take over an existing Docker volume of the drill volume's name (see volume_guard)."""


class ContinuousBackup(pulumi.ComponentResource):
    """pgBackRest beside the PostgreSQL container: base backups on a schedule into every
    repository, a check that the WAL reaches them, restore drills into a scratch server of its
    own, Redis's snapshot in the object store, and metrics (scripts/archive-loop.sh). The server
    archives its WAL itself (archive_command); this container never writes to its data."""

    def __init__(
        self, name: str, args: ContinuousBackupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("db-server:continuous_backup:ContinuousBackup", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)

        ready = ArchiveReady(
            f"{name}-check",
            args.server_container_id,
            args.server_container_name,
            args.config,
            opts=child,
        )
        # The drills' scratch data directory: nothing in it outlives a drill.
        drill = docker.Volume(
            f"{name}-drill",
            name=f"{settings.volume}_drill",
            opts=pulumi.ResourceOptions(
                parent=self, hooks=volume_guard(name, args.adopt_existing_volume)
            ),
        )
        offsite = offsite_repository(settings)
        volumes = [
            docker.ContainerVolumeArgs(
                volume_name=args.data_volume, container_path=args.data_path, read_only=True
            ),
            docker.ContainerVolumeArgs(volume_name=args.socket_volume, container_path=_SOCKET_DIR),
            docker.ContainerVolumeArgs(volume_name=drill.name, container_path=_DRILL),
        ]
        if args.repository_volume is not None:
            volumes.append(
                docker.ContainerVolumeArgs(
                    volume_name=args.repository_volume, container_path=REPO_PATH
                )
            )
        if args.metrics_volume is not None:
            volumes.append(
                docker.ContainerVolumeArgs(volume_name=args.metrics_volume, container_path=_METRICS)
            )
        uploads = script_uploads(_SCRIPT_FILES) + config_uploads(settings, args.config)
        if offsite is not None and args.redis_volume is not None:
            volumes.append(
                docker.ContainerVolumeArgs(
                    volume_name=args.redis_volume, container_path=_REDIS_DATA, read_only=True
                )
            )
            uploads.append(
                docker.ContainerUploadArgs(
                    file=_REDIS_PASSWORD_FILE,
                    content=pulumi.Output.secret(args.redis_admin_password),
                    # Root's only: the loop runs as root, a drill's server as postgres.
                    permissions="0600",
                )
            )
        check_interval = max(300, 2 * settings.archive_timeout_seconds)
        docker.Container(
            f"{name}-container",
            name=settings.container_name,
            image=args.image,
            entrypoints=["bash", f"{_IN_CONTAINER}/archive-loop.sh"],
            envs=[
                *ENVIRONMENT,
                "DB_SERVER_BACKUP_DIRECT=1",
                *(f"{key}={value}" for key, value in archive_env(settings).items()),
                f"ARCHIVE_REDIS_OFFSITE={'1' if offsite and args.redis_volume is not None else ''}",
                f"ARCHIVE_BACKUP_INTERVAL_SECONDS={settings.backup_interval_seconds}",
                f"ARCHIVE_FULL_INTERVAL_SECONDS={settings.full_interval_seconds}",
                f"ARCHIVE_DRILL_INTERVAL_SECONDS={settings.drill_interval_seconds}",
                f"ARCHIVE_CHECK_INTERVAL_SECONDS={check_interval}",
                pulumi.Output.concat("DB_SERVER_REDIS_HOST=", args.redis_host),
                f"DB_SERVER_REDIS_PORT={REDIS_PORT}",
                f"DB_SERVER_REDIS_USER={ADMIN_ROLE}",
                f"DB_SERVER_REDIS_PASSWORD_FILE={_REDIS_PASSWORD_FILE}",
                f"DB_SERVER_REDIS_DATA={_REDIS_DATA}",
                f"DB_SERVER_METRICS_DIR={_METRICS}",
            ],
            uploads=uploads,
            volumes=volumes,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network_name)],
            healthcheck=shell_healthcheck(
                f"bash {_IN_CONTAINER}/archive-health.sh",
                interval_s=30,
                timeout_s=25,
                retries=2,
                # The first backup and check run at once; a full backup of a large cluster
                # takes its time.
                start_period_s=3 * check_interval + 600,
            ),
            restart="unless-stopped",
            must_run=True,
            # A backup under way gets time to stop cleanly (pgBackRest resumes it next time).
            stop_timeout=60,
            destroy_grace_seconds=60,
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "5"},
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,
                additional_secret_outputs=["uploads"],
                depends_on=[ready],
            ),
        )
        self.register_outputs({})
