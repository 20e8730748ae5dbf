"""PostgreSQL's settings (``db-server:postgres``): a container of the stack's own, or an
external server."""

import re
from dataclasses import dataclass, field

from settings.base import CONTAINER, EXTERNAL, POSTGRES_PORT, PROJECT_NAME, SSL_MODES, sibling_name
from settings.service import ServerSettings

_PG_PARAMETER = re.compile(r"[a-z_][a-z0-9_.]*")


@dataclass(frozen=True)
class PostgresSettings(ServerSettings):
    """PostgreSQL: a container of the stack's own, or an external server."""

    KEY = "postgres"
    PORT = POSTGRES_PORT
    CONTAINER_ONLY = (
        "image",
        "container_name",
        "host_port",
        "volume",
        "data_path",
        "memory_mb",
        "shm_size_mb",
        "parameters",
    )
    EXTERNAL_ONLY = (
        "admin_host",
        "admin_port",
        "host",
        "port",
        "admin_user",
        "database",
        "sslmode",
        "ca_file",
        "superuser",
    )

    mode: str = CONTAINER
    """``container`` or ``external``."""

    image: str = "postgres:17"
    """An image honouring the official image's contract, pinned to a major version."""

    container_name: str = "db-server-postgres"
    """Container name, also the host name projects use on the network."""

    host_port: int = 5432
    """Port published on 127.0.0.1 of the Docker host."""

    volume: str = "db_server_pgdata"
    """Named volume that holds the cluster."""

    data_path: str = "/var/lib/postgresql/data"
    """Where the volume is mounted, and ``PGDATA``: the official 17 image's data directory."""

    memory_mb: int | None = None
    """Container memory limit in MiB; unset means no limit."""

    shm_size_mb: int = 256
    """Size of /dev/shm; Docker's 64 MiB default breaks parallel queries."""

    parameters: dict[str, str] = field(default_factory=dict)
    """Server parameters passed as ``-c name=value``, e.g. ``max_connections: "200"``."""

    admin_host: str | None = None
    """External: where Pulumi connects, e.g. the managed server's address or a tunnel's end."""

    admin_port: int | None = None
    """External: the port on ``admin_host``; 5432 when unset."""

    host: str | None = None
    """External: the host the projects connect to; ``admin_host`` when unset."""

    port: int | None = None
    """External: the port on ``host``; ``admin_port`` when unset."""

    admin_user: str | None = None
    """External: the admin role Pulumi logs in as (CREATEROLE and CREATEDB, no superuser
    needed); ``dbadmin`` when unset. Its password is the secret ``db-server:admin_password``."""

    database: str | None = None
    """External: the database the admin connects to; ``postgres`` when unset."""

    sslmode: str | None = None
    """External: libpq's ``sslmode`` for Pulumi and in the projects' URLs; ``verify-full``
    when unset."""

    ca_file: str | None = None
    """External: PEM file of the CA that signed the server's certificate, for ``verify-ca``
    and ``verify-full``; a path relative to the project directory or absolute."""

    superuser: bool | None = None
    """External: whether the admin is a superuser; false when unset, as on managed services."""

    @property
    def admin_database(self) -> str:
        return self.database or "postgres"

    @property
    def socket_volume(self) -> str:
        """The volume of the container's unix socket directory, named after ``volume``
        (``db_server_pgdata``: ``db_server_pgsocket``), shared with the backup container."""
        return sibling_name(self.volume, "_pgdata", "_pgsocket")

    @property
    def ssl(self) -> str:
        """libpq ``sslmode``: ``disable`` for the container, which is reached on loopback and
        on the Docker network only."""
        if not self.external:
            return "disable"
        return self.sslmode or "verify-full"

    @property
    def admin_is_superuser(self) -> bool:
        return bool(self.superuser) if self.external else True

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.mode not in (CONTAINER, EXTERNAL):
            return problems
        prefix = f"{PROJECT_NAME}:postgres"
        if self.shm_size_mb < 64:
            problems.append(f"{prefix}.shm_size_mb: must be at least 64, got {self.shm_size_mb}")
        for parameter in sorted(self.parameters):
            if not _PG_PARAMETER.fullmatch(parameter):
                problems.append(f"{prefix}.parameters: not a server parameter name: {parameter!r}")
        if self.external:
            if self.sslmode is not None and self.sslmode not in SSL_MODES:
                problems.append(
                    f"{prefix}.sslmode: must be one of {', '.join(SSL_MODES)}, got {self.sslmode!r}"
                )
            elif self.ssl.startswith("verify-") and self.ca_file is None:
                problems.append(
                    f"{prefix}.ca_file: must be set for sslmode {self.ssl}: "
                    "the CA that signed the server's certificate"
                )
        return problems
