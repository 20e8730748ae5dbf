"""The stand-in postgres:17 and redis:8 images keep the official images' contract.

The stack runs the official images; CI cannot pull them, so it builds look-alikes from Debian
packages (``.ci/lib/images.sh``, ``.ci/images/``). These tests pin down the part of the official
behaviour the program relies on, as a user sees it: which logins work and which fail, what is
created on first start and what survives a container replacement, and how the servers stop.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis

if TYPE_CHECKING:
    # Annotations only: at run time the fixtures hand these objects out.
    from tests.integration.conftest import Container, DockerResources

pytestmark = pytest.mark.integration

PG_USER = "dbs_admin"
# Spaces and quotes: the password must reach initdb intact through the entrypoint.
PG_PASSWORD = "pg pass 'with' \"quotes\" 7f3a"
PG_DB = "dbs_app"
PG_SECRET_PATH = "/run/secrets/postgres-password"

REDIS_PASSWORD = "redis-pass-9c41"
# The arguments the stack gives the official redis image.
REDIS_ARGS = (
    "redis-server",
    "--requirepass",
    REDIS_PASSWORD,
    "--appendonly",
    "yes",
    "--dir",
    "/data",
    "--maxmemory",
    "256mb",
    "--maxmemory-policy",
    "allkeys-lru",
    "--appendfsync",
    "everysec",
)

# `docker stop`'s grace period in these tests, and how much of it a clean shutdown may use.
STOP_GRACE_S = 30
CLEAN_STOP_S = 10.0


def readable_dir(path: Path, files: dict[str, str]) -> Path:
    """A folder the container's postgres user can read (pytest's temp dirs are private)."""
    path.chmod(0o755)
    for name, text in files.items():
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    return path


# --- PostgreSQL: one server for the read-only checks ----------------------------------------


@pytest.fixture(scope="module")
def postgres(
    module_resources: DockerResources, postgres_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Container:
    """A server started the way the stack starts it, plus init scripts and a server flag."""
    secret = tmp_path_factory.mktemp("pg-secret") / "password"
    secret.write_text(PG_PASSWORD + "\n")
    initdb = readable_dir(
        tmp_path_factory.mktemp("initdb"),
        {
            "10-schema.sql": "CREATE TABLE from_initdb (note text);"
            " INSERT INTO from_initdb VALUES ('sql ran');",
            # Not executable, so the entrypoint sources it (official behaviour).
            "20-more.sh": 'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER"'
            ' --dbname "$POSTGRES_DB" -c "INSERT INTO from_initdb VALUES (\'sh ran\')"\n',
        },
    )
    container = module_resources.run(
        postgres_image,
        # Flags alone mean "postgres with these flags".
        "-c",
        "max_connections=42",
        purpose="pg",
        env={
            "POSTGRES_USER": PG_USER,
            "POSTGRES_PASSWORD_FILE": PG_SECRET_PATH,
            "POSTGRES_DB": PG_DB,
        },
        mounts=[f"{secret}:{PG_SECRET_PATH}:ro", f"{initdb}:/docker-entrypoint-initdb.d:ro"],
        publish=[5432],
    )
    container.wait_for_postgres(user=PG_USER, password=PG_PASSWORD, dbname=PG_DB)
    return container


def pg_value(container: Container, query: str) -> object:
    """The first column of the first row of ``query``, run as the superuser."""
    with container.postgres_connect(user=PG_USER, password=PG_PASSWORD, dbname=PG_DB) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_postgres_login_with_password_file_works(postgres: Container) -> None:
    with postgres.postgres_connect(user=PG_USER, password=PG_PASSWORD, dbname=PG_DB) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == (PG_USER, PG_DB)


def test_postgres_wrong_password_is_refused(postgres: Container) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        postgres.postgres_connect(user=PG_USER, password="wrong", dbname=PG_DB)


def test_postgres_password_is_stored_as_scram(postgres: Container) -> None:
    stored = pg_value(
        postgres,
        f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '{PG_USER}'",
    )
    assert stored is True
    assert pg_value(postgres, "SHOW password_encryption") == "scram-sha-256"


def test_postgres_other_hosts_need_scram(postgres: Container) -> None:
    method = pg_value(
        postgres,
        "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' AND address = 'all'",
    )
    assert method == "scram-sha-256"
    assert pg_value(postgres, "SHOW listen_addresses") == "*"


def test_postgres_init_scripts_ran_once_in_postgres_db(postgres: Container) -> None:
    assert pg_value(postgres, "SELECT string_agg(note, ',' ORDER BY note) FROM from_initdb") == (
        "sh ran,sql ran"
    )


def test_postgres_flags_given_as_arguments_apply(postgres: Container) -> None:
    assert pg_value(postgres, "SHOW max_connections") == "42"


def test_postgres_runs_as_pid_1_as_postgres_with_private_data(postgres: Container) -> None:
    assert postgres.exec("cat", "/proc/1/comm").strip() == "postgres"
    assert postgres.exec("stat", "-c", "%U", "/proc/1").strip() == "postgres"
    assert postgres.exec("stat", "-c", "%U %a", "/var/lib/postgresql/data").strip() == (
        "postgres 700"
    )
    assert postgres.exec("stat", "-c", "%U", "/var/run/postgresql").strip() == "postgres"


def test_postgres_client_tools_are_on_path(postgres: Container) -> None:
    assert "accepting connections" in postgres.exec("pg_isready")
    for tool in ("psql", "pg_dump", "pg_dumpall"):
        assert "(PostgreSQL) 17." in postgres.exec(tool, "--version")
    dump = postgres.exec("pg_dump", "--username", PG_USER, PG_DB)
    assert "CREATE TABLE public.from_initdb" in dump


# --- PostgreSQL: start-up errors, persistence and shutdown ----------------------------------


def test_postgres_password_and_password_file_are_exclusive(
    resources: DockerResources, postgres_image: str
) -> None:
    container = resources.run(
        postgres_image,
        purpose="pg-both",
        env={"POSTGRES_PASSWORD": "a", "POSTGRES_PASSWORD_FILE": "/etc/hostname"},
    )
    assert container.exit_code() != 0
    assert (
        "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)"
        in container.logs()
    )


def test_postgres_refuses_to_initialise_without_a_password(
    resources: DockerResources, postgres_image: str
) -> None:
    container = resources.run(postgres_image, purpose="pg-nopass")
    assert container.exit_code() == 1
    assert "superuser password is not specified" in container.logs()


def test_postgres_image_runs_other_commands_as_given(
    resources: DockerResources, postgres_image: str
) -> None:
    container = resources.run(postgres_image, "psql", "--version", purpose="pg-cmd")
    assert container.exit_code() == 0
    assert container.logs().startswith("psql (PostgreSQL) 17.")


def test_postgres_data_survives_container_replacement_without_reinit(
    resources: DockerResources, postgres_image: str
) -> None:
    volume = resources.volume("pg-data")
    mount = f"{volume}:/var/lib/postgresql/data"
    first = resources.run(
        postgres_image,
        purpose="pg-first",
        env={"POSTGRES_PASSWORD": "first-password", "POSTGRES_DB": PG_DB},
        mounts=[mount],
        publish=[5432],
    )
    first.wait_for_postgres(user="postgres", password="first-password", dbname=PG_DB)
    with first.postgres_connect(user="postgres", password="first-password", dbname=PG_DB) as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO kept VALUES (1, 'survives')")

    took = first.stop(STOP_GRACE_S)
    logs = first.logs()
    assert "received fast shutdown request" in logs  # STOPSIGNAL SIGINT
    assert logs.rstrip().endswith("database system is shut down")
    assert took < CLEAN_STOP_S, f"docker stop took {took:.1f} s"

    # A new password and database name must not matter: the volume already holds a cluster.
    second = resources.run(
        postgres_image,
        purpose="pg-second",
        env={"POSTGRES_PASSWORD": "ignored-now", "POSTGRES_DB": "not_created"},
        mounts=[mount],
        publish=[5432],
    )
    second.wait_for_postgres(user="postgres", password="first-password", dbname=PG_DB)
    logs = second.logs()
    assert "Skipping initialization" in logs
    assert "init process complete" not in logs
    with second.postgres_connect(user="postgres", password="first-password", dbname=PG_DB) as conn:
        assert conn.execute("SELECT note FROM kept WHERE id = 1").fetchone() == ("survives",)
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'not_created'")
        assert row.fetchone() == (0,)


def test_postgres_stops_cleanly_on_sigterm(resources: DockerResources, postgres_image: str) -> None:
    container = resources.run(
        postgres_image, purpose="pg-term", env={"POSTGRES_PASSWORD": "pw"}, publish=[5432]
    )
    container.wait_for_postgres(user="postgres", password="pw", dbname="postgres")
    container.kill("TERM")
    assert container.exit_code() == 0
    logs = container.logs()
    assert "received smart shutdown request" in logs
    assert logs.rstrip().endswith("database system is shut down")


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(module_resources: DockerResources, redis_image: str) -> Container:
    """A server started with the stack's arguments."""
    container = module_resources.run(redis_image, *REDIS_ARGS, purpose="redis", publish=[6379])
    container.wait_for_redis(REDIS_PASSWORD)
    return container


def test_redis_requires_the_password(redis_server: Container) -> None:
    with redis_server.redis_client(None) as anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.get("anything")
    with redis_server.redis_client("wrong") as wrong, pytest.raises(redis.AuthenticationError):
        wrong.ping()
    with redis_server.redis_client(REDIS_PASSWORD) as client:
        assert client.ping() is True


def test_redis_auth_command_works(redis_server: Container) -> None:
    # Plain RESP over the published port, as any client speaks it before its first command.
    address = ("127.0.0.1", redis_server.host_port(6379))
    with socket.create_connection(address, timeout=5) as sock, sock.makefile("rwb") as wire:

        def send(command: str) -> bytes:
            wire.write(command.encode() + b"\r\n")
            wire.flush()
            return wire.readline()

        assert send("SET before-auth yes").startswith(b"-NOAUTH")
        assert send(f"AUTH {REDIS_PASSWORD}") == b"+OK\r\n"
        assert send("SET after-auth yes") == b"+OK\r\n"


def test_redis_arguments_apply(redis_server: Container) -> None:
    with redis_server.redis_client(REDIS_PASSWORD) as client:
        config = client.config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["dir"] == "/data"
    assert config["maxmemory"] == str(256 * 1024 * 1024)
    assert config["maxmemory-policy"] == "allkeys-lru"


def test_redis_runs_as_pid_1_as_redis(redis_server: Container) -> None:
    assert redis_server.exec("cat", "/proc/1/comm").strip() == "redis-server"
    assert redis_server.exec("stat", "-c", "%U", "/proc/1").strip() == "redis"
    pong = redis_server.exec("redis-cli", "--no-auth-warning", "-a", REDIS_PASSWORD, "ping")
    assert pong.strip() == "PONG"


def test_redis_without_config_accepts_clients_like_the_official_image(
    resources: DockerResources, redis_image: str
) -> None:
    # The official image turns protected mode off; with no password set, clients from other
    # hosts (here: through the published port) get in.
    container = resources.run(redis_image, purpose="redis-open", publish=[6379])
    container.wait_for_redis(password=None)


def test_redis_keys_survive_container_replacement(
    resources: DockerResources, redis_image: str
) -> None:
    volume = resources.volume("redis-data")
    first = resources.run(
        redis_image, *REDIS_ARGS, purpose="redis-first", mounts=[f"{volume}:/data"], publish=[6379]
    )
    first.wait_for_redis(REDIS_PASSWORD)
    with first.redis_client(REDIS_PASSWORD) as client:
        client.set("plain", "kept")
        client.hset("hash", mapping={"field": "kept"})
        client.rpush("list", "a", "b")

    took = first.stop(STOP_GRACE_S)
    assert "ready to exit, bye bye" in first.logs()
    assert took < CLEAN_STOP_S, f"docker stop took {took:.1f} s"

    second = resources.run(
        redis_image, *REDIS_ARGS, purpose="redis-second", mounts=[f"{volume}:/data"], publish=[6379]
    )
    second.wait_for_redis(REDIS_PASSWORD)
    assert "DB loaded from append only file" in second.logs()
    with second.redis_client(REDIS_PASSWORD) as client:
        assert client.get("plain") == b"kept"
        assert client.hgetall("hash") == {b"field": b"kept"}
        assert client.lrange("list", 0, -1) == [b"a", b"b"]
    aof_files = second.exec("ls", "/data/appendonlydir").split()
    assert any(name.endswith(".incr.aof") for name in aof_files), aof_files
    assert second.exec("stat", "-c", "%U", "/data/appendonlydir").strip() == "redis"
