"""The stand-in images keep the contract of the images the stack runs: the official postgres:17
and redis:8, edoburu/pgbouncer and the postgres and redis exporters.

The stack runs the upstream images; CI cannot pull them, so it builds look-alikes from Debian
packages (``.ci/lib/images.sh``, ``.ci/images/``). These tests pin down the part of the official
behaviour the program relies on, as a user sees it: which logins work and which fail, what is
created on first start and what survives a container replacement, and how the servers stop.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg.rows import TupleRow

from components.metrics import MONITOR_REDIS_RULES
from tests.conftest import docker_cli
from tests.integration.conftest import Container, DockerResources, retry, unique_name

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


# --- PgBouncer and the exporters, beside the stand-in servers on a network of their own -----

MONITOR_PASSWORD = "monitor-pass-4e1d"
LOOKUP_PASSWORD = "lookup-pass-b83c"
APP_USER = "shop_user"
APP_PASSWORD = "shop-pass-61a0"
APP_DB = "shop"
APP_CONNECTION_LIMIT = 20


@dataclass
class Network:
    """A Docker network of a test module's own, where containers reach each other by alias."""

    name: str
    resources: DockerResources = field(default_factory=DockerResources)

    def run(
        self,
        image: str,
        *args: str,
        alias: str,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[str] = (),
        publish: Sequence[int] = (),
    ) -> Container:
        """``DockerResources.run`` on this network (the shared one knows only Docker's default
        network, where containers cannot find each other by name)."""
        return self.resources.run(
            image, *args, purpose=alias, env=env, mounts=mounts, publish=publish, network=self.name
        )


@pytest.fixture(scope="module")
def network(docker: None) -> Iterator[Network]:
    """A new network; its containers are removed before it is."""
    created = Network(unique_name("net"))
    docker_cli("network", "create", created.name)
    yield created
    created.resources.cleanup()
    docker_cli("network", "rm", created.name)


def secret_file(folder: Path, name: str, text: str) -> str:
    """A file the containers' non-root users can read, as a bind mount source."""
    readable_dir(folder, {name: text})
    return str(folder / name)


@pytest.fixture(scope="module")
def backend(network: Network, postgres_image: str) -> Container:
    """PostgreSQL as ``postgres`` on the network, with a project role and database, a
    ``pg_monitor`` role for the exporter and a lookup role for PgBouncer's auth_query."""
    container = network.run(
        postgres_image,
        alias="postgres",
        env={"POSTGRES_USER": PG_USER, "POSTGRES_PASSWORD": PG_PASSWORD},
        publish=[5432],
    )
    container.wait_for_postgres(user=PG_USER, password=PG_PASSWORD, dbname="postgres")
    with container.postgres_connect(user=PG_USER, password=PG_PASSWORD, dbname="postgres") as conn:
        conn.execute(
            f"CREATE ROLE {APP_USER} LOGIN CONNECTION LIMIT {APP_CONNECTION_LIMIT}"
            f" PASSWORD '{APP_PASSWORD}'"
        )
        conn.execute(f"CREATE DATABASE {APP_DB} OWNER {APP_USER}")
        conn.execute(f"CREATE ROLE monitor LOGIN PASSWORD '{MONITOR_PASSWORD}' IN ROLE pg_monitor")
        # PgBouncer's auth_query reads password verifiers through a function that only this
        # role may call, instead of reading pg_authid as a superuser.
        conn.execute(f"CREATE ROLE pgbouncer_lookup LOGIN PASSWORD '{LOOKUP_PASSWORD}'")
        conn.execute("CREATE SCHEMA pgbouncer")
        conn.execute(
            "CREATE FUNCTION pgbouncer.user_lookup(p_user text, OUT usename name, OUT passwd text)"
            " LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog"
            " AS $$ SELECT usename, passwd FROM pg_shadow WHERE usename = p_user $$"
        )
        conn.execute("REVOKE ALL ON FUNCTION pgbouncer.user_lookup(text) FROM PUBLIC")
        conn.execute("GRANT USAGE ON SCHEMA pgbouncer TO pgbouncer_lookup")
        conn.execute("GRANT EXECUTE ON FUNCTION pgbouncer.user_lookup(text) TO pgbouncer_lookup")
    return container


PGBOUNCER_INI = """\
[databases]
* = host=postgres port=5432 auth_user=pgbouncer_lookup

[pgbouncer]
listen_addr = *
listen_port = 6432
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
auth_dbname = postgres
auth_query = SELECT usename, passwd FROM pgbouncer.user_lookup($1)
pool_mode = transaction
"""


@pytest.fixture(scope="module")
def pgbouncer(
    network: Network,
    backend: Container,
    pgbouncer_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Container:
    """PgBouncer in front of ``backend`` with a config of its own, as the stack runs it: only the
    lookup role's password is in a file, every other login is checked through auth_query."""
    config = readable_dir(
        tmp_path_factory.mktemp("pgbouncer"),
        {
            "pgbouncer.ini": PGBOUNCER_INI,
            "userlist.txt": f'"pgbouncer_lookup" "{LOOKUP_PASSWORD}"\n',
        },
    )
    container = network.run(
        pgbouncer_image,
        alias="pgbouncer",
        mounts=[f"{config}:/etc/pgbouncer:ro"],
        publish=[6432],
    )

    def login() -> None:
        with pooled_connect(container, APP_PASSWORD) as conn:
            conn.execute("SELECT 1")

    retry(login, what=f"PgBouncer in {container.name}", check_alive=container.check_alive)
    return container


def pooled_connect(container: Container, password: str) -> psycopg.Connection[TupleRow]:
    """The project's login through PgBouncer's published port."""
    return psycopg.connect(
        host="127.0.0.1",
        port=container.host_port(6432),
        user=APP_USER,
        password=password,
        dbname=APP_DB,
        connect_timeout=5,
        autocommit=True,
    )


def test_pgbouncer_logs_a_project_in_through_auth_query(pgbouncer: Container) -> None:
    with pooled_connect(pgbouncer, APP_PASSWORD) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == (APP_USER, APP_DB)
    # PgBouncer checks the password against the verifier itself and says only this.
    with pytest.raises(psycopg.OperationalError, match="SASL authentication failed"):
        pooled_connect(pgbouncer, "wrong")


def test_pgbouncer_runs_as_pid_1_not_as_root(pgbouncer: Container) -> None:
    assert pgbouncer.exec("cat", "/proc/1/comm").strip() == "pgbouncer"
    assert pgbouncer.exec("stat", "-c", "%U", "/proc/1").strip() == "postgres"
    assert "Starting /usr/bin/pgbouncer /etc/pgbouncer/pgbouncer.ini..." in pgbouncer.logs()


def test_pgbouncer_without_a_config_stops_and_has_no_password(
    resources: DockerResources, pgbouncer_image: str
) -> None:
    container = resources.run(pgbouncer_image, purpose="pgbouncer-noconf")
    assert container.exit_code() == 1
    assert "error: no /etc/pgbouncer/pgbouncer.ini" in container.logs()
    listing = docker_cli(
        "run",
        "--rm",
        "--name",
        unique_name("pgbouncer-files"),
        "--entrypoint",
        "stat",
        pgbouncer_image,
        "-c",
        "%n %s %U",
        "/etc/pgbouncer/userlist.txt",
    )
    assert listing.strip() == "/etc/pgbouncer/userlist.txt 0 postgres"


def metrics(container: Container, port: int) -> list[str]:
    """The lines of the exporter's /metrics page, through its published port."""
    url = f"http://127.0.0.1:{container.host_port(port)}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode().splitlines()


def metric_names(lines: list[str]) -> set[str]:
    """The names of the metrics on a /metrics page."""
    return {line.split("{")[0].split(" ")[0] for line in lines if not line.startswith("#")}


def wait_for_metric(container: Container, port: int, line: str) -> list[str]:
    """The /metrics lines once ``line`` is among them (an exporter logs in at its first scrape)."""

    def scrape() -> list[str]:
        lines = metrics(container, port)
        assert line in lines, f"no {line!r} in {container.name}'s metrics"
        return lines

    return retry(scrape, what=f"{line!r} from {container.name}", check_alive=container.check_alive)


@pytest.fixture(scope="module")
def postgres_exporter(
    network: Network,
    backend: Container,
    postgres_exporter_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Container:
    """The exporter as the pg_monitor role, its password in a file as the stack gives it."""
    password = secret_file(tmp_path_factory.mktemp("pg-monitor"), "password", MONITOR_PASSWORD)
    return network.run(
        postgres_exporter_image,
        alias="postgres-exporter",
        env={
            "DATA_SOURCE_URI": "postgres:5432/postgres?sslmode=disable",
            "DATA_SOURCE_USER": "monitor",
            "DATA_SOURCE_PASS_FILE": "/run/secrets/monitor-password",
        },
        mounts=[f"{password}:/run/secrets/monitor-password:ro"],
        publish=[9187],
    )


def test_postgres_exporter_reports_the_server_up_with_what_the_alerts_use(
    postgres_exporter: Container,
) -> None:
    lines = wait_for_metric(postgres_exporter, 9187, "pg_up 1")
    assert {"pg_settings_max_connections", "pg_stat_activity_count"} <= metric_names(lines)
    assert f'pg_roles_connection_limit{{rolname="{APP_USER}"}} {APP_CONNECTION_LIMIT}' in lines


def test_postgres_exporter_runs_as_nobody(postgres_exporter: Container) -> None:
    assert postgres_exporter.exec("stat", "-c", "%U", "/proc/1").strip() == "nobody"


def test_exporters_take_upstreams_arguments(
    resources: DockerResources, postgres_exporter_image: str, redis_exporter_image: str
) -> None:
    # The entrypoint is the exporter itself, as upstream: arguments reach it unchanged.
    for image, expected in (
        (postgres_exporter_image, "postgres_exporter, version 0."),
        (redis_exporter_image, "Redis Metrics Exporter 1."),
    ):
        container = resources.run(image, "--version", purpose="exporter-version")
        assert container.exit_code() == 0
        assert expected in container.logs()


MONITOR_REDIS_USER = "monitor"


@pytest.fixture(scope="module")
def redis_exporter(
    network: Network,
    redis_image: str,
    redis_exporter_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Container:
    """Redis as ``redis`` with the stack's arguments and a monitoring user, and the exporter
    logged in as that user, its password in a file (a JSON map from Redis URI to password)."""
    server = network.run(redis_image, *REDIS_ARGS, alias="redis", publish=[6379])
    server.wait_for_redis(REDIS_PASSWORD)
    with server.redis_client(REDIS_PASSWORD) as client:
        client.execute_command(
            "ACL", "SETUSER", MONITOR_REDIS_USER, "on", f">{MONITOR_PASSWORD}", *MONITOR_REDIS_RULES
        )
    passwords = secret_file(
        tmp_path_factory.mktemp("redis-monitor"),
        "passwords.json",
        json.dumps({f"redis://{MONITOR_REDIS_USER}@redis:6379": MONITOR_PASSWORD}),
    )
    return network.run(
        redis_exporter_image,
        alias="redis-exporter",
        env={
            "REDIS_ADDR": "redis://redis:6379",
            "REDIS_USER": MONITOR_REDIS_USER,
            "REDIS_PASSWORD_FILE": "/run/secrets/redis-passwords.json",
        },
        mounts=[f"{passwords}:/run/secrets/redis-passwords.json:ro"],
        publish=[9121],
    )


def test_redis_exporter_reports_the_server_up_with_what_the_alerts_use(
    redis_exporter: Container,
) -> None:
    lines = wait_for_metric(redis_exporter, 9121, "redis_up 1")
    # The monitoring user's rights were enough for every command the exporter ran.
    assert 'redis_exporter_last_scrape_error{err=""} 0' in lines
    assert f"redis_memory_max_bytes {256 * 1024 * 1024:.8e}" in lines
    assert {"redis_memory_used_bytes", "redis_evicted_keys_total"} <= metric_names(lines)


def test_redis_exporter_runs_as_upstreams_uid(redis_exporter: Container) -> None:
    assert redis_exporter.exec("stat", "-c", "%u:%g", "/proc/1").strip() == "59000:59000"
