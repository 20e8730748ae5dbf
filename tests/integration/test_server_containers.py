"""The PostgreSQL and Redis containers exactly as the program configures them, on a real engine.

See ``program_server`` for how the containers are made without the docker provider plugin. What
this proves is the program's half of the contract: the healthcheck, the password file, the Redis
config, the loopback ports, the network aliases and the stop behaviour.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg import sql

from components.scram import scram_sha256_verifier
from tests.conftest import docker_cli
from tests.integration.program_server import (
    ADMIN_PASSWORD,
    Server,
    admin_connection,
    program_server,
    redis_client,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(postgres_image: str, redis_image: str) -> Iterator[Server]:
    with program_server(postgres_image, redis_image) as started:
        yield started


def test_the_first_login_after_healthy_works_without_retries(server: Server) -> None:
    """The SQL healthcheck over TCP passes only once the real server accepts logins."""
    assert server.became_healthy_and_logged_in
    # The image initialised the cluster before that: the temporary server's life is over.
    assert "PostgreSQL init process complete" in server.postgres.logs()


def test_dbadmin_is_the_superuser_with_the_uploaded_password_and_checksums(
    server: Server,
) -> None:
    with admin_connection(server) as conn:
        user, superuser = conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or (None, None)
        assert (user, superuser) == ("dbadmin", True)
        assert conn.execute("SHOW data_checksums").fetchone() == ("on",)
        assert conn.execute("SHOW data_directory").fetchone() == ("/var/lib/postgresql/data",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)


def test_a_role_created_with_the_programs_scram_verifier_logs_in_with_the_password(
    server: Server,
) -> None:
    """What ProjectDatabase hands the provider: a verifier, stored as is, that the password
    matches in a real SCRAM exchange."""
    password = "Gen3rated-pw_with.specials~!#%^*+="
    verifier = scram_sha256_verifier(password, os.urandom(16))
    with admin_connection(server) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE scram_check LOGIN PASSWORD {}").format(sql.Literal(verifier))
        )
        stored = admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_check'"
        ).fetchone()
    try:
        assert stored == (verifier,)
        with psycopg.connect(
            host="127.0.0.1",
            port=server.postgres_port,
            user="scram_check",
            password=password,
            dbname="postgres",
            connect_timeout=5,
        ) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("scram_check",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                host="127.0.0.1",
                port=server.postgres_port,
                user="scram_check",
                password=password + "x",
                dbname="postgres",
                connect_timeout=5,
            )
    finally:
        with admin_connection(server) as admin:
            admin.execute("DROP ROLE scram_check")


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

    assert ADMIN_PASSWORD not in inspected
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in inspected


def test_ports_are_published_on_loopback_only(server: Server) -> None:
    assert server.postgres.host_port(5432) == server.postgres_port
    assert server.redis.host_port(6379) == server.redis_port
    bindings = docker_cli(
        "inspect", "--format", "{{json .HostConfig.PortBindings}}", server.postgres.name
    )
    assert '"HostIp":"127.0.0.1"' in bindings
    assert '"HostIp":""' not in bindings


def test_redis_has_no_default_user_and_the_admin_serves_every_index(server: Server) -> None:
    with (
        redis.Redis(host="127.0.0.1", port=server.redis_port, socket_timeout=5) as anonymous,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        anonymous.ping()

    for index in (0, 255):
        with redis_client(server, index) as client:
            client.set("who", f"index-{index}")
            assert client.get("who") == f"index-{index}".encode()


def test_the_acl_file_on_the_volume_keeps_project_users_over_a_restart(server: Server) -> None:
    """Users that ACL SAVE wrote come back; the server's own lines are rewritten at start."""
    url = server.outputs["project2_db_host_redis_url"]
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.set("before-restart", "1")
    docker_cli("restart", "--time", "30", server.redis.name, timeout=90)

    deadline = time.monotonic() + 30
    while True:
        try:
            with redis.Redis.from_url(url, socket_timeout=5) as client:
                assert client.get("before-restart") == b"1"
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    acl = server.redis.exec("cat", "/data/users.acl")
    assert acl.splitlines()[0].startswith("user default off")
    assert [line.split()[1] for line in acl.splitlines()].count("dbadmin") == 1
    assert "user project2_user on" in acl
    assert ADMIN_PASSWORD not in acl  # hashes only


def test_redis_runs_the_programs_config(server: Server) -> None:
    with redis_client(server) as client:
        config = client.config_get("*")
    assert config["appendonly"] == "yes"
    assert config["dir"] == "/data"
    assert config["maxmemory"] == str(256 * 1024 * 1024)
    assert config["maxmemory-policy"] == "volatile-lru"
    assert config["databases"] == "256"
    assert config["aclfile"] == "/data/users.acl"


def test_the_network_urls_work_from_a_container_on_the_network(
    server: Server, postgres_image: str, redis_image: str
) -> None:
    """What a project's container does with the exported URLs (host = container name)."""
    admin_url = server.outputs["admin_url"].replace("postgresql+psycopg://", "postgresql://")
    redis_url = server.outputs["crypto_ai_agent_redis_url"]  # the project's own user

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
