"""The program on servers it does not run: an existing PostgreSQL and Redis, started here
outside any stack, as a managed service or another team's server would be.

The PostgreSQL admin has CREATEROLE and CREATEDB only, no superuser, like RDS's or Cloud SQL's;
both servers take TLS only with a certificate from a self-signed CA. Stacks run against them
alone and mixed with containers of their own, and one stack moves from its container to them.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
import trustme
from pulumi import automation as auto
from redis import Redis

from components.redis_acl import password_hash
from tests import hostile_tenant
from tests.conftest import ROOT, docker_cli, free_port
from tests.e2e.harness import (
    E2EStack,
    ProjectLine,
    connect,
    docker_leftovers,
    libpq_url,
    password_of,
    redis_client,
    remove_docker_leftovers,
    secrets_in,
)
from tests.e2e.isolation import (
    ESCALATIONS,
    assert_databases_closed,
    assert_redis_attacks_hold,
    try_escalation,
)

pytestmark = pytest.mark.e2e

ADMIN = "platform_admin"
"""The external servers' admin: on PostgreSQL CREATEROLE and CREATEDB, no superuser."""

REDIS_DATABASES = 16
"""What an external Redis usually has (its default); the stack is told so."""

ROWS = 1000


@dataclass
class ExternalServers:
    prefix: str
    network: str
    certs: Path
    ca_file: str
    postgres: str
    postgres_port: int
    redis: str
    redis_port: int
    superuser_password: str
    admin_password: str

    def superuser(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.postgres_port,
            user="postgres",
            password=self.superuser_password,
            dbname=dbname,
            sslmode="verify-full",
            sslrootcert=self.ca_file,
            autocommit=True,
            connect_timeout=5,
        )

    def close_admin_databases(self) -> None:
        """What the server's owner does once (the stack warns until then); idempotent."""
        with self.superuser() as conn:
            conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC")
            conn.execute(f"GRANT CONNECT ON DATABASE postgres TO {ADMIN}")

    def redis_admin(self) -> Redis:
        return Redis(
            host="127.0.0.1",
            port=self.redis_port,
            username=ADMIN,
            password=self.admin_password,
            ssl=True,
            ssl_ca_certs=self.ca_file,
            socket_timeout=5,
        )

    def postgres_settings(self, **extra: object) -> dict[str, object]:
        return {
            "mode": "external",
            "admin_host": "127.0.0.1",
            "admin_port": self.postgres_port,
            "host": self.postgres,
            "port": 5432,
            "admin_user": ADMIN,
            "sslmode": "verify-full",
            "ca_file": self.ca_file,
            **extra,
        }

    def redis_settings(self, **extra: object) -> dict[str, object]:
        return {
            "mode": "external",
            "admin_host": "127.0.0.1",
            "admin_port": self.redis_port,
            "host": self.redis,
            "port": 6379,
            "admin_user": ADMIN,
            "tls": True,
            "ca_file": self.ca_file,
            "databases": REDIS_DATABASES,
            **extra,
        }


# TLS only over TCP, as managed services enforce it.
_POSTGRES_START = """set -eu
mkdir -p /certs && cp /certs-in/server.pem /certs-in/server.key /certs/
printf 'local all all trust\nhostssl all all all scram-sha-256\n' > /certs/pg_hba.conf
chown postgres /certs/* && chmod 600 /certs/server.key
exec docker-entrypoint.sh postgres -c ssl=on -c ssl_cert_file=/certs/server.pem \
  -c ssl_key_file=/certs/server.key -c hba_file=/certs/pg_hba.conf
"""

_REDIS_START = """set -eu
mkdir -p /data && { [ -f /data/users.acl ] || cp /certs-in/users.acl /data/users.acl; }
exec redis-server --port 0 --tls-port 6379 --tls-cert-file /certs-in/server.pem \
  --tls-key-file /certs-in/server.key --tls-ca-cert-file /certs-in/ca.pem \
  --tls-auth-clients no --aclfile /data/users.acl --dir /data --databases 16
"""


def _wait(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except (psycopg.OperationalError, redis.RedisError) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not come up: {error}") from None
            time.sleep(0.2)


@pytest.fixture(scope="module")
def external(
    real_plugins: str,
    postgres_image: str,
    redis_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExternalServers]:
    prefix = f"dbs-ext-{uuid.uuid4().hex[:8]}"
    certs = tmp_path_factory.mktemp("external-certs")
    servers = ExternalServers(
        prefix=prefix,
        network=f"{prefix}-net",
        certs=certs,
        ca_file=str(certs / "ca.pem"),
        postgres=f"{prefix}-postgres",
        postgres_port=free_port(),
        redis=f"{prefix}-redis",
        redis_port=free_port(),
        superuser_password=uuid.uuid4().hex,
        admin_password=uuid.uuid4().hex + "/:@ x",
    )
    ca = trustme.CA()
    ca.cert_pem.write_to_path(servers.ca_file)
    issued = ca.issue_cert("127.0.0.1", servers.postgres, servers.redis)
    issued.cert_chain_pems[0].write_to_path(str(certs / "server.pem"))
    issued.private_key_pem.write_to_path(str(certs / "server.key"))
    (certs / "superuser").write_text(servers.superuser_password)
    (certs / "users.acl").write_text(
        "user default off resetpass -@all\n"
        # An admin that may manage users but not wipe or stop the server.
        f"user {ADMIN} on {password_hash(servers.admin_password)} ~* &* +@all "
        "-flushall -shutdown -debug -module -config\n"
    )
    certs.chmod(0o755)
    for path in certs.iterdir():
        path.chmod(0o644)

    docker_cli("network", "create", servers.network)
    try:
        docker_cli(
            *("run", "--detach", "--name", servers.postgres, "--network", servers.network),
            *("--publish", f"127.0.0.1:{servers.postgres_port}:5432"),
            *("--volume", f"{certs}:/certs-in:ro"),
            *("--env", "POSTGRES_PASSWORD_FILE=/certs-in/superuser", "--entrypoint", "sh"),
            *(postgres_image, "-c", _POSTGRES_START),
        )
        docker_cli(
            *("run", "--detach", "--name", servers.redis, "--network", servers.network),
            *("--publish", f"127.0.0.1:{servers.redis_port}:6379"),
            *("--volume", f"{certs}:/certs-in:ro", "--entrypoint", "sh"),
            *(redis_image, "-c", _REDIS_START),
        )
        _wait(lambda: servers.superuser().close(), "external PostgreSQL")
        _wait(lambda: servers.redis_admin().ping(), "external Redis")
        with servers.superuser() as conn:
            # What a managed service's admin gets: no superuser.
            conn.execute(
                f"CREATE ROLE {ADMIN} LOGIN CREATEROLE CREATEDB PASSWORD '{servers.admin_password}'"
            )
        yield servers
    finally:
        remove_docker_leftovers(prefix)


@pytest.fixture(scope="module", autouse=True)
def ca_for_libpq(external: ExternalServers) -> Iterator[None]:
    """The projects' URLs say sslmode=verify-full; libpq finds the CA where apps configure it."""
    os.environ["PGSSLROOTCERT"] = external.ca_file
    yield
    del os.environ["PGSSLROOTCERT"]


def _external_stack(
    make_stack: Callable[..., E2EStack],
    external: ExternalServers,
    name: str,
    projects: tuple[ProjectLine, ...],
    *,
    postgres: bool = True,
    redis_: bool = True,
) -> E2EStack:
    stack = make_stack(name, projects)
    if postgres:
        stack.replace("postgres", **external.postgres_settings())
        stack.set_secret("db-server:admin_password", external.admin_password)
    if redis_:
        stack.replace("redis", **external.redis_settings())
        stack.set_secret("db-server:redis_admin_password", external.admin_password)
    return stack


def _write_rows(url: str, project: str) -> None:
    with connect(url) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, owner text NOT NULL)")
        with conn.cursor().copy("COPY items (id, owner) FROM STDIN") as copy:
            for i in range(ROWS):
                copy.write_row((i, project))


def _rows(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM items").fetchone()
    assert row is not None
    return int(row[0])


EXTERNAL_PROJECTS = (
    ProjectLine("ext_shop", user="ext_shop_user", redis_db=2, connection_limit=3),
    ProjectLine("ext_blog", user="ext_blog_user", redis_db=15, statement_timeout_ms=500),
    ProjectLine("ext_reports", user="ext_reports_user", redis_db=None),
)


def test_a_stack_on_external_servers_isolates_projects_without_a_superuser(
    make_stack: Callable[..., E2EStack], external: ExternalServers, postgres_image: str
) -> None:
    stack = _external_stack(make_stack, external, "external", EXTERNAL_PROJECTS)
    started = time.monotonic()
    stack.up()
    print(f"cold up on external servers: {time.monotonic() - started:.1f} s")
    outputs = stack.outputs()

    # Nothing of Docker's: no container, volume or network of the stack's own.
    assert docker_leftovers(stack.names.prefix) == []
    # Until their owner closes them, every role may connect to the admin databases: said.
    printed = "\n".join(stack.printed)
    for database in ("postgres", "template1"):
        assert f"may connect to database '{database}'" in printed
    external.close_admin_databases()
    with external.superuser() as conn:
        admin = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s",
            (ADMIN,),
        ).fetchone()
        assert admin == (False, True, True)

    for project in EXTERNAL_PROJECTS:
        host_url = outputs[f"{project.name}_host_url"]
        assert host_url.endswith(
            f"@127.0.0.1:{external.postgres_port}/{project.name}?sslmode=verify-full"
        )
        _write_rows(host_url, project.name)
        with connect(host_url) as conn:
            who = conn.execute(
                "SELECT current_user, current_database(), ssl FROM pg_stat_ssl"
                " WHERE pid = pg_backend_pid()"
            ).fetchone()
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                (project.name,),
            ).fetchone()
        assert who == (project.user, project.name, True)
        assert owner == (project.user,)
        # The server takes no plain text, and the URL's sslmode checks its certificate.
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(
                libpq_url(host_url).replace("verify-full", "disable"), connect_timeout=5
            )

        # From a container on the server's network, by its name, as the project's app.
        network_url = outputs[f"{project.name}_url"]
        assert f"@{external.postgres}:5432/" in network_url
        seen = docker_cli(
            *("run", "--rm", "--network", external.network),
            *("--volume", f"{external.ca_file}:/ca.pem:ro", "--env", "PGSSLROOTCERT=/ca.pem"),
            *(postgres_image, "psql", libpq_url(network_url), "--no-psqlrc", "--tuples-only"),
            *("--no-align", "--command", "SELECT count(*) FROM items"),
        )
        assert seen.split() == [str(ROWS)]

        if project.redis_db is not None:
            redis_url = outputs[f"{project.name}_host_redis_url"]
            assert redis_url.startswith("rediss://")
            with redis_client(redis_url, external.ca_file) as client:
                assert client.set(f"{project.name}:greeting", "hello")
                assert client.client_info()["db"] == project.redis_db

    assert_databases_closed(outputs, EXTERNAL_PROJECTS)
    project, other = EXTERNAL_PROJECTS[0], EXTERNAL_PROJECTS[1]
    for _attempt, sql, sqlstate in ESCALATIONS:
        try_escalation(
            outputs[f"{project.name}_host_url"],
            sql,
            sqlstate,
            user=project.user,
            other_user=other.user,
            admin=ADMIN,
        )
    redis_projects = [p for p in EXTERNAL_PROJECTS if p.redis_db is not None]
    held, tried = assert_redis_attacks_hold(outputs, redis_projects, external.ca_file)
    print(f"external Redis attacks held: {held} / {tried}")

    # The projects' users survive a restart of the external Redis: saved to its ACL file.
    docker_cli("restart", external.redis)
    _wait(lambda: external.redis_admin().ping(), "external Redis after restart")
    with redis_client(outputs[f"{project.name}_host_redis_url"], external.ca_file) as client:
        assert client.get(f"{project.name}:greeting") == b"hello"

    preview, _ = stack.preview(expect_no_changes=True)
    assert set(preview.change_summary) == {"same"}

    secrets = {
        name: password_of(str(value))
        for name, value in outputs.items()
        if name.endswith("url") and "@" in str(value)
    }
    secrets["external admin"] = external.admin_password
    places = {"the state file": stack.state_file(), "engine output": "\n".join(stack.printed)}
    assert {place: secrets_in(text, secrets) for place, text in places.items()} == {
        place: [] for place in places
    }

    # A dev stack's destroy drops what it made, one object at a time, through the admin.
    stack.destroy()
    with external.superuser() as conn:
        left = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'ext\\_%' UNION ALL "
            "SELECT datname FROM pg_database WHERE datname LIKE 'ext\\_%'"
        ).fetchall()
    assert left == []
    with external.redis_admin() as admin_client:
        assert [u for u in admin_client.acl_users() if u.startswith("ext_")] == []


def test_an_admin_without_a_needed_privilege_stops_up_before_anything_is_made(
    make_stack: Callable[..., E2EStack], external: ExternalServers
) -> None:
    with external.superuser() as conn:
        conn.execute(
            f"CREATE ROLE weak_admin LOGIN CREATEROLE PASSWORD '{external.admin_password}'"
        )
        conn.execute("GRANT CONNECT ON DATABASE postgres TO weak_admin")
    stack = _external_stack(
        make_stack, external, "weak", (ProjectLine("weak_app", user="weak_user", redis_db=None),)
    )
    stack.replace("postgres", **external.postgres_settings(admin_user="weak_admin"))
    with pytest.raises(auto.CommandError):
        stack.up()
    printed = "\n".join(stack.printed)
    assert "PostgreSQL admin 'weak_admin'" in printed
    assert "lacks CREATEDB" in printed
    with external.superuser() as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'weak_user'").fetchall() == []

    # A Redis admin that may not manage users is refused by name too.
    with external.redis_admin() as admin_client:
        admin_client.execute_command(
            "ACL",
            "SETUSER",
            "weak_admin",
            "on",
            password_hash(external.admin_password),
            "~*",
            "+@all",
            "-acl",
        )
    stack.replace("postgres", **external.postgres_settings())
    stack.write_projects((ProjectLine("weak_app", user="weak_user", redis_db=3),))
    stack.replace("redis", **external.redis_settings(admin_user="weak_admin"))
    with pytest.raises(auto.CommandError):
        stack.up()
    assert "Redis admin 'weak_admin'" in "\n".join(stack.printed)
    assert "may not run ACL SETUSER" in "\n".join(stack.printed)
    with external.redis_admin() as admin_client:
        assert "weak_user" not in admin_client.acl_users()


@pytest.mark.parametrize("external_service", ["redis", "postgres"])
def test_a_mixed_stack_runs_one_server_in_its_container_and_uses_the_other(
    make_stack: Callable[..., E2EStack], external: ExternalServers, external_service: str
) -> None:
    projects = (
        ProjectLine(f"mix_{external_service}_a", user=f"mix_{external_service}_a_user", redis_db=4),
        ProjectLine(f"mix_{external_service}_b", user=f"mix_{external_service}_b_user", redis_db=5),
    )
    stack = _external_stack(
        make_stack,
        external,
        f"mixed-{external_service}",
        projects,
        postgres=external_service == "postgres",
        redis_=external_service == "redis",
    )
    stack.up()
    outputs = stack.outputs()
    external.close_admin_databases()

    containers = docker_cli("ps", "--format", "{{.Names}}").split()
    own = [name for name in containers if name.startswith(stack.names.prefix)]
    kept = "redis" if external_service == "postgres" else "postgres"
    assert own == [getattr(stack.names, kept)]
    ca = external.ca_file if external_service == "redis" else None
    for project in projects:
        _write_rows(outputs[f"{project.name}_host_url"], project.name)
        assert _rows(outputs[f"{project.name}_host_url"]) == ROWS
        with redis_client(outputs[f"{project.name}_host_redis_url"], ca) as client:
            assert client.set("k", project.name)
    assert_databases_closed(outputs, projects)
    assert_redis_attacks_hold(outputs, projects, ca)
    stack.destroy()
    assert docker_leftovers(stack.names.prefix) == []


MOVED = (
    ProjectLine("moved_shop", user="moved_shop_user", redis_db=6),
    ProjectLine("moved_blog", user="moved_blog_user", redis_db=None),
)


def test_moving_postgres_from_the_container_to_an_external_server_keeps_every_row(
    make_stack: Callable[..., E2EStack], external: ExternalServers
) -> None:
    """README, "Move to an external server", step by step."""
    stack = make_stack("moving", MOVED)
    stack.up()
    before = stack.outputs()
    for project in MOVED:
        _write_rows(before[f"{project.name}_host_url"], project.name)
    with redis_client(before["moved_shop_host_redis_url"]) as client:
        client.set("cart", "kept")
    # A hostile project's code, for the copy to run (tests/hostile_tenant.py).
    hostile = MOVED[0]
    hostile_tenant.plant(libpq_url(before[f"{hostile.name}_host_url"]), hostile.user)
    env = {
        **os.environ,
        **stack.stack.workspace.env_vars,
        "DB_SERVER_POSTGRES_CONTAINER": stack.names.postgres,
    }

    # 1. The stack forgets its PostgreSQL container; Docker keeps it running.
    forgot = subprocess.run(
        [str(ROOT / "scripts/forget-container.sh"), "postgres", stack.stack_name],
        cwd=stack.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert forgot.returncode == 0, forgot.stderr
    # 2. Switch the mode, and up: the roles and empty databases appear on the external server.
    stack.replace("postgres", **external.postgres_settings())
    stack.set_secret("db-server:admin_password", external.admin_password)
    stack.up()
    after = stack.outputs()
    # 3. Copy each project, verified by row counts; the project's password did not change.
    started = time.monotonic()
    for project in MOVED:
        url = after[f"{project.name}_host_url"]
        assert password_of(url) == password_of(before[f"{project.name}_host_url"])
        assert f"127.0.0.1:{external.postgres_port}" in url
        copied = subprocess.run(
            [str(ROOT / "scripts/copy-database.sh"), project.name, "--ca-file", external.ca_file],
            input=url,
            text=True,
            capture_output=True,
            env=env,
            timeout=300,
        )
        assert copied.returncode == 0, copied.stderr
        assert _rows(url) == ROWS
        assert url not in copied.stdout + copied.stderr
        # Read as the project's role, written as the project's role: its code ran as that.
        fired = hostile_tenant.vectors_run_as(copied.stderr, project.user)
        assert fired == (hostile_tenant.FIRED_BY_A_RESTORE if project == hostile else set())
    print(f"copied {len(MOVED)} databases in {time.monotonic() - started:.1f} s")

    # The old server keeps every row, closed to the projects, until its owner drops it.
    assert stack.names.postgres in docker_cli("ps", "--format", "{{.Names}}").split()
    old = before["moved_shop_host_url"]
    with pytest.raises(psycopg.OperationalError, match="too many connections"):
        connect(old).close()
    counted = docker_cli(
        *("exec", "--user", "postgres", stack.names.postgres, "psql", "--username=dbadmin"),
        *("--dbname=moved_shop", "--tuples-only", "--no-align", "--command"),
        "SELECT count(*) FROM items",
    )
    assert counted.split() == [str(ROWS)]
    # The hostile project gained nothing on either server, and wrote no file on either.
    planted = hostile_tenant.planted_rows(
        libpq_url(after[f"{hostile.name}_host_url"]), sslrootcert=external.ca_file
    )
    assert planted == dict.fromkeys(
        ("v_check", "v_trigger", "v_default", "v_index", "v_generated"), 3
    )
    none = {"rolsuper": False, "rolcreaterole": False, "rolcreatedb": False}
    with connect(before["admin_host_url"]) as old_admin:
        assert hostile_tenant.attributes(old_admin, hostile.user) == none
    with external.superuser() as new_admin:
        assert hostile_tenant.attributes(new_admin, hostile.user) == none
    assert hostile_tenant.files_written(stack.names.postgres) == []
    assert hostile_tenant.files_written(external.postgres) == []
    # Redis stayed in its container, untouched.
    with redis_client(after["moved_shop_host_redis_url"]) as client:
        assert client.get("cart") == b"kept"
    preview, _ = stack.preview(expect_no_changes=True)
    assert set(preview.change_summary) == {"same"}
