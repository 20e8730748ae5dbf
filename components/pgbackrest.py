"""pgBackRest's configuration, as every container that runs it gets it: the repositories, their
secrets, where the cluster is. No resource here: ``ArchiveRepository`` and ``ContinuousBackup``
make them."""

from pathlib import Path

import pulumi
import pulumi_docker as docker

from settings import ADMIN_ROLE, ArchiveSecrets, ArchiveSettings

STANZA = "db"
"""pgBackRest's name for the cluster in every repository."""

CONFIG_FILE = "/etc/db-server/pgbackrest.conf"
"""Where the configuration is uploaded (it holds the repositories' secrets)."""

S3_CA_FILE = "/etc/db-server/s3-ca.pem"
"""Where the object store's CA file is uploaded."""

REPO_PATH = "/var/lib/pgbackrest"
"""The local repository's mount point (the Debian package's own default)."""

ENVIRONMENT = [f"PGBACKREST_CONFIG={CONFIG_FILE}", f"PGBACKREST_STANZA={STANZA}"]
"""Every pgBackRest command in these containers, archive_command too, finds its settings."""

IMAGE_CONTEXT = Path(__file__).resolve().parent.parent / "images" / "postgres-archive"
"""The derived image's Dockerfile: the stack's own PostgreSQL image, with pgBackRest."""


def repositories(settings: ArchiveSettings) -> dict[str, int]:
    """pgBackRest's repository number of each kind configured: ``local`` 1, ``s3`` 2 (or 1)."""
    kinds = [kind for kind, on in (("local", settings.local), ("s3", settings.s3)) if on]
    return {kind: number for number, kind in enumerate(kinds, start=1)}


def offsite_repository(settings: ArchiveSettings) -> int | None:
    """The object store's repository number, where one is configured."""
    return repositories(settings).get("s3")


def archive_env(settings: ArchiveSettings) -> dict[str, str]:
    """What the archive scripts need to know of the repositories (no secret in it)."""
    repos = repositories(settings)
    return {
        "ARCHIVE_REPOS": " ".join(str(n) for n in repos.values()),
        "ARCHIVE_OFFSITE_REPO": str(repos.get("s3", "")),
    }


def s3_ca(settings: ArchiveSettings) -> str | None:
    """The object store's CA file's contents, where one is configured."""
    if settings.s3 and settings.s3_ca_file is not None:
        return Path(settings.s3_ca_file).read_text()
    return None


def _line(key: str, value: object) -> str:
    text = str(value)
    # pgBackRest reads one `key=value` a line: a value may not run on.
    if "\n" in text or "\r" in text:
        raise ValueError(f"pgBackRest setting {key} may not contain a line break")
    return f"{key}={text}\n"


def render_config(
    settings: ArchiveSettings,
    data_path: str,
    s3_key: str | None,
    s3_secret: str | None,
    passphrase: str | None,
) -> str:
    """pgbackrest.conf for the stack (plain text: it goes out only as a secret)."""
    text = "# Written by db-server (components/pgbackrest.py); replaced on every `pulumi up`.\n"
    text += "[global]\n"
    for key, value in (
        ("log-level-console", "info"),
        ("log-level-stderr", "off"),
        ("log-level-file", "off"),
        ("lock-path", "/tmp/pgbackrest"),
        ("spool-path", "/tmp/pgbackrest-spool"),
        ("archive-async", "y"),
        ("archive-push-queue-max", f"{settings.queue_max_mb}MiB"),
        # How long archive_command waits for a segment to reach the repositories: a dead one
        # shows in pg_stat_archiver after this, and PostgreSQL tries again.
        ("archive-timeout", 30),
        ("compress-type", "lz4"),
        ("start-fast", "y"),
        ("process-max", 2),
    ):
        text += _line(key, value)
    for kind, number in repositories(settings).items():
        repo = f"repo{number}"
        text += _line(f"{repo}-retention-full", settings.retention_full)
        encrypt = settings.s3_encrypt if kind == "s3" else settings.local_encrypt
        if encrypt:
            text += _line(f"{repo}-cipher-type", "aes-256-cbc")
            text += _line(f"{repo}-cipher-pass", passphrase)
        if kind == "local":
            text += _line(f"{repo}-type", "posix")
            text += _line(f"{repo}-path", REPO_PATH)
            continue
        host, _, port = (settings.s3_endpoint or "").partition(":")
        text += _line(f"{repo}-type", "s3")
        text += _line(f"{repo}-path", settings.s3_path)
        text += _line(f"{repo}-s3-bucket", settings.s3_bucket)
        text += _line(f"{repo}-s3-endpoint", host)
        if port:
            text += _line(f"{repo}-storage-port", port)
        text += _line(f"{repo}-s3-region", settings.s3_region)
        text += _line(f"{repo}-s3-uri-style", settings.s3_uri_style)
        text += _line(f"{repo}-s3-key", s3_key)
        text += _line(f"{repo}-s3-key-secret", s3_secret)
        if settings.s3_ca_file is not None:
            text += _line(f"{repo}-storage-ca-file", S3_CA_FILE)
        if not settings.s3_verify_tls:
            text += _line(f"{repo}-storage-verify-tls", "n")
    text += f"\n[{STANZA}]\n"
    text += _line("pg1-path", data_path)
    text += _line("pg1-socket-path", "/var/run/postgresql")
    text += _line("pg1-user", ADMIN_ROLE)
    return text


def archive_config(
    settings: ArchiveSettings, secrets: ArchiveSecrets, data_path: str
) -> pulumi.Output[str]:
    """pgbackrest.conf with the secrets in it: a secret."""
    return pulumi.Output.secret(
        pulumi.Output.all(
            secrets.s3_access_key_id, secrets.s3_secret_access_key, secrets.passphrase
        ).apply(lambda s: render_config(settings, data_path, s[0], s[1], s[2]))
    )


def config_uploads(
    settings: ArchiveSettings, config: pulumi.Input[str]
) -> list[docker.ContainerUploadArgs]:
    """The configuration and the object store's CA file, for every container that runs
    pgBackRest."""
    uploads = [docker.ContainerUploadArgs(file=CONFIG_FILE, content=config)]
    ca = s3_ca(settings)
    if ca is not None:
        uploads.append(docker.ContainerUploadArgs(file=S3_CA_FILE, content=ca))
    return uploads
