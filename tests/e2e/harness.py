"""A copy of the program, deployed for real: the Automation API, the real Pulumi engine, the
real docker, postgresql and random provider plugins, a real Docker engine and the local test
images.

Each ``E2EStack`` has its own work dir, ``file://`` backend, passphrase, name prefix (containers,
volumes, network) and free loopback ports, so suites and stacks never touch each other's
servers, and ``cleanup`` leaves nothing with its prefix behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psycopg
import pytest
import redis
import yaml
from psycopg.rows import TupleRow
from pulumi import automation as auto
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import copy_project, docker_cli, free_port

PLUGINS = {"docker": "5.1.0", "postgresql": "3.18.0", "random": "4.21.1"}
"""The provider plugins the program's SDKs ask for, and that the e2e suite runs."""

PASSPHRASE = "e2e-passphrase-not-a-secret"


def missing_plugins(pulumi_cli: str) -> list[str]:
    """``name version`` of each real provider plugin ``pulumi plugin ls`` does not list."""
    listed = subprocess.run(
        [pulumi_cli, "plugin", "ls", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    have = {(p["name"], p["version"]) for p in json.loads(listed.stdout or "[]") if p}
    return [f"{name} {version}" for name, version in PLUGINS.items() if (name, version) not in have]


@dataclass(frozen=True)
class ProjectLine:
    """One line of ``projects.py``."""

    name: str
    user: str
    redis_db: int | None
    connection_limit: int | None = None
    statement_timeout_ms: int | None = None

    def source(self) -> str:
        extra = "".join(
            f", {key}={value!r}"
            for key in ("connection_limit", "statement_timeout_ms")
            if (value := getattr(self, key)) is not None
        )
        return f"    Project({self.name!r}, user={self.user!r}, redis_db={self.redis_db}{extra}),\n"


@dataclass
class Names:
    """Every Docker name and host port a stack claims, all under one prefix."""

    prefix: str = field(default_factory=lambda: f"dbs-e2e-{uuid.uuid4().hex[:8]}")
    postgres_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)

    @property
    def network(self) -> str:
        return f"{self.prefix}-net"

    @property
    def postgres(self) -> str:
        return f"{self.prefix}-postgres"

    @property
    def redis(self) -> str:
        return f"{self.prefix}-redis"

    @property
    def pg_volume(self) -> str:
        return f"{self.prefix}_pgdata"

    @property
    def redis_volume(self) -> str:
        return f"{self.prefix}_redisdata"


@dataclass
class Events:
    """What one engine operation did to each resource: ``{urn: op}`` for every step."""

    ops: dict[str, str] = field(default_factory=dict)

    def record(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata is not None:
            self.ops[pre.metadata.urn] = pre.metadata.op.value

    def changed(self) -> dict[str, str]:
        """The steps that are not ``same`` (or a refresh's read)."""
        return {urn: op for urn, op in self.ops.items() if op not in ("same", "refresh")}


class E2EStack:
    """A stack of the real program in a copy of the project."""

    def __init__(
        self,
        root: Path,
        pulumi_cli: str,
        *,
        stack_name: str,
        names: Names,
        images: tuple[str, str],
        projects: Sequence[ProjectLine],
        settings: dict[str, dict[str, Any]] | None = None,
        backend_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``backend_url`` puts the state elsewhere than a ``file://`` folder of the stack's own
        (an ``s3://`` bucket); ``env`` adds to the CLI's environment (the object store's keys)."""
        self.names = names
        self.workdir = copy_project(root / "project")
        self.state_dir = root / "state"
        self.state_dir.mkdir()
        self.stack_name = stack_name
        self.printed: list[str] = []
        """Everything the engine printed to the user, over the stack's life."""
        postgres_image, redis_image = images
        self.config: dict[str, dict[str, Any]] = {
            "network": {"name": names.network, "create": True},
            "postgres": {
                "image": postgres_image,
                "container_name": names.postgres,
                "host_port": names.postgres_port,
                "volume": names.pg_volume,
            },
            "redis": {
                "image": redis_image,
                "container_name": names.redis,
                "host_port": names.redis_port,
                "volume": names.redis_volume,
                "appendfsync": "no",
            },
            "protection": {"protect": False, "retain_on_delete": False},
        }
        for key, values in (settings or {}).items():
            self.config.setdefault(key, {}).update(values)
        self.write_projects(projects)
        self.write_config()
        self.stack = auto.create_stack(
            stack_name,
            work_dir=str(self.workdir),
            opts=auto.LocalWorkspaceOptions(
                env_vars={
                    "PULUMI_BACKEND_URL": backend_url or f"file://{self.state_dir}",
                    "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                    "PULUMI_SKIP_UPDATE_CHECK": "true",
                    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                    **(env or {}),
                },
                pulumi_command=auto.PulumiCommand(root=str(Path(pulumi_cli).parent.parent)),
            ),
        )

    # -- the files a user edits ------------------------------------------------------------

    def write_projects(self, projects: Sequence[ProjectLine]) -> None:
        """Replaces the ``PROJECTS`` list in ``projects.py``, keeping the rest of the file."""
        path = self.workdir / "projects.py"
        text = path.read_text()
        head = text[: text.index("PROJECTS: list[Project] = [")]
        lines = "".join(p.source() for p in projects)
        path.write_text(f"{head}PROJECTS: list[Project] = [\n{lines}]\n")
        self.projects = list(projects)

    def write_config(self) -> None:
        """``Pulumi.<stack>.yaml`` with the stack's settings (the encryption salt kept)."""
        path = self.workdir / f"Pulumi.{self.stack_name}.yaml"
        existing = yaml.safe_load(path.read_text()) if path.exists() else {}
        existing = existing or {}
        # Secrets are set through the CLI (set_secret) and kept as it encrypted them.
        secrets = {
            key: value
            for key, value in (existing.get("config") or {}).items()
            if isinstance(value, dict) and "secure" in value
        }
        existing["config"] = secrets | {f"db-server:{k}": v for k, v in self.config.items()}
        path.write_text(yaml.safe_dump(existing, sort_keys=True))

    def reload_config(self) -> None:
        """Takes back what a command changed in ``Pulumi.<stack>.yaml`` itself (make pitr's
        switch), so the next change keeps it."""
        path = self.workdir / f"Pulumi.{self.stack_name}.yaml"
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        for key, value in config.items():
            if key.startswith("db-server:") and isinstance(value, dict) and "secure" not in value:
                self.config[key.removeprefix("db-server:")] = value

    def set(self, section: str, **values: Any) -> None:
        """Changes settings of one section, as a user edits the stack file."""
        self.config.setdefault(section, {}).update(values)
        self.write_config()

    def replace(self, section: str, **values: Any) -> None:
        """Replaces a whole section, e.g. a container's settings by an external server's."""
        self.config[section] = dict(values)
        self.write_config()

    def set_secret(self, key: str, value: str) -> None:
        """`pulumi config set --secret KEY VALUE`, the value passed on stdin, not argv."""
        self.stack.set_config(key, auto.ConfigValue(value, secret=True))

    # -- engine operations -----------------------------------------------------------------

    def _run(self, operation: Callable[..., Any], **kwargs: Any) -> tuple[Any, Events]:
        events = Events()
        try:
            result = operation(
                on_output=self.printed.append, on_event=events.record, color="never", **kwargs
            )
        except auto.CommandError as error:
            self.printed.append(str(error))
            raise
        return result, events

    def up(self, **kwargs: Any) -> tuple[auto.UpResult, Events]:
        return self._run(self.stack.up, **kwargs)

    def preview(self, **kwargs: Any) -> tuple[auto.PreviewResult, Events]:
        return self._run(self.stack.preview, diff=True, **kwargs)

    def destroy(self, **kwargs: Any) -> tuple[auto.DestroyResult, Events]:
        return self._run(self.stack.destroy, **kwargs)

    def pulumi(self, *args: str) -> str:
        """A plain CLI command on this stack, e.g. a documented `pulumi state` step."""
        result = self.stack._run_pulumi_cmd_sync([*args, "--stack", self.stack_name])
        return result.stdout

    def make(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """A Makefile verb in the stack's copy of the project, as its user runs it."""
        return subprocess.run(
            ["make", "--no-print-directory", "-f", str(self.workdir / "Makefile"), *args],
            cwd=self.workdir,
            env={**os.environ, **self.stack.workspace.env_vars},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def outputs(self) -> dict[str, Any]:
        """The stack outputs, secrets revealed (`pulumi stack output --show-secrets`)."""
        return {key: value.value for key, value in self.stack.outputs().items()}

    def state_file(self) -> str:
        """The state file as it is on disk."""
        (path,) = self.state_dir.glob(f".pulumi/stacks/*/{self.stack_name}.json")
        return path.read_text()

    def project_url(self, project: str, kind: str = "host_url") -> str:
        return str(self.outputs()[f"{project}_{kind}"])

    # -- cleanup ---------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Destroys the stack (protection lifted first) and removes whatever Docker still holds
        under the prefix (retained volumes). Returns what had to be removed by hand."""
        try:
            self.pulumi("state", "unprotect", "--all", "--yes")
            self.stack.destroy(color="never")
        except auto.CommandError as error:
            self.printed.append(str(error))
        # The state first: it may live in a container of the prefix (the test's object store).
        self.stack.workspace.remove_stack(self.stack_name, force=True)
        leftovers = remove_docker_leftovers(self.names.prefix)
        return [f"{kind} {name}" for kind, name in leftovers]


def remove_docker_leftovers(prefix: str) -> list[tuple[str, str]]:
    """Removes every container (with its anonymous volumes: the images declare their data
    directories volumes), volume and network whose name starts with prefix; returns them."""
    leftovers = docker_leftovers(prefix)
    for kind, name in leftovers:
        volumes = ["--volumes"] if kind == "container" else []
        subprocess.run(
            ["docker", kind, "rm", "--force", *volumes, name],
            capture_output=True,
            timeout=120,
            check=False,
        )
    return leftovers


def docker_leftovers(prefix: str) -> list[tuple[str, str]]:
    """``(kind, name)`` of every container, volume and network whose name starts with prefix."""
    found: list[tuple[str, str]] = []
    listings = {
        "container": ["ps", "--all", "--format", "{{.Names}}"],
        "volume": ["volume", "ls", "--format", "{{.Name}}"],
        "network": ["network", "ls", "--format", "{{.Name}}"],
    }
    for kind, args in listings.items():
        found += [(kind, n) for n in docker_cli(*args).split() if n.startswith(prefix)]
    return found


# -- what a user does with the URLs ----------------------------------------------------------


def libpq_url(url: str) -> str:
    """The program's SQLAlchemy URL as plain libpq/psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def connect(url: str, **overrides: Any) -> psycopg.Connection[TupleRow]:
    """Logs in with a project's (or the admin's) host URL, as an app on the host does."""
    return psycopg.connect(libpq_url(url), connect_timeout=5, autocommit=True, **overrides)


def connect_as(url: str, dbname: str) -> psycopg.Connection[TupleRow]:
    """Logs in with the URL's user and password, to another database."""
    return connect(url, dbname=dbname)


def redis_client(url: str, ca_file: str | None = None) -> redis.Redis:
    """A client for a Redis URL that reports a refusal at once instead of retrying it; a
    ``rediss://`` URL's server certificate is checked against ``ca_file``."""
    tls = {"ssl_ca_certs": ca_file} if ca_file else {}
    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=5,
        retry=Retry(NoBackoff(), retries=0),
        **tls,
    )


def password_of(url: str) -> str:
    password = urlsplit(url).password
    assert password, f"no password in a URL of scheme {urlsplit(url).scheme}"
    return unquote(password)


def run_on_network(network: str, image: str, *command: str) -> str:
    """Runs a client in a throwaway container on the stack's network, as a project's app does."""
    return docker_cli("run", "--rm", "--network", network, image, *command, timeout=120)


@contextmanager
def sql_error(sqlstate: str) -> Iterator[None]:
    """Expects a PostgreSQL error of that SQLSTATE (and fails on any other outcome)."""
    with pytest.raises(psycopg.Error) as raised:
        yield
    assert raised.value.sqlstate == sqlstate, f"expected SQLSTATE {sqlstate}, got {raised.value!r}"


@contextmanager
def login_refused(reason: str) -> Iterator[None]:
    """Expects the server to refuse a login with that reason (libpq gives no SQLSTATE for it)."""
    with pytest.raises(psycopg.OperationalError, match=f"FATAL:  {reason}"):
        yield


def container_id(name: str) -> str:
    return docker_cli("inspect", "--format", "{{.Id}}", name).strip()


def wait_for_login(url: str, timeout: float = 60.0) -> None:
    """Logs in until it works, for at most ``timeout`` seconds (a restart under way)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with connect(url) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def secrets_in(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets that appear in text, plain or URL-encoded."""
    return [
        name for name, value in secrets.items() if value in text or quote(value, safe="") in text
    ]
