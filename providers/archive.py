"""pgBackRest's checks and the restore from the archive, run by `up` around the PostgreSQL
container.

- ``ArchivePrecheck``, before the container is made or changed: a one-shot container of the
  server's image, with the new configuration, reads every repository (a wrong key, passphrase,
  bucket or endpoint fails here), writes to it, and refuses one that holds another cluster's
  backups. The live server is not touched until its archive's settings are proven.
- ``ArchiveRestore``, before the container too: where ``db-server:archive.restore`` asks for it
  and the data volume holds no cluster (a new host), the cluster is restored into it from the
  archive (scripts/archive-precheck.sh and archive-restore.sh do the work).
- ``ArchiveReady``, once the server takes logins: ``stanza-create`` and ``check`` in its own
  container, as archive_command runs: its WAL reaches every repository.

A refusal stops `up` with pgBackRest's own words and a hint. A refresh leaves them as they are:
the pgBackRest container's healthcheck and metrics watch the archive from then on.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from providers import diff_fields

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
_ONE_SHOT_SCRIPTS = ("archive-precheck.sh", "archive-restore.sh", "lib/common.sh", "lib/archive.sh")
_IN_CONTAINER = "/opt/db-server/scripts"

_HINTS = {
    "do not match": "the repository holds another cluster's backups (another stack's, or this "
    "server's before it was made anew): give this stack its own db-server:archive.s3_path or "
    "volume, or move the old repository away",
    "holds the backups of a cluster": "to rebuild this server from them (a lost host), set "
    "db-server:archive.restore to latest (README, Rebuilding on a new host)",
    "unable to find backup set": "the target is before the oldest backup in the repository",
    "403": "the object store refused the key: check db-server:s3_access_key_id, "
    "db-server:s3_secret_access_key and the bucket's policy",
    "NoSuchBucket": "the bucket does not exist: make it first",
    "unable to get address": "the endpoint's host name does not resolve from the server's network",
    "unable to connect": "the endpoint does not answer from the server's network",
    "TLS": "the TLS connection to the endpoint failed: check db-server:archive.s3_ca_file",
    "cipher": "the repository is encrypted with another passphrase",
    "[029]": "the repository is encrypted with another passphrase",
}


class ArchiveError(Exception):
    """pgBackRest refused, saying why."""


def _explain(what: str, output: str) -> ArchiveError:
    errors = [line.strip() for line in output.splitlines() if "ERROR" in line or "HINT" in line]
    detail = " ".join(errors) or output.strip()[-2000:]
    hints = list(dict.fromkeys(hint for text, hint in _HINTS.items() if text in output))
    return ArchiveError(f"{what}: {detail}" + (f" ({'; '.join(hints)})" if hints else ""))


def _files_tar(files: dict[str, str | bytes]) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o755 if path.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


@dataclass
class OneShot:
    """A container of the server's image that runs one of the archive scripts and goes."""

    name: str
    """Its container name: the server's, with a suffix."""

    image: str
    network: str
    data_volume: str
    data_path: str
    socket_volume: str
    config: str
    """pgbackrest.conf."""

    env: dict[str, str]
    repository_volume: str | None = None
    """The local repository's volume, where there is one."""

    ca: str | None = None
    """The object store's CA file, where there is one (the engine leaves out unset inputs)."""

    read_only_data: bool = True


def run_one_shot(shot: OneShot, script: str, timeout_s: int = 1800) -> str:
    """Runs scripts/SCRIPT in a fresh container; returns its output, raises with it."""
    import docker  # here: the provider process needs it, the program does not

    client = docker.from_env()
    volumes = {
        shot.data_volume: {"bind": shot.data_path, "mode": "ro" if shot.read_only_data else "rw"},
        shot.socket_volume: {"bind": "/var/run/postgresql", "mode": "rw"},
    }
    if shot.repository_volume:
        volumes[shot.repository_volume] = {"bind": "/var/lib/pgbackrest", "mode": "rw"}
    files: dict[str, str | bytes] = {
        f"{_IN_CONTAINER}/{name}": (SCRIPTS / name).read_text() for name in _ONE_SHOT_SCRIPTS
    }
    files["/etc/db-server/pgbackrest.conf"] = shot.config
    if shot.ca:
        files["/etc/db-server/s3-ca.pem"] = shot.ca
    try:
        with contextlib.suppress(docker.errors.NotFound):  # a killed run's
            client.containers.get(shot.name).remove(force=True, v=True)
        container = client.containers.create(
            shot.image,
            entrypoint=["bash", f"{_IN_CONTAINER}/{script}"],
            environment={
                "PGBACKREST_CONFIG": "/etc/db-server/pgbackrest.conf",
                "PGBACKREST_STANZA": "db",
                "PGDATA": shot.data_path,
                "DB_SERVER_BACKUP_DIRECT": "1",
                **shot.env,
            },
            name=shot.name,
            network=shot.network,
            user="root",
            volumes=volumes,
        )
        try:
            container.put_archive("/", _files_tar(files))
            container.start()
            status = container.wait(timeout=timeout_s)
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True, v=True)
    finally:
        client.close()
    if status.get("StatusCode") != 0:
        raise _explain(f"pgBackRest ({script}) in {shot.name}", output)
    return output


_SHOT_FIELDS = tuple(OneShot.__dataclass_fields__)


def _shot(props: dict[str, Any]) -> OneShot:
    return OneShot(**{key: props[key] for key in _SHOT_FIELDS if key in props})


def _volume_is_empty(name: str, image: str) -> bool | None:
    """Whether the Docker volume of that name holds no file (one made again under its name: a
    lost host, a rebuild), or None where there is no such volume. Docker's CreatedAt cannot
    tell: it is the mtime of the volume's folder."""
    import docker

    client = docker.from_env()
    try:
        client.volumes.get(name)
        container = client.containers.create(
            image,
            entrypoint=["ls", "-A", "/volume"],
            volumes={name: {"bind": "/volume", "mode": "ro"}},
            network_mode="none",
            user="root",
        )
        try:
            container.start()
            container.wait(timeout=120)
            listing = container.logs(stdout=True, stderr=False)
        finally:
            # With the anonymous volumes the image declares (the official image's data path).
            container.remove(force=True, v=True)
    except docker.errors.NotFound:
        return None
    finally:
        client.close()
    return not listing.strip()


class _OnTheDataVolume(ResourceProvider):
    """What runs once per data volume: a refresh that finds the volume gone, or empty (a lost
    host: `make rebuild` makes the volumes anew before it reads this), reports the resource gone
    too, so that the update runs it again, on the new volume. A volume in use is never empty."""

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if _volume_is_empty(props["data_volume"], props["image"]) is not False:
            return ReadResult("", {})
        return ReadResult(id_, props)


class _PrecheckProvider(_OnTheDataVolume):
    def create(self, props: dict[str, Any]) -> CreateResult:
        run_one_shot(_shot(props), "archive-precheck.sh", timeout_s=600)
        return CreateResult(id_=props["name"], outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_fields(olds, news, _SHOT_FIELDS, ())

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        run_one_shot(_shot(news), "archive-precheck.sh", timeout_s=600)
        return UpdateResult(outs=news)


class _RestoreProvider(_OnTheDataVolume):
    """Restores into the data volume when it is made and holds no cluster; never over one.
    Only a new data volume runs it again: a changed setting waits for the next one."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        if props["env"].get("ARCHIVE_RESTORE"):
            shot = replace(_shot(props), read_only_data=False)
            run_one_shot(shot, "archive-restore.sh", timeout_s=24 * 3600)
        return CreateResult(id_=props["data_volume"], outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_fields(olds, news, _SHOT_FIELDS, ("data_volume",))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)


class ArchiveReadyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        check_in_server(props["container_name"])
        return CreateResult(id_=str(props["container_id"]), outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_fields(olds, news, ("container_id", "container_name", "config"), ())

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        check_in_server(news["container_name"])
        return UpdateResult(outs=news)


_LOCKED = "[050]"
"""pgBackRest's "unable to acquire lock": an archive-push of the server's holds it, for a moment."""

_ATTEMPTS = 10


def check_in_server(container_name: str) -> None:
    """stanza-create, then check, in the server's container; raises with pgBackRest's words.

    The server's own archive-push may hold the archive's lock just after it starts: tried again
    then, for a minute at most. The check waits two minutes for its WAL segment to be archived
    (a busy host), longer than archive-push's own timeout, never forever."""
    import time

    import docker

    client = docker.from_env()
    try:
        container = client.containers.get(container_name)
        for command in (
            ["pgbackrest", "stanza-create"],
            ["pgbackrest", "check", "--archive-timeout=120"],
        ):
            for attempt in range(_ATTEMPTS):
                result = container.exec_run(command, user="postgres", stream=False)
                output = result.output if isinstance(result.output, bytes) else b""
                text = output.decode(errors="replace")
                if result.exit_code == 0:
                    break
                if _LOCKED not in text or attempt == _ATTEMPTS - 1:
                    raise _explain(f"pgBackRest `{command[1]}` in {container_name}", text)
                time.sleep(6)
    finally:
        client.close()


@dataclass
class OneShotArgs:
    """Inputs of the one-shot checks and restore: the server's image and volumes."""

    name: str
    image: pulumi.Input[str]
    network: pulumi.Input[str]
    data_volume: pulumi.Input[str]
    data_path: str
    socket_volume: pulumi.Input[str]
    repository_volume: pulumi.Input[str] | None
    config: pulumi.Input[str]
    ca: str | None
    env: dict[str, str]


def _inputs(args: OneShotArgs) -> dict[str, Any]:
    # Field by field: asdict would deep-copy the Outputs.
    values = {name: getattr(args, name) for name in OneShotArgs.__dataclass_fields__}
    values["config"] = pulumi.Output.secret(args.config)
    return values


class ArchivePrecheck(pulumi.dynamic.Resource):
    """Exists once every repository of the configuration is readable, writable and this
    cluster's (or empty), checked before the server is touched."""

    def __init__(self, name: str, args: OneShotArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__(
            _PrecheckProvider(),
            name,
            _inputs(args),
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["config"])
            ),
        )


class ArchiveRestore(pulumi.dynamic.Resource):
    """The cluster restored from the archive into a new data volume, where the settings ask
    for it (``ARCHIVE_RESTORE`` in ``env``) and the volume holds none."""

    def __init__(self, name: str, args: OneShotArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__(
            _RestoreProvider(),
            name,
            _inputs(args),
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["config"])
            ),
        )


class ArchiveReady(pulumi.dynamic.Resource):
    """Exists once the server's WAL reaches every repository (pgBackRest ``check``)."""

    def __init__(
        self,
        name: str,
        container_id: pulumi.Input[str],
        container_name: str,
        config: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__(
            ArchiveReadyProvider(),
            name,
            {
                "container_id": container_id,
                "container_name": container_name,
                # Compared only, so that a new configuration is checked again; kept secret.
                "config": pulumi.Output.secret(config),
            },
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["config"])
            ),
        )
