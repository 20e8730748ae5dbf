"""The PostgreSQL and Redis containers exactly as the program configures them, on a real engine.

The docker provider plugin cannot be built on this machine (see docs/toolchain.md), so this
test does what the provider would with the program's own inputs: it reads the Container inputs
``__main__.py`` registers (run under mocks, with test names, ports and the local images), then
creates each container with the docker CLI the way the provider does: create, upload the
``uploads`` as a tar extracted at ``/``, start, and wait for the healthcheck. What it proves is
the program's half of the contract: the healthcheck, the password file, the Redis config, the
loopback ports, the network aliases and the stop behaviour.
"""

from __future__ import annotations

import io
import socket
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

from tests.integration.conftest import Container, docker_cli
from tests.unit.conftest import MOCK_PASSWORD, ROOT, ProgramRunner

HEALTHY_TIMEOUT_S = 180
"""The program's own ``wait_timeout``: how long `pulumi up` would wait."""


@dataclass
class Server:
    """The two containers, their network and volumes, named for this test run."""

    postgres: Container
    redis: Container
    network: str
    postgres_port: int
    redis_port: int
    inputs: dict[str, dict[str, Any]]
    """Container inputs the program registered, by container name."""
    outputs: dict[str, Any]
    """The stack outputs the program exported."""
    became_healthy_and_logged_in: bool


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _program(overrides: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The Container inputs the program registers (by container name, each image's name in
    ``image``) and the stack outputs it exports."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.syspath_prepend(str(ROOT))
        monkeypatch.chdir(ROOT)
        deployment = ProgramRunner(monkeypatch)("dev", overrides)
    images = {
        r.name: r.inputs["name"]
        for r in deployment.resources
        if r.type == "docker:index/remoteImage:RemoteImage"
    }
    containers = {}
    for r in deployment.resources:
        if r.type == "docker:index/container:Container":
            containers[r.inputs["name"]] = {**r.inputs, "image": images[f"{r.name}-image"]}
    return containers, deployment.outputs


def _create_like_the_provider(inputs: dict[str, Any]) -> Container:
    """docker create + upload + start, with every setting the program gave the container."""
    name = inputs["name"]
    health = inputs["healthcheck"]
    kind, command = health["tests"]
    assert kind == "CMD-SHELL"
    args = [
        "create",
        "--name",
        name,
        "--health-cmd",
        command,
        "--health-interval",
        health["interval"],
        "--health-timeout",
        health["timeout"],
        "--health-retries",
        str(int(health["retries"])),
        "--health-start-period",
        health["startPeriod"],
        "--restart",
        inputs["restart"],
        "--stop-signal",
        inputs["stopSignal"],
        "--stop-timeout",
        str(int(inputs["stopTimeout"])),
        "--log-driver",
        inputs["logDriver"],
    ]
    # This engine (Docker 20.10) predates the healthcheck start interval; it only shortens
    # the wait, so leaving it out makes this test slower, never laxer.
    args += [f"--log-opt={key}={value}" for key, value in inputs["logOpts"].items()]
    args += [f"--env={env}" for env in inputs.get("envs", [])]
    if "shmSize" in inputs:
        args += ["--shm-size", f"{int(inputs['shmSize'])}m"]
    if inputs.get("memory"):
        args += ["--memory", f"{int(inputs['memory'])}m"]
    for port in inputs["ports"]:
        args += [
            "--publish",
            f"{port['ip']}:{int(port['external'])}:{int(port['internal'])}/{port['protocol']}",
        ]
    for volume in inputs["volumes"]:
        args += ["--volume", f"{volume['volumeName']}:{volume['containerPath']}"]
    (network,) = inputs["networksAdvanced"]
    args += ["--network", network["name"]]
    args += [f"--network-alias={alias}" for alias in network["aliases"]]
    docker_cli(*args, inputs["image"], *inputs["command"])

    # The provider uploads a tar whose entries carry the full path, extracted at "/".
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for upload in inputs["uploads"]:
            content = upload["content"].encode()
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size, info.mode = len(content), 0o644
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


def _admin(server: Server, dbname: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(
        host="127.0.0.1",
        port=server.postgres_port,
        user="dbadmin",
        password=MOCK_PASSWORD,
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    )


@pytest.fixture(scope="module")
def server(postgres_image: str, redis_image: str) -> Iterator[Server]:
    suffix = uuid.uuid4().hex[:8]
    names = {
        "network": f"dbs-test-net-{suffix}",
        "postgres": f"dbs-test-pg-{suffix}",
        "redis": f"dbs-test-redis-{suffix}",
    }
    postgres_port, redis_port = _free_port(), _free_port()
    inputs, outputs = _program(
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
        }
    )
    volumes = [v["volumeName"] for spec in inputs.values() for v in spec["volumes"]]
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
        yield Server(
            postgres=postgres,
            redis=redis_container,
            network=names["network"],
            postgres_port=postgres_port,
            redis_port=redis_port,
            inputs=inputs,
            outputs=outputs,
            became_healthy_and_logged_in=logged_in,
        )
    finally:
        for name in (names["postgres"], names["redis"]):
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=90)
        for volume in volumes:
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
        subprocess.run(["docker", "network", "rm", names["network"]], capture_output=True)


def test_the_first_login_after_healthy_works_without_retries(server: Server) -> None:
    """The SQL healthcheck over TCP passes only once the real server accepts logins."""
    assert server.became_healthy_and_logged_in
    # The image initialised the cluster before that: the temporary server's life is over.
    assert "PostgreSQL init process complete" in server.postgres.logs()


def test_dbadmin_is_the_superuser_with_the_uploaded_password_and_checksums(
    server: Server,
) -> None:
    with _admin(server) as conn:
        user, superuser = conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or (None, None)
        assert (user, superuser) == ("dbadmin", True)
        assert conn.execute("SHOW data_checksums").fetchone() == ("on",)
        assert conn.execute("SHOW data_directory").fetchone() == ("/var/lib/postgresql/data",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)


def test_a_wrong_admin_password_is_refused(server: Server) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host="127.0.0.1",
            port=server.postgres_port,
            user="dbadmin",
            password="not-the-password",
            dbname="postgres",
            connect_timeout=5,
        )


def test_no_password_shows_in_docker_inspect(server: Server) -> None:
    inspected = docker_cli("inspect", server.postgres.name, server.redis.name)

    assert MOCK_PASSWORD not in inspected
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in inspected


def test_ports_are_published_on_loopback_only(server: Server) -> None:
    assert server.postgres.host_port(5432) == server.postgres_port
    assert server.redis.host_port(6379) == server.redis_port
    bindings = docker_cli(
        "inspect", "--format", "{{json .HostConfig.PortBindings}}", server.postgres.name
    )
    assert '"HostIp":"127.0.0.1"' in bindings
    assert '"HostIp":""' not in bindings


def test_redis_requires_the_password_and_serves_every_index(server: Server) -> None:
    with (
        redis.Redis(host="127.0.0.1", port=server.redis_port, socket_timeout=5) as anonymous,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        anonymous.ping()

    for index in (0, 15):
        with redis.Redis(
            host="127.0.0.1",
            port=server.redis_port,
            password=MOCK_PASSWORD,
            db=index,
            socket_timeout=5,
        ) as client:
            client.set("who", f"index-{index}")
            assert client.get("who") == f"index-{index}".encode()


def test_redis_runs_the_programs_config(server: Server) -> None:
    with redis.Redis(
        host="127.0.0.1", port=server.redis_port, password=MOCK_PASSWORD, socket_timeout=5
    ) as client:
        config = client.config_get("*")
    assert config["appendonly"] == "yes"
    assert config["dir"] == "/data"
    assert config["maxmemory"] == str(256 * 1024 * 1024)
    assert config["maxmemory-policy"] == "volatile-lru"
    assert config["databases"] == "16"


def test_the_network_urls_work_from_a_container_on_the_network(
    server: Server, postgres_image: str, redis_image: str
) -> None:
    """What a project's container does with the exported URLs (host = container name)."""
    admin_url = server.outputs["admin_url"].replace("postgresql+psycopg://", "postgresql://")
    redis_url = server.outputs["crypto_ai_agent_redis_url"]

    def on_network(image: str, *command: str) -> str:
        # The URL travels in the environment, not in this test's own command line.
        return docker_cli(
            "run",
            "--rm",
            "--network",
            server.network,
            "--env",
            f"URL={command[-1]}",
            "--entrypoint",
            "sh",
            image,
            "-c",
            command[0],
        )

    assert on_network(postgres_image, 'psql "$URL" -Atc "SELECT 42"', admin_url).split() == ["42"]
    assert on_network(
        redis_image, 'redis-cli -u "$URL" --no-auth-warning PING', redis_url
    ).split() == ["PONG"]


def test_containers_stop_cleanly_within_the_grace_period(server: Server) -> None:
    """Runs last in this module: a stop the way Docker does it for a replacement."""
    grace = int(server.inputs[server.postgres.name]["stopTimeout"])

    for container in (server.postgres, server.redis):
        started = time.monotonic()
        docker_cli("stop", container.name, timeout=grace + 30)  # the container's own timeout
        assert time.monotonic() - started < grace
        assert container.exit_code() == 0
    assert "database system is shut down" in server.postgres.logs()
    assert "ready to exit, bye bye" in server.redis.logs()
