"""Stack settings, parsed once from ``pulumi.Config`` into typed, validated objects.

Each section is one structured config key (``db-server:network``, ``db-server:postgres``,
``db-server:redis``, ``db-server:protection``). A stack may set any subset of a section's
fields; the rest take the defaults below, which ``Pulumi.yaml`` declares too. Unknown fields
are errors, so a typo never silently falls back to a default.
"""

import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

import pulumi

PROJECT_NAME = "db-server"

ADMIN_ROLE = "dbadmin"
"""The role that owns the server. It is the image's superuser and manages every project."""

POSTGRES_PORT = 5432
"""The port PostgreSQL listens on inside its container and on the Docker network."""

REDIS_PORT = 6379
"""The port Redis listens on inside its container and on the Docker network."""

PASSWORD_SPECIALS = "-_.~!#%^*+="
"""Special characters in generated passwords: safe in shells and config files, and some of them
need URL-encoding, which the URLs do."""

MAX_REDIS_DATABASES = 4096
"""Most numbered Redis databases a stack may ask for; each costs the server a little memory."""

MIN_ADMIN_PASSWORD_LENGTH = 16
"""Shortest ``admin_password`` accepted from config; the generated one has 40 characters."""


class InvalidInputError(pulumi.RunError, ValueError):
    """Bad settings or a bad project list, found before any resource is registered.

    A ``RunError`` so Pulumi prints the message alone instead of a stack trace.
    """

    def __init__(self, heading: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join([heading, *(f"  - {p}" for p in problems)]))


@dataclass(frozen=True)
class NetworkSettings:
    """The Docker network both containers join, shared with the nginx reverse proxy."""

    name: str = "nginx-network"
    """Network name; projects' containers reach the servers by container name on it."""

    create: bool = True
    """Create the network; false joins an existing one that this stack never deletes."""


CONTAINER = "container"
"""Service mode: the stack runs the server in a container of its own, on a volume of its own."""

EXTERNAL = "external"
"""Service mode: an existing server or a managed service; the stack manages only the projects'
roles, databases and users on it, and creates no container, volume or network for it."""

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class Endpoint:
    """Where a server is reached: by Pulumi and the Docker host, and by the projects."""

    admin_host: str
    """Where Pulumi (and ``*_host_url``) reaches the server."""

    admin_port: int
    """The port on ``admin_host``."""

    host: str
    """Where the projects' containers reach it (``*_url``)."""

    port: int
    """The port on ``host``."""


class _Service:
    """What a service's settings derive from its mode and addresses (both services alike)."""

    PORT: ClassVar[int]
    """The port the server listens on in its container."""

    mode: str
    container_name: str
    host_port: int
    admin_host: str | None
    admin_port: int | None
    host: str | None
    port: int | None
    admin_user: str | None

    @property
    def external(self) -> bool:
        return self.mode == EXTERNAL

    def endpoint(self) -> Endpoint:
        """Where Pulumi and the projects reach the server."""
        if not self.external:
            return Endpoint("127.0.0.1", self.host_port, self.container_name, self.PORT)
        admin_host = self.admin_host or ""
        admin_port = self.admin_port or self.PORT
        return Endpoint(admin_host, admin_port, self.host or admin_host, self.port or admin_port)

    @property
    def admin(self) -> str:
        """The admin user Pulumi logs in as."""
        return self.admin_user or ADMIN_ROLE


@dataclass(frozen=True)
class PostgresSettings(_Service):
    """PostgreSQL: a container of the stack's own, or an external server."""

    PORT = POSTGRES_PORT

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
        return _sibling_name(self.volume, "_pgdata", "_pgsocket")

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


@dataclass(frozen=True)
class RedisSettings(_Service):
    """Redis: a container of the stack's own, or an external server."""

    PORT = REDIS_PORT

    mode: str = CONTAINER
    """``container`` or ``external``."""

    image: str = "redis:8"
    """An image honouring the official image's contract, pinned to a major version."""

    container_name: str = "db-server-redis"
    """Container name, also the host name projects use on the network."""

    host_port: int = 6379
    """Port published on 127.0.0.1 of the Docker host."""

    volume: str = "db_server_redisdata"
    """Named volume that holds the append-only file and snapshots."""

    data_path: str = "/data"
    """Where the volume is mounted: the official image's working directory."""

    databases: int = 256
    """Numbered databases Redis keeps: project indexes run from 1 to this minus one (index 0 is
    where every connection starts before it selects, so it is no project's)."""

    memory_mb: int | None = None
    """Container memory limit in MiB; unset means no limit. Must exceed ``maxmemory``."""

    maxmemory: str = "256mb"
    """Redis ``maxmemory``, e.g. ``256mb`` or ``1gb``."""

    maxmemory_policy: str = "volatile-lru"
    """Eviction policy; the default evicts only keys with a TTL, never queues or sessions."""

    appendfsync: str = "everysec"
    """How often the append-only file is flushed to disk: ``always``, ``everysec`` or ``no``."""

    admin_host: str | None = None
    """External: where Pulumi connects."""

    admin_port: int | None = None
    """External: the port on ``admin_host``; 6379 when unset."""

    host: str | None = None
    """External: the host the projects connect to; ``admin_host`` when unset."""

    port: int | None = None
    """External: the port on ``host``; ``admin_port`` when unset."""

    admin_user: str | None = None
    """External: the ACL user Pulumi manages project users as (it needs the ``@admin``
    commands ``ACL`` and ``CLIENT``); ``dbadmin`` when unset. Its password is the secret
    ``db-server:redis_admin_password``."""

    tls: bool | None = None
    """External: connect with TLS (``rediss://`` URLs); false when unset."""

    ca_file: str | None = None
    """External, with TLS: PEM file of the CA that signed the server's certificate."""

    @property
    def use_tls(self) -> bool:
        return bool(self.tls) and self.external


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


@dataclass(frozen=True)
class Settings:
    """Everything the stack's config says, validated."""

    network: NetworkSettings
    postgres: PostgresSettings
    redis: RedisSettings
    backup: BackupSettings
    pooler: PoolerSettings
    metrics: MetricsSettings
    protection: ProtectionSettings
    admin_password: pulumi.Output[str] | None
    """``db-server:admin_password`` when set (a secret): the PostgreSQL admin's. Otherwise a
    random password is made for the container; an external server needs it set."""

    redis_admin_password: pulumi.Output[str] | None
    """``db-server:redis_admin_password`` when set (a secret), likewise for Redis."""


_Section = TypeVar("_Section")

_DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_REDIS_SIZE = re.compile(r"[1-9][0-9]*(kb|mb|gb)?", re.IGNORECASE)
_PG_PARAMETER = re.compile(r"[a-z_][a-z0-9_.]*")
_EVICTION_POLICIES = frozenset(
    {
        "noeviction",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    }
)
_APPENDFSYNC = frozenset({"always", "everysec", "no"})
_REDIS_SIZE_UNITS = {"": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


_SECTIONS = ("network", "postgres", "redis", "backup", "pooler", "metrics", "protection")
_SECRETS = ("admin_password", "redis_admin_password")


def _unknown_keys() -> list[str]:
    """Every ``db-server:*`` key the stack sets that the program does not read: a typo for a
    real section (``db-server:backups``) must not leave a stack silently unprotected."""
    known = sorted((*_SECTIONS, *_SECRETS))
    given = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    problems = []
    for key in sorted(k for k in given if k.startswith(f"{PROJECT_NAME}:")):
        name = key.removeprefix(f"{PROJECT_NAME}:")
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {PROJECT_NAME}:{close[0]}?" if close else ""
        problems.append(f"{key}: unknown setting (known: {', '.join(known)}){hint}")
    return problems


def load_settings(config: pulumi.Config) -> Settings:
    """Read and validate every setting; raise ``InvalidInputError`` listing all problems."""
    problems: list[str] = _unknown_keys()
    network = _parse_section(config, "network", NetworkSettings, problems)
    postgres = _parse_section(config, "postgres", PostgresSettings, problems)
    redis = _parse_section(config, "redis", RedisSettings, problems)
    backup = _parse_section(config, "backup", BackupSettings, problems)
    pooler = _parse_section(config, "pooler", PoolerSettings, problems)
    metrics = _parse_section(config, "metrics", MetricsSettings, problems)
    protection = _parse_section(config, "protection", ProtectionSettings, problems)
    backup = replace(
        backup,
        volume=backup.volume or _sibling_name(postgres.volume, "_pgdata", "_backups"),
        container_name=backup.container_name
        or _sibling_name(postgres.container_name, "-postgres", "-backup"),
    )
    pooler = replace(
        pooler,
        container_name=pooler.container_name
        or _sibling_name(postgres.container_name, "-postgres", "-pgbouncer"),
    )
    if not problems:
        problems.extend(_check_values(network, postgres, redis, backup))
        problems.extend(_check_modes(postgres, redis, backup))
        problems.extend(_check_extras(postgres, redis, pooler, metrics))
    problems.extend(_check_secret("admin_password", external=postgres.external))
    problems.extend(
        _check_secret("redis_admin_password", external=redis.external, generated_only=True)
    )
    if problems:
        raise InvalidInputError(f"Invalid {PROJECT_NAME} stack settings:", problems)
    return Settings(
        network=network,
        postgres=postgres,
        redis=redis,
        backup=backup,
        pooler=pooler,
        metrics=metrics,
        protection=protection,
        admin_password=config.get_secret("admin_password"),
        redis_admin_password=config.get_secret("redis_admin_password"),
    )


def _check_secret(name: str, *, external: bool, generated_only: bool = False) -> list[str]:
    """An admin password from config must be a secret, or it sits in clear in the stack file.
    An external server's admin password cannot be made up: it must be given, as it is. A
    container's is generated where ``generated_only``, so that it is safe in its scripts."""
    key = f"{PROJECT_NAME}:{name}"
    value = pulumi.runtime.config.get_config(key)
    if value is None:
        if external:
            return [
                f"{key}: must be set for an external server: pulumi config set --secret {name} ..."
            ]
        return []
    if generated_only and not external:
        return [f"{key}: applies to an external server only; the container's is generated"]
    if not pulumi.runtime.config.is_config_secret(key):
        return [
            f"{key}: must be set as a secret (pulumi config set --secret {name} ...); "
            "it is in clear in the stack's config file now"
        ]
    if not external and len(value) < MIN_ADMIN_PASSWORD_LENGTH:
        return [f"{key}: must be at least {MIN_ADMIN_PASSWORD_LENGTH} characters long"]
    return []


def _sibling_name(name: str, suffix: str, replacement: str) -> str:
    """``name`` with ``suffix`` replaced, or with ``replacement`` appended where it has none."""
    return name.removesuffix(suffix) + replacement


def redis_size_bytes(size: str) -> int:
    """Bytes in a Redis size such as ``256mb``."""
    match = _REDIS_SIZE.fullmatch(size)
    if match is None:
        raise ValueError(f"not a Redis size: {size!r}")
    unit = (match.group(1) or "").lower()
    return int(size[: len(size) - len(unit)]) * _REDIS_SIZE_UNITS[unit]


def _parse_section(
    config: pulumi.Config, key: str, cls: type[_Section], problems: list[str]
) -> _Section:
    """Build one section from its structured config value, checking each field's type."""
    default = cls()
    try:
        raw = config.get_object(key)
    except pulumi.ConfigTypeError:
        problems.append(f"{PROJECT_NAME}:{key}: must be an object")
        return default
    if raw is None:
        return default
    if not isinstance(raw, dict):
        problems.append(f"{PROJECT_NAME}:{key}: must be an object, got {raw!r}")
        return default

    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for unknown in sorted(set(raw) - known):
        problems.append(
            f"{PROJECT_NAME}:{key}.{unknown}: unknown setting (known: {', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {}
    for name in known & set(raw):
        value = raw[name]
        if _has_type(value, hints[name]):
            values[name] = value
        else:
            problems.append(
                f"{PROJECT_NAME}:{key}.{name}: must be {_describe(hints[name])}, got {value!r}"
            )
    return cls(**values)


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a config value (parsed JSON) matches a field's annotation."""
    if isinstance(hint, types.UnionType):
        return any(_has_type(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        # JSON has no separate integer type, and True is an int to Python: reject both.
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    raise TypeError(f"no config check for {hint!r}")


def _describe(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is dict:
        return "an object of strings"
    return {bool: "a boolean", int: "an integer", str: "a string"}[hint]


_CONTAINER_ONLY = {
    "postgres": (
        "image",
        "container_name",
        "host_port",
        "volume",
        "data_path",
        "memory_mb",
        "shm_size_mb",
        "parameters",
    ),
    "redis": (
        "image",
        "container_name",
        "host_port",
        "volume",
        "data_path",
        "memory_mb",
        "maxmemory",
        "maxmemory_policy",
        "appendfsync",
    ),
}
_EXTERNAL_ONLY = {
    "postgres": (
        "admin_host",
        "admin_port",
        "host",
        "port",
        "admin_user",
        "database",
        "sslmode",
        "ca_file",
        "superuser",
    ),
    "redis": ("admin_host", "admin_port", "host", "port", "admin_user", "tls", "ca_file"),
}


def _check_modes(
    postgres: PostgresSettings, redis: RedisSettings, backup: BackupSettings
) -> list[str]:
    """Each service's mode, and that only the settings of its mode are set."""
    problems: list[str] = []
    for key, service in (("postgres", postgres), ("redis", redis)):
        prefix = f"{PROJECT_NAME}:{key}"
        default = type(service)()
        if service.mode not in (CONTAINER, EXTERNAL):
            problems.append(
                f"{prefix}.mode: must be {CONTAINER} or {EXTERNAL}, got {service.mode!r}"
            )
            continue
        if service.external:
            unused, other = _CONTAINER_ONLY[key], CONTAINER
        else:
            unused, other = _EXTERNAL_ONLY[key], EXTERNAL
        for name in unused:
            if getattr(service, name) != getattr(default, name):
                problems.append(f"{prefix}.{name}: applies to mode {other} only")
        if not service.external:
            continue
        if not service.admin_host:
            problems.append(f"{prefix}.admin_host: must be set for mode {EXTERNAL}")
        for name in ("admin_port", "port"):
            port = getattr(service, name)
            if port is not None and not 1 <= port <= 65535:
                problems.append(f"{prefix}.{name}: must be in 1-65535, got {port}")
        if service.ca_file is not None and not os.path.isfile(service.ca_file):
            problems.append(f"{prefix}.ca_file: no such file: {service.ca_file!r}")
    if postgres.external:
        if postgres.sslmode is not None and postgres.sslmode not in SSL_MODES:
            problems.append(
                f"{PROJECT_NAME}:postgres.sslmode: must be one of {', '.join(SSL_MODES)}, "
                f"got {postgres.sslmode!r}"
            )
        elif postgres.ssl.startswith("verify-") and postgres.ca_file is None:
            problems.append(
                f"{PROJECT_NAME}:postgres.ca_file: must be set for sslmode {postgres.ssl}: "
                "the CA that signed the server's certificate"
            )
    if redis.external and redis.ca_file is not None and not redis.tls:
        problems.append(f"{PROJECT_NAME}:redis.ca_file: applies with tls: true only")
    if backup.enabled and (postgres.external or redis.external):
        problems.append(
            f"{PROJECT_NAME}:backup.enabled: scheduled backups run for servers in mode "
            f"{CONTAINER} only; back an external server up with its own tools "
            "(a managed service's snapshots, pg_dump)"
        )
    return problems


def _check_extras(
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
    if not _DOCKER_NAME.fullmatch(pooler.container_name or ""):
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


def _check_values(
    network: NetworkSettings,
    postgres: PostgresSettings,
    redis: RedisSettings,
    backup: BackupSettings,
) -> list[str]:
    """Range and consistency checks, once every field has the right type."""
    problems: list[str] = []
    if not _DOCKER_NAME.fullmatch(network.name):
        problems.append(f"{PROJECT_NAME}:network.name: not a Docker network name: {network.name!r}")
    for key, service in (("postgres", postgres), ("redis", redis)):
        prefix = f"{PROJECT_NAME}:{key}"
        if not service.image.strip():
            problems.append(f"{prefix}.image: must not be empty")
        if not 1 <= service.host_port <= 65535:
            problems.append(f"{prefix}.host_port: must be in 1-65535, got {service.host_port}")
        for name in ("container_name", "volume"):
            if not _DOCKER_NAME.fullmatch(getattr(service, name)):
                problems.append(f"{prefix}.{name}: not a Docker name: {getattr(service, name)!r}")
        if not service.data_path.startswith("/"):
            problems.append(
                f"{prefix}.data_path: must be an absolute path, got {service.data_path!r}"
            )
        if service.memory_mb is not None and service.memory_mb < 64:
            problems.append(f"{prefix}.memory_mb: must be at least 64, got {service.memory_mb}")

    for name in ("host_port", "container_name", "volume"):
        if getattr(postgres, name) == getattr(redis, name):
            problems.append(
                f"{PROJECT_NAME}:postgres.{name} and {PROJECT_NAME}:redis.{name} are both "
                f"{getattr(postgres, name)!r}: each service needs its own"
            )

    if postgres.shm_size_mb < 64:
        problems.append(
            f"{PROJECT_NAME}:postgres.shm_size_mb: must be at least 64, got {postgres.shm_size_mb}"
        )
    for parameter in sorted(postgres.parameters):
        if not _PG_PARAMETER.fullmatch(parameter):
            problems.append(
                f"{PROJECT_NAME}:postgres.parameters: not a server parameter name: {parameter!r}"
            )

    if not _REDIS_SIZE.fullmatch(redis.maxmemory):
        problems.append(
            f"{PROJECT_NAME}:redis.maxmemory: must be a size like 256mb or 1gb, "
            f"got {redis.maxmemory!r}"
        )
    elif (
        redis.memory_mb is not None
        and redis_size_bytes(redis.maxmemory) >= redis.memory_mb * 1024**2
    ):
        problems.append(
            f"{PROJECT_NAME}:redis.maxmemory: {redis.maxmemory} does not fit under the container's "
            f"memory_mb {redis.memory_mb}; leave room for Redis's own overhead"
        )
    if not 2 <= redis.databases <= MAX_REDIS_DATABASES:
        problems.append(
            f"{PROJECT_NAME}:redis.databases: must be in 2-{MAX_REDIS_DATABASES}, "
            f"got {redis.databases}"
        )
    if redis.maxmemory_policy not in _EVICTION_POLICIES:
        problems.append(
            f"{PROJECT_NAME}:redis.maxmemory_policy: must be one of "
            f"{', '.join(sorted(_EVICTION_POLICIES))}, got {redis.maxmemory_policy!r}"
        )
    if redis.appendfsync not in _APPENDFSYNC:
        problems.append(
            f"{PROJECT_NAME}:redis.appendfsync: must be one of always, everysec, no, "
            f"got {redis.appendfsync!r}"
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
        if not isinstance(value, str) or not _DOCKER_NAME.fullmatch(value):
            problems.append(f"{prefix}.{name}: not a Docker name: {value!r}")
        elif value in (getattr(postgres, name), getattr(redis, name)):
            problems.append(f"{prefix}.{name}: {value!r} is already the database server's")
    return problems
