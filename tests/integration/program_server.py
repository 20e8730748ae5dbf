"""Run the PostgreSQL and Redis containers exactly as the program configures them.

Without the docker provider plugin (CI machines here cannot have it; the e2e suite runs the real
one where it is installed), this does what the providers would with the program's own inputs
(the Redis users through the program's own dynamic provider): it reads the Container inputs
``__main__.py`` registers (run under mocks, with test names, ports and the local images), then
creates each container with the docker CLI the way the provider does: create, upload the
``uploads`` as a tar extracted at ``/``, start, and wait for the healthcheck.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import redis

from providers.redis_user import _RedisUserProvider
from tests.conftest import ROOT, docker_cli, free_port
from tests.integration.conftest import Container
from tests.unit.conftest import MOCK_PASSWORD, MOCK_REDIS_PASSWORD, ProgramRunner

ADMIN_PASSWORD = MOCK_PASSWORD
"""Every password the mocked program makes, the admin's and Redis's included."""

HEALTHY_TIMEOUT_S = 180
"""The program's own ``wait_timeout``: how long `pulumi up` would wait."""


@dataclass
class Server:
    """The containers, their network and volumes, named for this test run."""

    postgres: Container
    redis: Container
    backup: Container | None
    """The scheduled backup container, when the server was started with a backup interval."""
    network: str
    postgres_port: int
    redis_port: int
    inputs: dict[str, dict[str, Any]]
    """Container inputs the program registered, by container name."""
    outputs: dict[str, Any]
    """The stack outputs the program exported."""
    became_healthy_and_logged_in: bool


def _program(
    overrides: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The Container inputs the program registers (by container name, each image's name in
    ``image``), the inputs of its Redis users, and the stack outputs it exports."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.syspath_prepend(str(ROOT))
        monkeypatch.chdir(ROOT)
        deployment = ProgramRunner(monkeypatch)("dev", overrides)
    # The mocks give each RemoteImage the id sha256:<its resource name>.
    images = {
        f"sha256:{r.name}": r.inputs["name"]
        for r in deployment.resources
        if r.type == "docker:index/remoteImage:RemoteImage"
    }
    containers = {}
    for r in deployment.resources:
        if r.type == "docker:index/container:Container":
            containers[r.inputs["name"]] = {**r.inputs, "image": images[r.inputs["image"]]}
    redis_users = [r.inputs for r in deployment.resources if r.name.endswith("-redis-user")]
    return containers, redis_users, deployment.outputs


def _create_like_the_provider(inputs: dict[str, Any]) -> Container:
    """docker create + upload + start, with every setting the program gave the container."""
    name = inputs["name"]
    args = ["create", "--name", name, "--restart", inputs["restart"]]
    if "healthcheck" in inputs:
        health = inputs["healthcheck"]
        kind, command = health["tests"]
        assert kind == "CMD-SHELL"
        args += [
            f"--health-cmd={command}",
            f"--health-interval={health['interval']}",
            f"--health-timeout={health['timeout']}",
            f"--health-retries={int(health['retries'])}",
            f"--health-start-period={health['startPeriod']}",
        ]
        # No start interval: the program sets none (Docker 20.10 refuses it), and a unit test
        # says so; anything else the program set here would fail the assertion below.
        assert set(health) == {"tests", "interval", "timeout", "retries", "startPeriod"}
    if "stopSignal" in inputs:
        args += ["--stop-signal", inputs["stopSignal"]]
    args += ["--stop-timeout", str(int(inputs["stopTimeout"]))]
    args += ["--log-driver", inputs["logDriver"]]
    args += [f"--log-opt={key}={value}" for key, value in inputs["logOpts"].items()]
    args += [f"--env={env}" for env in inputs.get("envs", [])]
    if "shmSize" in inputs:
        args += ["--shm-size", f"{int(inputs['shmSize'])}m"]
    if inputs.get("memory"):
        args += ["--memory", f"{int(inputs['memory'])}m"]
    if inputs.get("memorySwap"):
        args += ["--memory-swap", f"{int(inputs['memorySwap'])}m"]
    for port in inputs.get("ports", []):
        args += [
            "--publish",
            f"{port['ip']}:{int(port['external'])}:{int(port['internal'])}/{port['protocol']}",
        ]
    for volume in inputs["volumes"]:
        mode = ":ro" if volume.get("readOnly") else ""
        args += ["--volume", f"{volume['volumeName']}:{volume['containerPath']}{mode}"]
    (network,) = inputs["networksAdvanced"]
    args += ["--network", network["name"]]
    args += [f"--network-alias={alias}" for alias in network.get("aliases", [])]
    command = list(inputs.get("command", []))
    if "entrypoints" in inputs:
        entrypoint, *rest = inputs["entrypoints"]
        args += ["--entrypoint", entrypoint]
        command = [*rest, *command]
    docker_cli(*args, inputs["image"], *command)

    # The provider uploads a tar whose entries carry the full path, extracted at "/",
    # mode 0744 when executable and 0644 otherwise.
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for upload in inputs["uploads"]:
            content = upload["content"].encode()
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size = len(content)
            info.mode = 0o744 if upload.get("executable") else 0o644
            tar.addfile(info, io.BytesIO(content))
    subprocess.run(
        ["docker", "cp", "-", f"{name}:/"],
        input=archive.getvalue(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    docker_cli("start", name)
    return Container(name)


def _health(container: Container) -> str:
    return docker_cli("inspect", "--format", "{{.State.Health.Status}}", container.name).strip()


def _wait_healthy(container: Container) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while _health(container) != "healthy":
        container.check_alive()
        assert time.monotonic() < deadline, f"{container.name} not healthy:\n{container.logs()}"
        time.sleep(0.2)


def admin_connection(server: Server, dbname: str = "postgres") -> psycopg.Connection[Any]:
    """An autocommit connection as dbadmin through the published port."""
    return psycopg.connect(
        host="127.0.0.1",
        port=server.postgres_port,
        user="dbadmin",
        password=MOCK_PASSWORD,
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    )


def redis_client(server: Server, index: int = 0) -> redis.Redis:
    """The Redis admin's client for database ``index`` through the published port."""
    return redis.Redis(
        host="127.0.0.1",
        port=server.redis_port,
        username="dbadmin",
        password=ADMIN_PASSWORD,
        db=index,
        socket_timeout=5,
    )


@contextlib.contextmanager
def program_server(
    postgres_image: str, redis_image: str, backup_interval_s: int | None = None
) -> Iterator[Server]:
    """The containers as the program configures them, on their own network and volumes; with
    ``backup_interval_s``, the scheduled backup container too."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "network": f"dbs-test-net-{suffix}",
        "postgres": f"dbs-test-pg-{suffix}",
        "redis": f"dbs-test-redis-{suffix}",
        "backup": f"dbs-test-backup-{suffix}",
    }
    postgres_port, redis_port = free_port(), free_port()
    inputs, redis_users, outputs = _program(
        {
            "db-server:network": {"name": names["network"], "create": True},
            "db-server:postgres": {
                "image": postgres_image,
                "container_name": names["postgres"],
                "host_port": postgres_port,
                "volume": f"dbs_test_pgdata_{suffix}",
                "memory_mb": 512,
            },
            "db-server:redis": {
                "image": redis_image,
                "container_name": names["redis"],
                "host_port": redis_port,
                "volume": f"dbs_test_redisdata_{suffix}",
            },
            "db-server:backup": {
                "enabled": backup_interval_s is not None,
                "interval_seconds": backup_interval_s or 86400,
                "container_name": names["backup"],
                "volume": f"dbs_test_backups_{suffix}",
            },
        }
    )
    volumes = {v["volumeName"] for spec in inputs.values() for v in spec["volumes"]}
    docker_cli("network", "create", names["network"])
    try:
        postgres = _create_like_the_provider(inputs[names["postgres"]])
        redis_container = _create_like_the_provider(inputs[names["redis"]])
        # What the postgresql provider does next: dial as soon as the container is healthy.
        _wait_healthy(postgres)
        with psycopg.connect(
            host="127.0.0.1",
            port=postgres_port,
            user="dbadmin",
            password=MOCK_PASSWORD,
            dbname="postgres",
            connect_timeout=5,
        ) as first:
            logged_in = first.execute("SELECT 1").fetchone() == (1,)
        _wait_healthy(redis_container)
        # The projects' Redis users, made by the program's own dynamic provider; its create
        # makes each password, which the URLs then carry, as the engine's outputs would.
        for user in redis_users:
            created = _RedisUserProvider().create(user).outs
            assert created is not None
            made = created["password"]
            mocked = f"//{user['username']}:{MOCK_REDIS_PASSWORD}@"
            outputs = {
                key: value.replace(mocked, f"//{user['username']}:{made}@")
                if isinstance(value, str)
                else value
                for key, value in outputs.items()
            }
        backup = (
            _create_like_the_provider(inputs[names["backup"]])
            if backup_interval_s is not None
            else None
        )
        yield Server(
            postgres=postgres,
            redis=redis_container,
            backup=backup,
            network=names["network"],
            postgres_port=postgres_port,
            redis_port=redis_port,
            inputs=inputs,
            outputs=outputs,
            became_healthy_and_logged_in=logged_in,
        )
    finally:
        for name in (names["backup"], names["postgres"], names["redis"]):
            subprocess.run(
                ["docker", "rm", "--force", "--volumes", name], capture_output=True, timeout=90
            )
        for volume in volumes:
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
        subprocess.run(["docker", "network", "rm", names["network"]], capture_output=True)
