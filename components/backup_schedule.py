"""Scheduled, verified backups: a container on the server's network that runs scripts/."""

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.healthcheck import shell_healthcheck
from components.volume_guard import guarded_volume
from settings import ADMIN_ROLE, REDIS_PORT, BackupSettings

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
"""The backup, verify and retention scripts, uploaded into the container as they are."""

_SCRIPT_FILES = (
    "backup-loop.sh",
    "backup-database.sh",
    "verify-backup.sh",
    "prune-backups.sh",
    "lib/common.sh",
    "lib/redis.sh",
)
_IN_CONTAINER = "/opt/db-server/scripts"


def script_uploads(files: tuple[str, ...]) -> list[docker.ContainerUploadArgs]:
    """scripts/FILE for each of ``files``, uploaded under /opt/db-server/scripts as it is."""
    return [
        docker.ContainerUploadArgs(
            file=f"{_IN_CONTAINER}/{script}",
            content=(SCRIPTS / script).read_text(),
            executable=True,
        )
        for script in files
    ]


_POSTGRES_SOCKET_DIR = "/var/run/postgresql"
_REDIS_PASSWORD_FILE = "/run/secrets/redis_admin_password"
_BACKUPS = "/backups"
_REDIS_DATA = "/redis-data"
_METRICS = "/var/lib/db-server-metrics"

# Healthy while the latest backup holds every database, is verified and younger than two
# intervals, so `docker ps` shows at a glance when backups have stopped or left a project out.
_FRESHNESS_CHECK = (
    f"test -f {_BACKUPS}/latest/VERIFIED && test ! -e {_BACKUPS}/latest/FAILED && "
    f'test "$(( $(date +%s) - $(stat -c %Y {_BACKUPS}/latest/VERIFIED) ))" '
    '-lt "$(( 2 * BACKUP_INTERVAL_SECONDS ))"'
)


@dataclass
class BackupScheduleArgs:
    """Inputs of a ``BackupSchedule``."""

    settings: BackupSettings
    """Interval, retention, volume and container name."""

    image: pulumi.Input[str]
    """Image id of the PostgreSQL server's image: its client tools match the server."""

    network_name: pulumi.Input[str]
    """The server's Docker network."""

    postgres_socket_volume: pulumi.Input[str]
    """The PostgreSQL container's socket directory volume; known once the server takes logins,
    so the first backup does not wait a whole interval for a server that was still starting.
    The scripts log in through it as each database's owner (trusted there, no password): a
    project's dump is restored with the project's rights, never the admin's."""

    redis_host: pulumi.Input[str]
    """Redis's container name on that network, likewise."""

    redis_volume: pulumi.Input[str]
    """Redis's data volume, mounted read-only to copy the snapshot BGSAVE writes."""

    redis_admin_password: pulumi.Input[str]
    """The Redis admin's password (secret): BGSAVE is an admin's command."""

    metrics_volume: pulumi.Input[str] | None
    """Where node_exporter's textfile collector reads ``db_server_backup.prom``; None: the
    metrics are not written."""

    protect: bool
    """The backup volume carries ``protect``."""

    retain_on_delete: bool
    """The backup volume stays when the schedule is switched off."""

    adopt_existing_volume: bool
    """Take over an existing Docker volume of the backup volume's name (see volume_guard)."""


class BackupSchedule(pulumi.ComponentResource):
    """Backs the server up every interval into a volume, verifies each backup by restoring it,
    and applies retention, with the same scripts an operator runs from the host.

    It holds no PostgreSQL password: it reaches the server through its unix socket, shared as a
    volume, where the scripts log in as the admin for cluster-wide steps and as each database's
    owner for everything inside that database."""

    volume_name: pulumi.Output[str]
    """The volume the backups are written to."""

    def __init__(
        self, name: str, args: BackupScheduleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("db-server:backup_schedule:BackupSchedule", name, None, opts)
        settings = args.settings

        volume = guarded_volume(
            name,
            settings.volume,
            self,
            protect=args.protect,
            retain_on_delete=args.retain_on_delete,
            adopt_existing=args.adopt_existing_volume,
        )
        self.volume_name = volume.name

        scripts = script_uploads(_SCRIPT_FILES)
        secrets = [
            docker.ContainerUploadArgs(
                file=_REDIS_PASSWORD_FILE,
                content=pulumi.Output.secret(args.redis_admin_password),
                # Root's only: the scripts run as root, the verification's psql as the owners.
                permissions="0600",
            ),
        ]

        docker.Container(
            f"{name}-container",
            name=settings.container_name,
            image=args.image,
            entrypoints=["bash", f"{_IN_CONTAINER}/backup-loop.sh"],
            envs=[
                "DB_SERVER_BACKUP_DIRECT=1",
                f"DB_SERVER_BACKUP_DIR={_BACKUPS}",
                pulumi.Output.concat("DB_SERVER_REDIS_HOST=", args.redis_host),
                f"DB_SERVER_REDIS_PORT={REDIS_PORT}",
                f"DB_SERVER_REDIS_USER={ADMIN_ROLE}",
                f"DB_SERVER_REDIS_PASSWORD_FILE={_REDIS_PASSWORD_FILE}",
                f"DB_SERVER_REDIS_DATA={_REDIS_DATA}",
                f"BACKUP_INTERVAL_SECONDS={settings.interval_seconds}",
                f"BACKUP_KEEP_DAILY={settings.keep_daily}",
                f"BACKUP_KEEP_WEEKLY={settings.keep_weekly}",
                f"DB_SERVER_METRICS_DIR={_METRICS}",
            ],
            uploads=[*scripts, *secrets],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=volume.name, container_path=_BACKUPS),
                docker.ContainerVolumeArgs(
                    volume_name=args.postgres_socket_volume, container_path=_POSTGRES_SOCKET_DIR
                ),
                docker.ContainerVolumeArgs(
                    volume_name=args.redis_volume, container_path=_REDIS_DATA, read_only=True
                ),
                *(
                    [
                        docker.ContainerVolumeArgs(
                            volume_name=args.metrics_volume, container_path=_METRICS
                        )
                    ]
                    if args.metrics_volume is not None
                    else []
                ),
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network_name)],
            healthcheck=shell_healthcheck(
                _FRESHNESS_CHECK,
                interval_s=60,
                timeout_s=10,
                retries=3,
                # The first backup is due one interval after start at the latest.
                start_period_s=settings.interval_seconds + 600,
            ),
            restart="unless-stopped",
            must_run=True,
            # A backup under way gets time to finish its file before the stop.
            stop_timeout=60,
            destroy_grace_seconds=60,
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "5"},
            opts=pulumi.ResourceOptions(
                parent=self, delete_before_replace=True, additional_secret_outputs=["uploads"]
            ),
        )

        self.register_outputs({"volume_name": self.volume_name})
