"""What the PostgreSQL container needs to archive its WAL, made before it: the local repository's
volume, the derived image with pgBackRest, the check of every repository with the new settings,
and, on a new host, the restore from the archive into the empty volumes."""

import hashlib
from dataclasses import dataclass, replace

import pulumi
import pulumi_docker as docker

from components.pgbackrest import (
    ENVIRONMENT,
    IMAGE_CONTEXT,
    REPO_PATH,
    STANZA,
    archive_config,
    archive_env,
    config_uploads,
    offsite_repository,
    s3_ca,
)
from components.volume_guard import guarded_volume
from providers.archive import ArchivePrecheck, ArchiveRestore, OneShotArgs
from settings import ArchiveSecrets, ArchiveSettings


@dataclass
class ArchiveRepositoryArgs:
    """Inputs of an ``ArchiveRepository``."""

    settings: ArchiveSettings
    """Repositories, retention, and whether to restore (``restore``)."""

    secrets: ArchiveSecrets
    """The object store's keys and the repositories' passphrase."""

    base_image: pulumi.Input[str]
    """The server's own image (an id): the derived one is built from it, again when it
    changes (a minor update pulled under the same tag)."""

    base_name: str
    """Its name (``db-server:postgres.image``), the derived image's ``FROM``."""

    server_name: str
    """The PostgreSQL container's name: the one-shot containers are named after it."""

    network: pulumi.Input[str]
    """The server's network: where the object store is reached from, as from the server."""

    data_volume: docker.Volume
    """PostgreSQL's data volume (read-only for the check; filled by a restore)."""

    data_path: str
    socket_volume: docker.Volume
    redis_volume: docker.Volume | None
    """Redis's data volume, filled from the object store on a new host; None for an external
    Redis."""

    redis_data_path: str
    protect: bool
    retain_on_delete: bool
    adopt_existing_volume: bool


class ArchiveRepository(pulumi.ComponentResource):
    """The server's side of continuous backup, all before its container is made or changed."""

    image: pulumi.Output[str]
    """The derived image's id: the server's, and the pgBackRest container's."""

    config: pulumi.Output[str]
    """pgbackrest.conf (secret)."""

    parameters: list[str]
    """The server's settings for archiving, ``-c`` arguments: archive_command is pgBackRest's
    asynchronous archive-push, bounded by ``queue_max_mb``, a segment at least every
    ``archive_timeout_seconds``."""

    envs: list[str]
    uploads: list[docker.ContainerUploadArgs]
    volumes: list[docker.ContainerVolumeArgs]
    """What the server's container gets: where pgBackRest finds its settings, the settings, and
    the local repository's volume."""

    repository: docker.Volume | None
    """The local repository's volume, where there is one."""

    postgres_gates: list[pulumi.Resource]
    """What the server's container waits for: the repositories checked, the restore done."""

    redis_gates: list[pulumi.Resource]
    """What Redis's container waits for: its snapshot restored, on a new host."""

    def __init__(
        self, name: str, args: ArchiveRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("db-server:archive_repository:ArchiveRepository", name, None, opts)
        settings = args.settings
        self.repository = (
            guarded_volume(
                name,
                settings.volume,
                self,
                protect=args.protect,
                retain_on_delete=args.retain_on_delete,
                adopt_existing=args.adopt_existing_volume,
            )
            if settings.local
            else None
        )
        recipe = (IMAGE_CONTEXT / "Dockerfile").read_bytes()
        tag = hashlib.sha256(recipe + args.base_name.encode()).hexdigest()[:12]
        image = docker.RemoteImage(
            f"{name}-image",
            name=f"db-server/postgres-archive:{tag}",
            build=docker.RemoteImageBuildArgs(
                context=str(IMAGE_CONTEXT), build_args={"BASE_IMAGE": args.base_name}
            ),
            triggers={"base_image": args.base_image},
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image = image.image_id
        self.config = archive_config(settings, args.secrets, args.data_path)
        self.parameters = [
            "archive_mode=on",
            f"archive_command=pgbackrest --stanza={STANZA} archive-push %p",
            f"archive_timeout={settings.archive_timeout_seconds}s",
        ]
        self.envs = ENVIRONMENT
        self.uploads = config_uploads(settings, self.config)
        self.volumes = (
            [docker.ContainerVolumeArgs(volume_name=self.repository.name, container_path=REPO_PATH)]
            if self.repository is not None
            else []
        )

        restore = {"ARCHIVE_RESTORE": settings.restore or ""}
        shot = OneShotArgs(
            name=f"{args.server_name}-archive-precheck",
            image=self.image,
            network=args.network,
            data_volume=args.data_volume.name,
            data_path=args.data_path,
            socket_volume=args.socket_volume.name,
            repository_volume=self.repository.name if self.repository is not None else None,
            config=self.config,
            ca=s3_ca(settings),
            env={**archive_env(settings), **restore},
        )
        precheck = ArchivePrecheck(
            f"{name}-precheck", shot, opts=pulumi.ResourceOptions(parent=self)
        )
        postgres_restore = ArchiveRestore(
            f"{name}-restore",
            replace(
                shot,
                name=f"{args.server_name}-archive-restore",
                env={**shot.env, "ARCHIVE_RESTORE_KIND": "postgres"},
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[precheck]),
        )
        self.postgres_gates = [precheck, postgres_restore]
        self.redis_gates = []
        if args.redis_volume is not None and offsite_repository(settings) is not None:
            self.redis_gates.append(
                ArchiveRestore(
                    f"{name}-redis-restore",
                    replace(
                        shot,
                        name=f"{args.server_name}-archive-redis-restore",
                        data_volume=args.redis_volume.name,
                        data_path=args.redis_data_path,
                        env={**shot.env, "ARCHIVE_RESTORE_KIND": "redis"},
                    ),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[precheck]),
                )
            )
        self.register_outputs({"image": self.image})
