"""External servers (mode external), alone and mixed with a container, under mocks."""

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from settings import InvalidInputError
from tests.unit.conftest import MOCK_PASSWORD, MOCK_REDIS_PASSWORD, Deployment, ProgramRunner

ADMIN_SECRET = "external-admin-pw/:@#"
"""An external admin's password as a DBA chose it: characters a URL must encode included."""

SECRETS = ("db-server:admin_password", "db-server:redis_admin_password")
PROVIDER = "pulumi:providers:postgresql"
DOCKER_TYPES = (
    "docker:index/container:Container",
    "docker:index/volume:Volume",
    "docker:index/network:Network",
    "docker:index/remoteImage:RemoteImage",
)


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


def _external_postgres(ca_file: str, **extra: Any) -> dict[str, Any]:
    return {
        "mode": "external",
        "admin_host": "127.0.0.1",
        "admin_port": 25432,
        "host": "pg.internal",
        "port": 5432,
        "admin_user": "platform_admin",
        "sslmode": "verify-full",
        "ca_file": ca_file,
        **extra,
    }


def _external_redis(**extra: Any) -> dict[str, Any]:
    return {
        "mode": "external",
        "admin_host": "127.0.0.1",
        "admin_port": 26379,
        "host": "redis.internal",
        "admin_user": "platform_admin",
        "databases": 16,
        **extra,
    }


def _run(run_program: ProgramRunner, config: dict[str, Any], stack: str = "dev") -> Deployment:
    passwords = {key: ADMIN_SECRET for key in SECRETS}
    if "db-server:postgres" not in config:
        del passwords["db-server:admin_password"]
    if "db-server:redis" not in config:
        del passwords["db-server:redis_admin_password"]
    return run_program(stack, {**config, **passwords}, secret_keys=tuple(passwords))


def test_both_external_creates_no_docker_object(run_program: ProgramRunner, ca_file: str) -> None:
    deployment = _run(
        run_program,
        {"db-server:postgres": _external_postgres(ca_file), "db-server:redis": _external_redis()},
    )

    assert [r.name for r in deployment.resources if r.type in DOCKER_TYPES] == []
    assert deployment.outputs["summary"]["network"] is None
    assert deployment.outputs["summary"]["postgres"] == {
        "mode": "external",
        "host": "pg.internal",
        "port": 5432,
    }


def test_external_postgres_is_managed_without_superuser_over_verified_tls(
    run_program: ProgramRunner, ca_file: str
) -> None:
    deployment = _run(run_program, {"db-server:postgres": _external_postgres(ca_file)})

    (provider,) = deployment.of_type(PROVIDER)
    assert provider.inputs["host"] == "127.0.0.1"
    assert provider.inputs["port"] == "25432"
    assert provider.inputs["username"] == "platform_admin"
    assert provider.inputs["password"] == ADMIN_SECRET
    assert provider.inputs["superuser"] == "false"
    assert provider.inputs["sslmode"] == "verify-full"
    assert provider.inputs["sslrootcert"] == ca_file
    ready = deployment.named("db-server-postgres-ready")
    assert ready.inputs["container_id"] == "external"
    assert ready.inputs["external"] == {
        "database": "postgres",
        "sslmode": "verify-full",
        "ca_file": ca_file,
        "superuser": False,
    }
    # Project objects are not deleted with a volume: there is none; a destroy drops them.
    roles = deployment.of_type("postgresql:index/role:Role")
    assert roles
    assert {r.deleted_with for r in roles} == {""}
    # The admin acts as each database's owner through membership of its role: a REVOKE by
    # anyone else changes nothing.
    membership = deployment.named("crypto_ai_agent-admin-membership")
    assert membership.inputs == {"role": "platform_admin", "grantRole": "crypto"}
    assert any(d.endswith("::crypto_ai_agent-database") for d in membership.dependencies)
    revoke = deployment.named("crypto_ai_agent-revoke-public")
    assert any(d.endswith("::crypto_ai_agent-admin-membership") for d in revoke.dependencies)
    # The admin databases belong to the server's owner: the stack does not revoke on them.
    grants = deployment.of_type("postgresql:index/grant:Grant")
    assert {g.inputs["database"] for g in grants}.isdisjoint({"postgres", "template1"})


def test_external_postgres_urls_point_where_projects_and_host_reach_it(
    run_program: ProgramRunner, ca_file: str
) -> None:
    outputs = _run(run_program, {"db-server:postgres": _external_postgres(ca_file)}).outputs
    encoded = quote(MOCK_PASSWORD, safe="")

    assert outputs["crypto_ai_agent_url"] == (
        f"postgresql+psycopg://crypto:{encoded}@pg.internal:5432/crypto_ai_agent"
        "?sslmode=verify-full"
    )
    assert outputs["crypto_ai_agent_host_url"] == (
        f"postgresql+psycopg://crypto:{encoded}@127.0.0.1:25432/crypto_ai_agent?sslmode=verify-full"
    )
    assert outputs["admin_host_url"] == (
        f"postgresql+psycopg://platform_admin:{quote(ADMIN_SECRET, safe='')}@127.0.0.1:25432"
        "/postgres?sslmode=verify-full"
    )


def test_mixed_container_redis_keeps_its_container_volume_and_network(
    run_program: ProgramRunner, ca_file: str
) -> None:
    deployment = _run(run_program, {"db-server:postgres": _external_postgres(ca_file)})

    containers = deployment.of_type("docker:index/container:Container")
    assert [c.inputs["name"] for c in containers] == ["db-server-dev-redis"]
    assert [v.inputs["name"] for v in deployment.of_type("docker:index/volume:Volume")] == [
        "db_server_dev_redisdata"
    ]
    assert len(deployment.of_type("docker:index/network:Network")) == 1
    volume_urn = deployment.named("db-server-redisdata")
    users = [r for r in deployment.resources if r.name.endswith("-redis-user")]
    assert users
    assert all(u.deleted_with.endswith("::db-server-redisdata") for u in users), volume_urn


def test_external_redis_users_are_managed_over_tls_with_the_configured_admin(
    run_program: ProgramRunner, ca_file: str
) -> None:
    deployment = _run(run_program, {"db-server:redis": _external_redis(tls=True, ca_file=ca_file)})

    user = deployment.named("crypto_ai_agent-redis-user")
    assert user.inputs["host"] == "127.0.0.1"
    assert user.inputs["port"] == 26379
    assert user.inputs["admin_user"] == "platform_admin"
    assert user.inputs["admin_password"] == ADMIN_SECRET
    assert user.inputs["tls"] is True
    assert user.inputs["ca_file"] == ca_file
    assert user.deleted_with == ""
    ready = deployment.named("db-server-redis-ready")
    assert ready.inputs["external"] == {"tls": True, "ca_file": ca_file, "databases": 16}
    assert deployment.outputs["crypto_ai_agent_redis_url"] == (
        f"rediss://crypto:{MOCK_REDIS_PASSWORD}@redis.internal:26379/3"
    )
    assert deployment.outputs["crypto_ai_agent_host_redis_url"] == (
        f"rediss://crypto:{MOCK_REDIS_PASSWORD}@127.0.0.1:26379/3"
    )
    # PostgreSQL is still the stack's container.
    assert deployment.named("db-server-postgres").inputs["name"] == "db-server-dev-postgres"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"db-server:postgres": {"mode": "managed"}},
            "db-server:postgres.mode: must be container or external, got 'managed'",
        ),
        (
            {"db-server:postgres": {"mode": "external"}},
            "db-server:postgres.admin_host: must be set for mode external",
        ),
        (
            {"db-server:postgres": {"mode": "external", "admin_host": "db", "image": "pg:17"}},
            "db-server:postgres.image: applies to mode container only",
        ),
        (
            {"db-server:redis": {"admin_host": "cache"}},
            "db-server:redis.admin_host: applies to mode external only",
        ),
        (
            {"db-server:postgres": {"mode": "external", "admin_host": "db"}},
            "db-server:postgres.ca_file: must be set for sslmode verify-full: the CA that "
            "signed the server's certificate",
        ),
        (
            {"db-server:postgres": {"mode": "external", "admin_host": "db", "sslmode": "on"}},
            "db-server:postgres.sslmode: must be one of disable, allow, prefer, require, "
            "verify-ca, verify-full, got 'on'",
        ),
        (
            {
                "db-server:postgres": {
                    "mode": "external",
                    "admin_host": "db",
                    "sslmode": "require",
                    "ca_file": "no/such/ca.pem",
                }
            },
            "db-server:postgres.ca_file: no such file: 'no/such/ca.pem'",
        ),
        (
            {"db-server:redis": {"mode": "external", "admin_host": "cache", "admin_port": 0}},
            "db-server:redis.admin_port: must be in 1-65535, got 0",
        ),
        (
            {"db-server:redis": {"mode": "external", "admin_host": "cache"}},
            "db-server:redis_admin_password: must be set for an external server: "
            "pulumi config set --secret redis_admin_password ...",
        ),
        (
            {
                "db-server:redis": {"mode": "external", "admin_host": "cache"},
                "db-server:backup": {"enabled": True},
            },
            "db-server:backup.enabled: scheduled backups run for servers in mode container "
            "only; back an external server up with its own tools (a managed service's "
            "snapshots, pg_dump)",
        ),
    ],
)
def test_bad_external_settings_name_the_field_before_anything_is_made(
    run_program: ProgramRunner, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        run_program("dev", config)

    assert message in raised.value.problems
    assert run_program.registered == []


def test_a_container_redis_takes_no_admin_password_from_config(
    run_program: ProgramRunner,
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        run_program(
            "dev",
            {"db-server:redis_admin_password": ADMIN_SECRET},
            secret_keys=("db-server:redis_admin_password",),
        )

    assert raised.value.problems == [
        "db-server:redis_admin_password: applies to an external server only; the container's "
        "is generated"
    ]
