"""Continuous backup (``db-server:archive``): pgBackRest archives PostgreSQL's WAL as it is
written and takes base backups on a schedule, into a repository on a volume of this host, one in
S3-compatible object storage, or both, so the cluster can be restored to any second."""

import os
import re
from dataclasses import dataclass

from settings.base import DOCKER_NAME, PROJECT_NAME

URI_STYLES = ("host", "path")

_ENDPOINT = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}(:?\d{2})?|Z)")


@dataclass(frozen=True)
class ArchiveSettings:
    """pgBackRest beside the PostgreSQL container: WAL archiving, base backups, retention, restore
    drills. Its repositories: ``local`` (a volume) and ``s3_*`` (object storage), one or both."""

    enabled: bool = False
    """Archive WAL and take base backups; the server's image gets pgBackRest (a derived image
    built from ``db-server:postgres.image`` with ``images/postgres-archive/Dockerfile``)."""

    archive_timeout_seconds: int = 60
    """A WAL segment is closed and archived at least this often while anything is written:
    the most a lost host can lose of committed work, beyond the archive's own lag."""

    backup_interval_seconds: int = 86400
    """Time between base backups: a differential one (what changed since the last full)."""

    full_interval_seconds: int = 604800
    """A full backup instead when the newest full one is older than this."""

    retention_full: int = 2
    """Full backups kept in each repository; older ones, their differentials and the WAL only
    they need, are expired after each backup."""

    drill_interval_seconds: int = 86400
    """Time between restore drills: the newest backup and its WAL restored into a scratch
    server beside the live one (never the live one), started and checked."""

    queue_max_mb: int = 4096
    """WAL that may wait for an unreachable repository before pgBackRest drops it to keep
    ``pg_wal`` from filling the disk (and stopping every project): a gap in point-in-time
    recovery, never an outage. Alerts fire long before."""

    local: bool = True
    """Keep a repository on a volume of this host (``volume``): fast restores, but it dies with
    the host's disk."""

    local_encrypt: bool = False
    """Encrypt the local repository too (with ``db-server:archive_passphrase``)."""

    volume: str | None = None
    """The local repository's volume. By default named after PostgreSQL's volume, ``_pgdata``
    becoming ``_pgbackrest``."""

    container_name: str | None = None
    """The pgBackRest container. By default named after PostgreSQL's, ``-postgres`` becoming
    ``-pgbackrest``."""

    s3_endpoint: str | None = None
    """Object storage: ``host`` or ``host:port`` of an S3-compatible API (AWS S3, Backblaze
    B2, Cloudflare R2, Wasabi, MinIO, ...), always over TLS. Set, it adds the repository."""

    s3_bucket: str | None = None
    """The bucket, made beforehand."""

    s3_region: str = "us-east-1"
    """The bucket's region (what the service's signing expects)."""

    s3_path: str | None = None
    """Where in the bucket; by default ``/db-server/<stack>``, so stacks sharing a bucket keep
    apart."""

    s3_uri_style: str = "host"
    """``host`` (bucket.endpoint, AWS) or ``path`` (endpoint/bucket, most self-hosted ones)."""

    s3_ca_file: str | None = None
    """PEM file of the CA that signed the endpoint's certificate, where it is not a public one."""

    s3_verify_tls: bool = True
    """Check the endpoint's certificate. Off only for a test bench."""

    s3_encrypt: bool = True
    """Encrypt everything before it leaves the host (pgBackRest's AES-256), with
    ``db-server:archive_passphrase``."""

    restore: str | None = None
    """Rebuilding on a new host: ``latest`` (or a time, ``2026-12-01 15:04:05+00``) fills a data
    volume that is made empty (the server's, and Redis's from the object store) from the archive
    before the servers first start. Never over a volume that holds data; unset, a new empty
    volume beside an archive that holds this stack's backups stops `up`."""

    @property
    def s3(self) -> bool:
        """Whether the object-storage repository is configured."""
        return self.s3_endpoint is not None

    @property
    def encrypts(self) -> bool:
        return (self.s3 and self.s3_encrypt) or (self.local and self.local_encrypt)

    def problems(self) -> list[str]:
        """What is wrong with these settings, each naming its field."""
        prefix = f"{PROJECT_NAME}:archive"
        if not self.enabled:
            return []
        problems = []
        for name, least in (
            ("archive_timeout_seconds", 10),
            ("backup_interval_seconds", 60),
            ("full_interval_seconds", 60),
            ("retention_full", 1),
            ("drill_interval_seconds", 60),
            ("queue_max_mb", 64),
        ):
            if getattr(self, name) < least:
                problems.append(
                    f"{prefix}.{name}: must be at least {least}, got {getattr(self, name)}"
                )
        if self.full_interval_seconds < self.backup_interval_seconds:
            problems.append(
                f"{prefix}.full_interval_seconds: {self.full_interval_seconds} is shorter than "
                f"backup_interval_seconds {self.backup_interval_seconds}"
            )
        if not self.local and not self.s3:
            problems.append(
                f"{prefix}: no repository: keep local true, or set s3_endpoint and s3_bucket"
            )
        for name in ("container_name", "volume"):
            value = getattr(self, name)
            if value is not None and not DOCKER_NAME.fullmatch(value):
                problems.append(f"{prefix}.{name}: not a Docker name: {value!r}")
        if self.restore is not None and not (
            self.restore == "latest" or _TIME.fullmatch(self.restore)
        ):
            problems.append(
                f"{prefix}.restore: must be latest or a time like 2026-12-01 15:04:05+00, "
                f"got {self.restore!r}"
            )
        if self.s3:
            problems.extend(self._s3_problems(prefix))
        else:
            for name in ("s3_bucket", "s3_ca_file"):
                if getattr(self, name) is not None:
                    problems.append(f"{prefix}.{name}: applies with s3_endpoint only")
        return problems

    def _s3_problems(self, prefix: str) -> list[str]:
        problems = []
        if not _ENDPOINT.fullmatch(self.s3_endpoint or ""):
            problems.append(
                f"{prefix}.s3_endpoint: must be host or host:port (TLS is always used), "
                f"got {self.s3_endpoint!r}"
            )
        if self.s3_bucket is None:
            problems.append(f"{prefix}.s3_bucket: must be set with s3_endpoint")
        elif not _BUCKET.fullmatch(self.s3_bucket):
            problems.append(f"{prefix}.s3_bucket: not a bucket name: {self.s3_bucket!r}")
        if self.s3_uri_style not in URI_STYLES:
            problems.append(
                f"{prefix}.s3_uri_style: must be host or path, got {self.s3_uri_style!r}"
            )
        if self.s3_path is not None and not self.s3_path.startswith("/"):
            problems.append(f"{prefix}.s3_path: must start with /, got {self.s3_path!r}")
        if self.s3_ca_file is not None and not os.path.isfile(self.s3_ca_file):
            problems.append(f"{prefix}.s3_ca_file: no such file: {self.s3_ca_file!r}")
        return problems
