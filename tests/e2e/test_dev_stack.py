"""A dev-like stack of the real program, from cold `up` to `destroy`, as its users meet it.

The tests share one stack and run in the order written: each leaves the stack as a user would
find it after that step (a project added and removed, Redis replaced, containers lost and
repaired, a database restored), and the last one destroys it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pytest
import redis
from pulumi import automation as auto

from tests.conftest import ROOT, DockerError, docker_cli
from tests.e2e.conftest import PROJECTS, REDIS_PROJECTS
from tests.e2e.harness import (
    E2EStack,
    ProjectLine,
    connect,
    connect_as,
    container_id,
    docker_leftovers,
    libpq_url,
    login_refused,
    password_of,
    redis_client,
    run_on_network,
    secrets_in,
    sql_error,
    wait_for_login,
)
from tests.e2e.isolation import (
    ESCALATIONS,
    assert_databases_closed,
    assert_redis_attacks_hold,
    try_escalation,
)

pytestmark = pytest.mark.e2e

NAMES = [p.name for p in PROJECTS]
ROWS = 1000
"""Rows each project writes, so a lost row shows."""


@dataclass
class Deployed:
    stack: E2EStack
    outputs: dict[str, str]
    up_seconds: float


@pytest.fixture(scope="module")
def deployed(make_stack: Callable[..., E2EStack]) -> Deployed:
    stack = make_stack("e2e")
    started = time.monotonic()
    stack.up()
    return Deployed(stack, stack.outputs(), time.monotonic() - started)


def _rows(url: str, table: str = "items") -> int:
    with connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _write_rows(url: str, project: str) -> None:
    with connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, owner text NOT NULL)")
        conn.execute("TRUNCATE items")
        with conn.cursor().copy("COPY items (id, owner) FROM STDIN") as copy:
            for i in range(ROWS):
                copy.write_row((i, project))


# a. -----------------------------------------------------------------------------------------


def test_a_cold_up_gives_every_project_a_database_it_can_log_in_to_and_use(
    deployed: Deployed, postgres_image: str, redis_image: str
) -> None:
    stack, outputs = deployed.stack, deployed.outputs
    print(f"cold up of {len(PROJECTS)} projects: {deployed.up_seconds:.1f} s")

    for project in PROJECTS:
        host_url = outputs[f"{project.name}_host_url"]
        _write_rows(host_url, project.name)
        with connect(host_url) as conn:
            who = conn.execute("SELECT current_user, current_database()").fetchone()
        assert who == (project.user, project.name)
        assert _rows(host_url) == ROWS

        # From a container on the stack's network, by container name, as the project's app.
        network_url = outputs[f"{project.name}_url"]
        assert f"@{stack.names.postgres}:5432/" in network_url
        seen = run_on_network(
            stack.names.network,
            postgres_image,
            "psql",
            libpq_url(network_url),
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--command",
            "INSERT INTO items VALUES (-1, 'from-network') RETURNING owner",
        )
        assert seen.split()[0] == "from-network"
        assert _rows(host_url) == ROWS + 1

        if project.redis_db is None:
            assert f"{project.name}_redis_url" not in outputs
            continue
        key = f"{project.name}:greeting"
        redis_from_network = run_on_network(
            stack.names.network,
            redis_image,
            "redis-cli",
            "-u",
            outputs[f"{project.name}_redis_url"],
            "SET",
            key,
            "hello",
        )
        assert redis_from_network.strip() == "OK"
        with redis_client(outputs[f"{project.name}_host_redis_url"]) as client:
            assert client.get(key) == b"hello"


# b. -----------------------------------------------------------------------------------------


def test_b_no_project_can_reach_another_projects_database_or_the_admin_databases(
    deployed: Deployed,
) -> None:
    assert_databases_closed(deployed.outputs, PROJECTS)


@pytest.mark.parametrize(("attempt", "sql", "sqlstate"), ESCALATIONS)
def test_b_a_project_role_cannot_escalate(
    deployed: Deployed, attempt: str, sql: str, sqlstate: str
) -> None:
    project, other = PROJECTS[0], PROJECTS[1]
    try_escalation(
        deployed.outputs[f"{project.name}_host_url"],
        sql,
        sqlstate,
        user=project.user,
        other_user=other.user,
        admin="dbadmin",
    )


def test_b_a_project_cannot_end_another_projects_sessions(deployed: Deployed) -> None:
    victim, attacker = PROJECTS[1], PROJECTS[0]
    with (
        connect(deployed.outputs[f"{victim.name}_host_url"]) as victim_conn,
        connect(deployed.outputs[f"{attacker.name}_host_url"]) as conn,
    ):
        pid = victim_conn.info.backend_pid
        with sql_error("42501"):
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert victim_conn.execute("SELECT 1").fetchone() == (1,)


def test_b_connection_limit_and_statement_timeout_hold(deployed: Deployed) -> None:
    limited = next(p for p in PROJECTS if p.connection_limit)
    url = deployed.outputs[f"{limited.name}_host_url"]
    held = [connect(url) for _ in range(limited.connection_limit or 0)]
    try:
        # The role's own limit, not the server's.
        with login_refused(f'too many connections for role "{limited.user}"'):
            connect(url).close()
    finally:
        for conn in held:
            conn.close()

    timed = next(p for p in PROJECTS if p.statement_timeout_ms)
    with connect(deployed.outputs[f"{timed.name}_host_url"]) as conn:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3
        assert conn.execute("SHOW statement_timeout").fetchone() == ("500ms",)


# c. -----------------------------------------------------------------------------------------


def test_c_redis_refuses_clients_without_a_projects_password(deployed: Deployed) -> None:
    port = deployed.stack.names.redis_port
    outputs = deployed.outputs
    admin_password = password_of(outputs["redis_admin_host_url"])
    attempts = {
        "no password": f"redis://127.0.0.1:{port}/0",
        "the default user": f"redis://default:anything@127.0.0.1:{port}/0",
        # The server's old single password, had anyone kept it, opens nothing.
        "default with the admin's password": f"redis://default:{admin_password}@127.0.0.1:{port}/0",
        "a project's user with another's password": (
            f"redis://{REDIS_PROJECTS[0].user}:"
            f"{password_of(outputs[f'{REDIS_PROJECTS[1].name}_host_redis_url'])}@127.0.0.1:{port}/0"
        ),
    }
    refused = []
    for attempt, url in attempts.items():
        with redis_client(url) as client:
            try:
                client.get("anything")
            except redis.AuthenticationError:
                refused.append(attempt)
    assert refused == list(attempts)


def test_c_each_project_url_lands_on_its_own_index_as_its_own_user(deployed: Deployed) -> None:
    for project in REDIS_PROJECTS:
        with redis_client(deployed.outputs[f"{project.name}_host_redis_url"]) as client:
            info = client.client_info()
            assert (info["db"], info["user"]) == (project.redis_db, project.user)
            client.set(f"index-of:{project.name}", project.redis_db or 0)
    for project in REDIS_PROJECTS:
        with redis_client(deployed.outputs[f"{project.name}_host_redis_url"]) as client:
            own = sorted(k.decode() for k in client.scan_iter("index-of:*"))
        assert own == [f"index-of:{project.name}"]


def test_c_no_project_reaches_another_projects_redis_data_or_the_server(
    deployed: Deployed,
) -> None:
    held, tried = assert_redis_attacks_hold(deployed.outputs, REDIS_PROJECTS)
    print(f"Redis attacks held: {held} / {tried}")


# d. -----------------------------------------------------------------------------------------


def test_d_a_second_preview_is_empty_and_a_refresh_finds_no_drift(deployed: Deployed) -> None:
    stack = deployed.stack
    result, events = stack.preview(expect_no_changes=True)
    assert events.changed() == {}
    assert set(result.change_summary) == {"same"}

    refreshed, events = stack.preview(refresh=True, expect_no_changes=True)
    assert events.changed() == {}
    assert set(refreshed.change_summary) == {"same"}


# e. -----------------------------------------------------------------------------------------


def test_e_adding_a_project_creates_only_its_resources_and_removing_it_in_dev_drops_them(
    deployed: Deployed,
) -> None:
    stack = deployed.stack
    redis_container = container_id(stack.names.redis)
    extra = ProjectLine("newcomer", user="newcomer_user", redis_db=7)
    stack.write_projects([*PROJECTS, extra])

    _, events = stack.preview()
    changed = events.changed()
    assert changed, "adding a project changed nothing"
    assert set(changed.values()) == {"create"}, changed
    assert all(urn.endswith("::newcomer") or "::newcomer-" in urn for urn in changed), changed

    stack.up()
    url = stack.project_url("newcomer")
    _write_rows(url, "newcomer")
    assert _rows(url) == ROWS
    redis_url = stack.project_url("newcomer", "host_redis_url")
    with redis_client(redis_url) as client:
        client.set("newcomer:key", "v")

    stack.write_projects(PROJECTS)
    _, events = stack.up()
    assert set(events.changed().values()) == {"delete"}
    with redis_client(redis_url) as client, pytest.raises(redis.AuthenticationError):
        client.ping()
    with redis_client(deployed.outputs["redis_admin_host_url"]) as admin:
        assert admin.acl_getuser("newcomer_user") is None
    # Users come and go without a Redis restart.
    assert container_id(stack.names.redis) == redis_container
    with connect(deployed.outputs["admin_host_url"]) as admin:
        assert admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 'newcomer'"
        ).fetchone() == (0,)
        assert admin.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'newcomer_user'"
        ).fetchone() == (0,)
    for project in PROJECTS:  # the others did not notice
        assert _rows(deployed.outputs[f"{project.name}_host_url"]) == ROWS + 1


# g. -----------------------------------------------------------------------------------------


def test_g_a_redis_setting_replaces_only_the_redis_container_and_keys_survive(
    deployed: Deployed,
) -> None:
    stack = deployed.stack
    postgres_before = container_id(stack.names.postgres)
    redis_before = container_id(stack.names.redis)
    project = PROJECTS[0]
    with redis_client(deployed.outputs[f"{project.name}_host_redis_url"]) as client:
        client.set("survives-replacement", "yes")

    stack.set("redis", maxmemory="128mb")
    _, events = stack.preview()
    changed = events.changed()
    # Dynamic providers are configured with the stack's config: a new setting updates the
    # default one, which holds nothing.
    assert changed.pop("urn:pulumi:e2e::db-server::pulumi:providers:pulumi-python::default") == (
        "update"
    )
    replaced = {urn.rsplit("::", 1)[1] for urn in changed}
    assert replaced == {"db-server-redis", "db-server-redis-ready"}, changed
    assert set(changed.values()) <= {"replace", "delete-replaced", "create-replacement"}

    stack.up()
    assert container_id(stack.names.postgres) == postgres_before
    assert container_id(stack.names.redis) != redis_before
    # The project's user came back with the container: it lives in the ACL file on the volume.
    with redis_client(deployed.outputs[f"{project.name}_host_redis_url"]) as client:
        assert client.get("survives-replacement") == b"yes"
    with redis_client(deployed.outputs["redis_admin_host_url"]) as admin:
        assert admin.config_get("maxmemory")["maxmemory"] == str(128 * 1024 * 1024)


# h. -----------------------------------------------------------------------------------------


def test_h_a_crashed_postgres_is_restarted_by_docker_with_its_rows(deployed: Deployed) -> None:
    stack = deployed.stack
    project = PROJECTS[0]
    url = deployed.outputs[f"{project.name}_host_url"]
    before = int(docker_cli("inspect", "--format", "{{.RestartCount}}", stack.names.postgres))
    pid = docker_cli("inspect", "--format", "{{.State.Pid}}", stack.names.postgres).strip()

    # SIGKILL of the postmaster from outside, as the kernel's OOM killer would.
    subprocess.run(["kill", "-KILL", pid], check=True, timeout=10)

    wait_for_login(url)
    after = int(docker_cli("inspect", "--format", "{{.RestartCount}}", stack.names.postgres))
    assert after == before + 1
    assert _rows(url) == ROWS + 1


def test_h_stopped_containers_are_started_again_by_the_repair_command(deployed: Deployed) -> None:
    """`docker stop` is a deliberate stop: Docker's restart policy leaves the server down."""
    stack = deployed.stack
    docker_cli("stop", "--time", "30", stack.names.postgres, stack.names.redis, timeout=120)

    stack.up(refresh=True, run_program=True)

    for name in (stack.names.postgres, stack.names.redis):
        assert docker_cli("inspect", "--format", "{{.State.Running}}", name).strip() == "true"
    for project in PROJECTS:
        assert _rows(deployed.outputs[f"{project.name}_host_url"]) == ROWS + 1
    stack.preview(expect_no_changes=True)


def container_id_or_none(name: str) -> str | None:
    try:
        return container_id(name)
    except DockerError:
        return None


def test_h_removed_containers_come_back_with_all_data_through_the_repair_command(
    deployed: Deployed,
) -> None:
    stack = deployed.stack
    with redis_client(deployed.outputs[f"{PROJECTS[1].name}_host_redis_url"]) as client:
        client.set("survives-loss", "yes")
    docker_cli("rm", "--force", stack.names.postgres, stack.names.redis)

    # What the repair's update previews: it cannot read the SQL objects of a server that is gone.
    preview, _ = stack.preview(refresh=True, run_program=True)
    assert preview.change_summary.get(auto.OpType.CREATE)
    before = {
        name: container_id_or_none(name) for name in (stack.names.postgres, stack.names.redis)
    }
    assert before == {stack.names.postgres: None, stack.names.redis: None}

    repaired = stack.make("repair", f"STACK={stack.stack_name}", "YES=1")

    assert repaired.returncode == 0, repaired.stdout[-3000:] + repaired.stderr[-3000:]
    assert "repair: no pending operations" in repaired.stdout
    for name in (stack.names.postgres, stack.names.redis):
        assert docker_cli("inspect", "--format", "{{.State.Running}}", name).strip() == "true"
    for project in PROJECTS:
        assert _rows(deployed.outputs[f"{project.name}_host_url"]) == ROWS + 1
    with redis_client(deployed.outputs[f"{PROJECTS[1].name}_host_redis_url"]) as client:
        assert client.get("survives-loss") == b"yes"
    # And the stack is whole again: nothing left to change.
    stack.preview(expect_no_changes=True)


def test_h_a_redis_user_deleted_by_hand_comes_back_with_its_url_through_the_repair_command(
    deployed: Deployed,
) -> None:
    """The user's password lives in state, not in a random resource: the repair makes the
    user again with the password the project's URL already carries."""
    stack = deployed.stack
    project = PROJECTS[1]
    url = deployed.outputs[f"{project.name}_host_redis_url"]
    with redis_client(url) as client:
        client.set(f"{project.name}:kept", "yes")
    with redis_client(deployed.outputs["redis_admin_host_url"]) as admin:
        assert admin.acl_deluser(project.user) == 1
        admin.acl_save()
    with pytest.raises(redis.AuthenticationError), redis_client(url) as client:
        client.ping()

    stack.up(refresh=True, run_program=True)

    assert stack.outputs() == deployed.outputs
    with redis_client(url) as client:
        assert client.get(f"{project.name}:kept") == b"yes"
    stack.preview(expect_no_changes=True)


def test_h_replacing_a_redis_user_rotates_its_password_and_keeps_the_keys(
    deployed: Deployed,
) -> None:
    """The README's rotation: `pulumi up --replace` on the project's Redis user."""
    stack = deployed.stack
    project = PROJECTS[1]
    key = f"{project.name}_host_redis_url"
    old_url = stack.outputs()[key]
    with redis_client(old_url) as client:
        client.set(f"{project.name}:rotated", "kept")
    (urn,) = [
        r["urn"]
        for r in json.loads(stack.state_file())["checkpoint"]["latest"]["resources"]
        if r["urn"].endswith(f"::{project.name}-redis-user")
    ]

    stack.up(replace=[urn])

    new_url = stack.outputs()[key]
    assert password_of(new_url) != password_of(old_url)
    with pytest.raises(redis.AuthenticationError), redis_client(old_url) as client:
        client.ping()
    with redis_client(new_url) as client:
        assert client.get(f"{project.name}:rotated") == b"kept"
    stack.preview(expect_no_changes=True)


# i. -----------------------------------------------------------------------------------------


def test_i_a_backup_restores_one_damaged_project_and_leaves_the_others_alone(
    deployed: Deployed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = deployed.stack
    damaged, bystander = PROJECTS[0], PROJECTS[1]
    env = {
        **os.environ,
        "DB_SERVER_POSTGRES_CONTAINER": stack.names.postgres,
        "DB_SERVER_REDIS_CONTAINER": stack.names.redis,
        "DB_SERVER_BACKUP_DIR": str(tmp_path_factory.mktemp("backups")),
    }

    def script(*args: str) -> str:
        done = subprocess.run(
            [str(ROOT / "scripts" / args[0]), *args[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    script("backup-database.sh")
    script("verify-backup.sh")

    damaged_url = deployed.outputs[f"{damaged.name}_host_url"]
    with connect(damaged_url) as conn:
        conn.execute("DELETE FROM items WHERE id % 2 = 0")
    assert _rows(damaged_url) == ROWS // 2 + 1  # ids -1 to 999, the even ones gone
    bystander_url = deployed.outputs[f"{bystander.name}_host_url"]
    with connect(bystander_url) as conn:  # written after the backup: must not be rolled back
        conn.execute("INSERT INTO items VALUES (424242, 'after-backup')")

    script("restore-database.sh", damaged.name, "--yes")

    assert _rows(damaged_url) == ROWS + 1
    assert _rows(bystander_url) == ROWS + 2
    # The restored database is still closed to everyone else.
    with login_refused(f'permission denied for database "{damaged.name}"'):
        connect_as(bystander_url, damaged.name).close()

    # The damaged contents are kept aside until the user, satisfied, drops them (README).
    with connect(deployed.outputs["admin_host_url"]) as admin:
        (kept,) = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            (f"{damaged.name}__before_restore_%",),
        ).fetchall()
        with connect_as(damaged_url, kept[0]) as old:
            assert old.execute("SELECT count(*) FROM items").fetchone() == (ROWS // 2 + 1,)
        admin.execute(f'DROP DATABASE "{kept[0]}"'.encode())


# j. -----------------------------------------------------------------------------------------


def test_j_no_password_appears_in_state_inspect_logs_or_engine_output(deployed: Deployed) -> None:
    stack = deployed.stack
    outputs = stack.outputs()
    secrets = {
        name: password_of(str(value))
        for name, value in outputs.items()
        if name.endswith("url") and "@" in str(value)
    }
    # A PostgreSQL and a Redis password per project, and the two admins.
    assert len(set(secrets.values())) == len(PROJECTS) + len(REDIS_PROJECTS) + 2

    stack.preview()  # `pulumi preview --diff`, so its output is among what was printed
    places = {
        "the state file on disk": stack.state_file(),
        "engine output (preview --diff, up, refresh, destroy)": "\n".join(stack.printed),
    }
    for name in (stack.names.postgres, stack.names.redis):
        places[f"docker inspect {name}"] = docker_cli("inspect", name)
        logs = subprocess.run(
            ["docker", "logs", name], capture_output=True, text=True, timeout=60, check=True
        )
        places[f"docker logs {name}"] = logs.stdout + logs.stderr
    leaks = {place: secrets_in(text, secrets) for place, text in places.items()}
    assert leaks == {place: [] for place in places}


# k. -----------------------------------------------------------------------------------------


def test_k_a_dev_stack_whose_server_is_gone_is_destroyed_leaving_nothing(
    deployed: Deployed,
) -> None:
    stack = deployed.stack
    assert docker_leftovers(stack.names.prefix)  # the stack is there before
    docker_cli("rm", "--force", stack.names.postgres, stack.names.redis)

    _, events = stack.destroy()

    assert set(events.ops.values()) == {"delete"}
    assert docker_leftovers(stack.names.prefix) == []
