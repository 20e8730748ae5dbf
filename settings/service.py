"""What both servers' settings share: where a server is reached, its mode (a container of the
stack's own, or an external server), and the checks every server's settings pass."""

import os
from dataclasses import dataclass
from typing import ClassVar

from settings.base import ADMIN_ROLE, CONTAINER, DOCKER_NAME, EXTERNAL, PROJECT_NAME


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


class ServerSettings:
    """What a service's settings derive from its mode and addresses (both services alike)."""

    KEY: ClassVar[str]
    """The section's config key under ``db-server:``."""

    PORT: ClassVar[int]
    """The port the server listens on in its container."""

    CONTAINER_ONLY: ClassVar[tuple[str, ...]]
    """Fields that apply to mode container only."""

    EXTERNAL_ONLY: ClassVar[tuple[str, ...]]
    """Fields that apply to mode external only."""

    mode: str
    image: str
    container_name: str
    host_port: int
    volume: str
    data_path: str
    memory_mb: int | None
    ca_file: str | None
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

    def problems(self) -> list[str]:
        """What is wrong with these settings, each naming its key and field; a subclass adds
        its own."""
        prefix = f"{PROJECT_NAME}:{self.KEY}"
        if self.mode not in (CONTAINER, EXTERNAL):
            return [f"{prefix}.mode: must be {CONTAINER} or {EXTERNAL}, got {self.mode!r}"]
        problems = []
        if not self.image.strip():
            problems.append(f"{prefix}.image: must not be empty")
        if not 1 <= self.host_port <= 65535:
            problems.append(f"{prefix}.host_port: must be in 1-65535, got {self.host_port}")
        for name in ("container_name", "volume"):
            if not DOCKER_NAME.fullmatch(getattr(self, name)):
                problems.append(f"{prefix}.{name}: not a Docker name: {getattr(self, name)!r}")
        if not self.data_path.startswith("/"):
            problems.append(f"{prefix}.data_path: must be an absolute path, got {self.data_path!r}")
        if self.memory_mb is not None and self.memory_mb < 64:
            problems.append(f"{prefix}.memory_mb: must be at least 64, got {self.memory_mb}")
        # Only the settings of its mode: a container field on an external server is a mistake.
        default = type(self)()
        unused, other = (
            (self.CONTAINER_ONLY, CONTAINER) if self.external else (self.EXTERNAL_ONLY, EXTERNAL)
        )
        for name in unused:
            if getattr(self, name) != getattr(default, name):
                problems.append(f"{prefix}.{name}: applies to mode {other} only")
        if self.external:
            if not self.admin_host:
                problems.append(f"{prefix}.admin_host: must be set for mode {EXTERNAL}")
            for name in ("admin_port", "port"):
                port = getattr(self, name)
                if port is not None and not 1 <= port <= 65535:
                    problems.append(f"{prefix}.{name}: must be in 1-65535, got {port}")
            if self.ca_file is not None and not os.path.isfile(self.ca_file):
                problems.append(f"{prefix}.ca_file: no such file: {self.ca_file!r}")
        return problems


def check_pair(postgres: ServerSettings, redis: ServerSettings) -> list[str]:
    """What the two servers may not share."""
    return [
        f"{PROJECT_NAME}:postgres.{name} and {PROJECT_NAME}:redis.{name} are both "
        f"{getattr(postgres, name)!r}: each service needs its own"
        for name in ("host_port", "container_name", "volume")
        if getattr(postgres, name) == getattr(redis, name)
    ]
