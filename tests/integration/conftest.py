"""Fixtures for integration tests against a real Docker engine.

The engine, the images and the CLI come from the fixtures in ``tests/conftest.py``.

Containers and volumes get unique ``dbs-test-`` names, ports are published on 127.0.0.1 only
(Docker picks a free one), and everything a test creates is removed afterwards, pass or fail.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
import pytest
import redis
from psycopg.rows import TupleRow
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import docker_cli

NAME_PREFIX = "dbs-test-"
# How long a server may take to start accepting connections before a test gives up.
START_TIMEOUT_S = 60.0

T = TypeVar("T")


def unique_name(purpose: str) -> str:
    """A container or volume name no other test (or test run) uses."""
    return f"{NAME_PREFIX}{purpose}-{uuid.uuid4().hex[:8]}"


def retry(
    attempt: Callable[[], T],
    *,
    what: str,
    check_alive: Callable[[], None],
    timeout: float = START_TIMEOUT_S,
) -> T:
    """Calls ``attempt`` until it stops raising, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    for _ in range(int(timeout * 4)):
        try:
            return attempt()
        except Exception as error:  # the server is not up yet: any client error means "retry"
            last_error = error
        check_alive()
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready within {timeout:.0f} s; last error: {last_error!r}")


@dataclass
class Container:
    """A running container, as the tests see it."""

    name: str

    def host_port(self, container_port: int) -> int:
        """The 127.0.0.1 port Docker published ``container_port`` on."""
        mapping = docker_cli("port", self.name, f"{container_port}/tcp").split()[0]
        host, _, port = mapping.rpartition(":")
        assert host == "127.0.0.1", f"{self.name} published {container_port} on {host}"
        return int(port)

    def logs(self) -> str:
        """Everything the container wrote to stdout and stderr so far."""
        result = subprocess.run(
            ["docker", "logs", self.name], capture_output=True, text=True, timeout=30, check=True
        )
        return result.stdout + result.stderr

    def is_running(self) -> bool:
        """Whether the container's main process is still running."""
        return docker_cli("inspect", "--format", "{{.State.Running}}", self.name).strip() == "true"

    def exit_code(self) -> int:
        """Waits (bounded) for the container to exit and returns its exit code."""
        return int(docker_cli("wait", self.name, timeout=60).strip())

    def check_alive(self) -> None:
        """Fails the test with the container's logs if it has exited."""
        if not self.is_running():
            pytest.fail(f"container {self.name} exited; its logs:\n{self.logs()}")

    def stop(self, grace_s: int = 30) -> float:
        """``docker stop`` with a grace period; returns how many seconds the stop took."""
        start = time.monotonic()
        docker_cli("stop", "--time", str(grace_s), self.name, timeout=grace_s + 30)
        return time.monotonic() - start

    def kill(self, signal: str) -> None:
        """Sends ``signal`` to the container's PID 1, as an orchestrator would."""
        docker_cli("kill", "--signal", signal, self.name)

    def exec(self, *command: str) -> str:
        """Runs a command in the container and returns its stdout."""
        return docker_cli("exec", self.name, *command)

    def postgres_connect(
        self, *, user: str, password: str, dbname: str
    ) -> psycopg.Connection[TupleRow]:
        """A new autocommit connection through the published port (the way a user connects)."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.host_port(5432),
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=5,
            autocommit=True,
        )

    def wait_for_postgres(self, *, user: str, password: str, dbname: str) -> None:
        """Waits until a login through the published port works (init is over by then)."""

        def attempt() -> None:
            with self.postgres_connect(user=user, password=password, dbname=dbname) as conn:
                conn.execute("SELECT 1")

        retry(attempt, what=f"PostgreSQL in {self.name}", check_alive=self.check_alive)

    def redis_client(self, password: str | None) -> redis.Redis:
        """A client for the published Redis port (the way a user connects).

        It does not retry by itself: a refused login must fail at once, and start-up waits
        have their own bounded loop.
        """
        return redis.Redis(
            host="127.0.0.1",
            port=self.host_port(6379),
            password=password,
            socket_timeout=5,
            socket_connect_timeout=5,
            retry=Retry(NoBackoff(), retries=0),
        )

    def wait_for_redis(self, password: str | None) -> None:
        """Waits until a PING (with ``password``, if any) through the published port works."""

        def attempt() -> None:
            with self.redis_client(password) as client:
                client.ping()

        retry(attempt, what=f"Redis in {self.name}", check_alive=self.check_alive)


@dataclass
class DockerResources:
    """Creates containers and volumes, and removes all of them in ``cleanup``."""

    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def volume(self, purpose: str) -> str:
        """A new named volume."""
        name = unique_name(purpose)
        self.volumes.append(name)
        docker_cli("volume", "create", name)
        return name

    def run(
        self,
        image: str,
        *args: str,
        purpose: str,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[str] = (),
        publish: Sequence[int] = (),
        network: str | None = None,
    ) -> Container:
        """``docker run -d`` IMAGE ARGS with env, ``-v`` mounts and ports on 127.0.0.1 only;
        on ``network``, other containers there reach it by ``purpose`` as its alias."""
        name = unique_name(purpose)
        self.containers.append(name)
        options = ["--name", name]
        if network is not None:
            options += ["--network", network, "--network-alias", purpose]
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        for mount in mounts:
            options += ["--volume", mount]
        for port in publish:
            # An empty host port lets Docker pick a free one, on the loopback address only.
            options += ["--publish", f"127.0.0.1::{port}"]
        docker_cli("run", "--detach", *options, image, *args)
        return Container(name)

    def cleanup(self) -> None:
        """Removes every container (with its anonymous volumes) and named volume created."""
        errors = []
        for name in reversed(self.containers):
            result = subprocess.run(
                ["docker", "rm", "--force", "--volumes", name],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0 and "No such container" not in result.stderr:
                errors.append(result.stderr.strip())
        for name in self.volumes:
            result = subprocess.run(
                ["docker", "volume", "rm", "--force", name],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0:
                errors.append(result.stderr.strip())
        assert not errors, f"cleanup failed: {errors}"


@pytest.fixture
def resources(docker: None) -> Iterator[DockerResources]:
    """Containers and volumes for one test, removed when it ends."""
    created = DockerResources()
    yield created
    created.cleanup()


@pytest.fixture(scope="module")
def module_resources(docker: None) -> Iterator[DockerResources]:
    """Containers and volumes shared by a module's tests, removed when the module ends."""
    created = DockerResources()
    yield created
    created.cleanup()
