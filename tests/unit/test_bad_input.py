"""Bad input: the message a user gets, and proof that nothing was registered first."""

from typing import Any

import pytest

import projects
from projects import Project
from settings import InvalidInputError
from tests.unit.conftest import ProgramRunner

GOOD = [
    Project("crypto_ai_agent", user="crypto", redis_db=3),
    Project("project2_db", user="project2_user", redis_db=1),
    Project("no_redis", user="no_redis_user"),
]


def _fails_before_registering(
    run_program: ProgramRunner, config: dict[str, Any] | None = None
) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as raised:
        run_program("dev", config)
    assert run_program.registered == []
    assert isinstance(raised.value, ValueError)
    return raised.value


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            Project("Crypto", user="crypto_x", redis_db=5),
            "project 'Crypto': field 'name': 'Crypto' is not a lowercase identifier",
        ),
        (
            Project("my-app", user="my_app", redis_db=5),
            "project 'my-app': field 'name': 'my-app' is not a lowercase identifier",
        ),
        (
            Project("1st", user="first", redis_db=5),
            "project '1st': field 'name': '1st' is not a lowercase identifier",
        ),
        (
            Project("a" * 64, user="long_user", redis_db=5),
            f"project '{'a' * 64}': field 'name': '{'a' * 64}' is longer than 63 bytes",
        ),
        (
            Project("shop", user="Shop User", redis_db=5),
            "project 'shop': field 'user': 'Shop User' is not a lowercase identifier",
        ),
        (
            Project("shop", user="u" * 64, redis_db=5),
            "project 'shop': field 'user': " + repr("u" * 64) + " is longer than 63 bytes",
        ),
        (
            Project("postgres", user="owner_x", redis_db=5),
            "project 'postgres': field 'name': 'postgres' is reserved",
        ),
        (
            Project("template0", user="t0", redis_db=5),
            "project 'template0': field 'name': 'template0' is reserved",
        ),
        (
            Project("template1", user="t1", redis_db=5),
            "project 'template1': field 'name': 'template1' is reserved",
        ),
        (
            Project("public", user="pub", redis_db=5),
            "project 'public': field 'name': 'public' is reserved",
        ),
        (
            Project("pg_stats_app", user="stats", redis_db=5),
            "project 'pg_stats_app': field 'name': 'pg_stats_app' is reserved",
        ),
        (
            Project("shop", user="pg_shop", redis_db=5),
            "project 'shop': field 'user': 'pg_shop' is reserved",
        ),
        (
            Project("shop", user="postgres", redis_db=5),
            "project 'shop': field 'user': 'postgres' is reserved",
        ),
        (
            Project("shop", user="none", redis_db=5),
            "project 'shop': field 'user': 'none' is reserved",
        ),
        (
            Project("shop", user="current_user", redis_db=5),
            "project 'shop': field 'user': 'current_user' is reserved",
        ),
        (
            Project("shop", user="dbadmin", redis_db=5),
            "project 'shop': field 'user': 'dbadmin' is reserved",
        ),
        (
            Project("dbadmin", user="shop", redis_db=5),
            "project 'dbadmin': field 'name': 'dbadmin' is reserved",
        ),
        (
            Project("shop", user="shop", redis_db=256),
            "project 'shop': field 'redis_db': must be in 1-255 (db-server:redis.databases is "
            "256), got 256",
        ),
        (
            Project("shop", user="shop", redis_db=-1),
            "project 'shop': field 'redis_db': must be in 1-255 (db-server:redis.databases is "
            "256), got -1",
        ),
        (
            Project("shop", user="shop", redis_db=0),
            "project 'shop': field 'redis_db': 0 is no project's: every Redis connection starts "
            "there before it selects its index, so every project could reach it; use 1-255",
        ),
        (
            Project("shop", user="default", redis_db=5),
            "project 'shop': field 'user': 'default' is reserved by PostgreSQL or this server",
        ),
        (
            Project("shop", user="shop", redis_db="3"),  # type: ignore[arg-type]
            "project 'shop': field 'redis_db': must be an integer or None, got '3'",
        ),
        (
            Project("shop", user="shop", redis_db=True),
            "project 'shop': field 'redis_db': must be an integer or None, got True",
        ),
        (
            Project("shop", user="shop", redis_db=5, connection_limit=0),
            "project 'shop': field 'connection_limit': must be at least 1, got 0",
        ),
        (
            Project("shop", user="shop", redis_db=5, statement_timeout_ms=-5),
            "project 'shop': field 'statement_timeout_ms': must be 0 (no limit) or more, got -5",
        ),
        (
            Project("shop", user=None, redis_db=5),  # type: ignore[arg-type]
            "project 'shop': field 'user': must be a string, got None",
        ),
        (
            Project("admin", user="admin_user", redis_db=5),
            "project 'admin': field 'name': its output 'admin_url' is already exported "
            "by the server",
        ),
    ],
)
def test_a_bad_project_is_named_with_its_field(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch, bad: Project, message: str
) -> None:
    monkeypatch.setattr(projects, "PROJECTS", [*GOOD, bad])

    error = _fails_before_registering(run_program)
    assert any(problem.startswith(message) for problem in error.problems), error.problems
    assert all(problem.startswith(f"project {bad.name!r}: ") for problem in error.problems)
    assert str(error).startswith("Invalid project list in projects.py:\n  - ")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            Project("crypto_ai_agent", user="other", redis_db=7),
            "project 'crypto_ai_agent': field 'name': 'crypto_ai_agent' is already used "
            "by project 'crypto_ai_agent'",
        ),
        (
            Project("shop", user="crypto", redis_db=7),
            "project 'shop': field 'user': 'crypto' is already used by project 'crypto_ai_agent'",
        ),
        (
            Project("shop", user="shop", redis_db=1),
            "project 'shop': field 'redis_db': 1 is already used by project 'project2_db'",
        ),
        (
            Project("crypto_ai_agent_host", user="host_user", redis_db=7),
            "project 'crypto_ai_agent_host': field 'name': its output 'crypto_ai_agent_host_url' "
            "is already exported by project 'crypto_ai_agent'",
        ),
    ],
)
def test_a_clash_names_both_projects(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch, extra: Project, message: str
) -> None:
    monkeypatch.setattr(projects, "PROJECTS", [*GOOD, extra])

    error = _fails_before_registering(run_program)
    assert message in error.problems


def test_projects_without_redis_share_no_index(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projects, "PROJECTS", [*GOOD, Project("second", user="second_user")])

    deployment = run_program("dev")
    assert "second_url" in deployment.outputs
    assert "second_redis_url" not in deployment.outputs


def test_every_problem_is_reported_at_once(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        projects,
        "PROJECTS",
        [*GOOD, Project("Bad-Name", user="pg_x", redis_db=99)],
    )

    # The index range comes from the stack's Redis settings.
    error = _fails_before_registering(run_program, {"db-server:redis": {"databases": 16}})
    assert error.problems == [
        "project 'Bad-Name': field 'name': 'Bad-Name' is not a lowercase identifier "
        "([a-z_][a-z0-9_]*)",
        "project 'Bad-Name': field 'user': 'pg_x' is reserved by PostgreSQL or this server",
        "project 'Bad-Name': field 'redis_db': must be in 1-15 (db-server:redis.databases is "
        "16), got 99",
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"db-server:postgres": {"host_port": 70000}},
            "db-server:postgres.host_port: must be in 1-65535, got 70000",
        ),
        (
            {"db-server:redis": {"host_port": 0}},
            "db-server:redis.host_port: must be in 1-65535, got 0",
        ),
        (
            {"db-server:postgres": {"host_port": "5432"}},
            "db-server:postgres.host_port: must be an integer, got '5432'",
        ),
        (
            {"db-server:network": {"create": "yes"}},
            "db-server:network.create: must be a boolean, got 'yes'",
        ),
        (
            {"db-server:redis": {"host_port": 15432}},  # dev's PostgreSQL port
            "db-server:postgres.host_port and db-server:redis.host_port are both 15432: "
            "each service needs its own",
        ),
        (
            {"db-server:redis": {"volume": "db_server_dev_pgdata"}},
            "db-server:postgres.volume and db-server:redis.volume are both 'db_server_dev_pgdata': "
            "each service needs its own",
        ),
        (
            {"db-server:postgres": {"hostport": 5433}},
            "db-server:postgres.hostport: unknown setting (known: admin_host, admin_port, "
            "admin_user, ca_file, container_name, data_path, database, host, host_port, image, "
            "memory_mb, mode, parameters, port, shm_size_mb, sslmode, superuser, volume)",
        ),
        (
            {"db-server:redis": {"maxmemory": "lots"}},
            "db-server:redis.maxmemory: must be a size like 256mb or 1gb, got 'lots'",
        ),
        (
            {"db-server:redis": {"maxmemory": "1gb", "memory_mb": 512}},
            "db-server:redis.maxmemory: 1gb does not fit under the container's memory_mb 512; "
            "leave room for Redis's own overhead",
        ),
        (
            {"db-server:redis": {"maxmemory_policy": "lru"}},
            "db-server:redis.maxmemory_policy: must be one of allkeys-lfu, allkeys-lru, "
            "allkeys-random, noeviction, volatile-lfu, volatile-lru, volatile-random, "
            "volatile-ttl, got 'lru'",
        ),
        (
            {"db-server:redis": {"appendfsync": "sometimes"}},
            "db-server:redis.appendfsync: must be one of always, everysec, no, got 'sometimes'",
        ),
        (
            {"db-server:postgres": {"memory_mb": 16}},
            "db-server:postgres.memory_mb: must be at least 64, got 16",
        ),
        (
            {"db-server:postgres": {"container_name": "db server"}},
            "db-server:postgres.container_name: not a Docker name: 'db server'",
        ),
        (
            {"db-server:postgres": {"parameters": {"max_connections": 200}}},
            "db-server:postgres.parameters: must be an object of strings, "
            "got {'max_connections': 200}",
        ),
        (
            {"db-server:protection": ["protect"]},
            "db-server:protection: must be an object, got ['protect']",
        ),
    ],
)
def test_bad_settings_name_the_key_and_field(
    run_program: ProgramRunner, config: dict[str, Any], message: str
) -> None:
    error = _fails_before_registering(run_program, config)

    assert message in error.problems
    assert str(error).startswith("Invalid db-server stack settings:\n  - ")


def test_an_admin_password_in_clear_config_is_refused(run_program: ProgramRunner) -> None:
    with pytest.raises(InvalidInputError) as raised:
        run_program("dev", {"db-server:admin_password": "long-enough-but-plain"})

    assert raised.value.problems == [
        "db-server:admin_password: must be set as a secret (pulumi config set --secret "
        "admin_password ...); it is in clear in the stack's config file now"
    ]
    assert run_program.registered == []


def test_a_short_admin_password_is_refused(run_program: ProgramRunner) -> None:
    with pytest.raises(InvalidInputError) as raised:
        run_program(
            "dev", {"db-server:admin_password": "short"}, secret_keys=("db-server:admin_password",)
        )

    assert raised.value.problems == [
        "db-server:admin_password: must be at least 16 characters long"
    ]
