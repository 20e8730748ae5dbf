"""Redis's settings (``db-server:redis``): a container of the stack's own, or an external
server."""

import re
from dataclasses import dataclass

from settings.base import CONTAINER, EXTERNAL, MAX_REDIS_DATABASES, PROJECT_NAME, REDIS_PORT
from settings.service import ServerSettings

_REDIS_SIZE = re.compile(r"[1-9][0-9]*(kb|mb|gb)?", re.IGNORECASE)
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


def redis_size_bytes(size: str) -> int:
    """Bytes in a Redis size such as ``256mb``."""
    match = _REDIS_SIZE.fullmatch(size)
    if match is None:
        raise ValueError(f"not a Redis size: {size!r}")
    unit = (match.group(1) or "").lower()
    return int(size[: len(size) - len(unit)]) * _REDIS_SIZE_UNITS[unit]


@dataclass(frozen=True)
class RedisSettings(ServerSettings):
    """Redis: a container of the stack's own, or an external server."""

    KEY = "redis"
    PORT = REDIS_PORT
    CONTAINER_ONLY = (
        "image",
        "container_name",
        "host_port",
        "volume",
        "data_path",
        "memory_mb",
        "maxmemory",
        "maxmemory_policy",
        "appendfsync",
    )
    EXTERNAL_ONLY = ("admin_host", "admin_port", "host", "port", "admin_user", "tls", "ca_file")

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

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.mode not in (CONTAINER, EXTERNAL):
            return problems
        prefix = f"{PROJECT_NAME}:redis"
        if not _REDIS_SIZE.fullmatch(self.maxmemory):
            problems.append(
                f"{prefix}.maxmemory: must be a size like 256mb or 1gb, got {self.maxmemory!r}"
            )
        elif (
            self.memory_mb is not None
            and redis_size_bytes(self.maxmemory) >= self.memory_mb * 1024**2
        ):
            problems.append(
                f"{prefix}.maxmemory: {self.maxmemory} does not fit under the container's "
                f"memory_mb {self.memory_mb}; leave room for Redis's own overhead"
            )
        if not 2 <= self.databases <= MAX_REDIS_DATABASES:
            problems.append(
                f"{prefix}.databases: must be in 2-{MAX_REDIS_DATABASES}, got {self.databases}"
            )
        if self.maxmemory_policy not in _EVICTION_POLICIES:
            problems.append(
                f"{prefix}.maxmemory_policy: must be one of "
                f"{', '.join(sorted(_EVICTION_POLICIES))}, got {self.maxmemory_policy!r}"
            )
        if self.appendfsync not in _APPENDFSYNC:
            problems.append(
                f"{prefix}.appendfsync: must be one of always, everysec, no, "
                f"got {self.appendfsync!r}"
            )
        if self.external and self.ca_file is not None and not self.tls:
            problems.append(f"{prefix}.ca_file: applies with tls: true only")
        return problems
