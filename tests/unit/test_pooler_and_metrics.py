"""PgBouncer and the exporters (prod runs both), under mocks."""

from typing import Any
from urllib.parse import quote

import pytest

import projects
from projects import Project
from settings import InvalidInputError
from tests.unit.conftest import MOCK_PASSWORD, MOCK_REDIS_PASSWORD, ProgramRunner

CONTAINER = "docker:index/container:Container"


def _uploads(container: Any) -> dict[str, str]:
    return {u["file"]: u["content"] for u in container.inputs["uploads"]}


def test_prod_projects_get_pooled_urls_besides_the_direct_ones(run_program: ProgramRunner) -> None:
    deployment = run_program("prod")
    encoded = quote(MOCK_PASSWORD, safe="")

    assert deployment.outputs["crypto_ai_agent_pooled_url"] == (
        f"postgresql+psycopg://crypto:{encoded}@db-server-pgbouncer:6432/crypto_ai_agent"
    )
    assert deployment.outputs["crypto_ai_agent_host_pooled_url"] == (
        f"postgresql+psycopg://crypto:{encoded}@127.0.0.1:6432/crypto_ai_agent"
    )
    assert {"crypto_ai_agent_pooled_url", "crypto_ai_agent_url"} <= deployment.secret_outputs


def test_dev_runs_no_pooler_and_exports_no_pooled_url(run_program: ProgramRunner) -> None:
    deployment = run_program("dev")

    assert not any(name.endswith("pooled_url") for name in deployment.outputs)
    assert sorted(c.name for c in deployment.of_type(CONTAINER)) == [
        "db-server-postgres",
        "db-server-redis",
    ]


def test_each_project_has_its_own_pool_and_nothing_else_is_reachable(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        projects,
        "PROJECTS",
        [
            Project("shop", user="shop_user", pool_mode="session", pool_size=8),
            Project("blog", user="blog_user", max_client_connections=50),
            Project("tiny", user="tiny_user", connection_limit=3),
        ],
    )
    pooler = run_program("prod").named("db-server-pooler-container")

    config = _uploads(pooler)["/etc/pgbouncer/pgbouncer.ini"]
    databases = config.split("[databases]\n")[1].split("\n\n")[0].splitlines()
    assert databases == [
        "shop = host=db-server-postgres port=5432 dbname=shop auth_user=pgbouncer_lookup"
        " pool_mode=session pool_size=8 max_db_connections=8 max_db_client_connections=200",
        "blog = host=db-server-postgres port=5432 dbname=blog auth_user=pgbouncer_lookup"
        " pool_mode=transaction pool_size=5 max_db_connections=5 max_db_client_connections=50",
        # No pool_size: 5, or the role's connection_limit where that is lower.
        "tiny = host=db-server-postgres port=5432 dbname=tiny auth_user=pgbouncer_lookup"
        " pool_mode=transaction pool_size=3 max_db_connections=3 max_db_client_connections=200",
        # The lookup role's own entry, on the admin database no project may connect to.
        "pgbouncer_auth = host=db-server-postgres port=5432 dbname=postgres"
        " auth_user=pgbouncer_lookup pool_size=2 max_db_connections=2",
    ]
    assert "auth_dbname = pgbouncer_auth" in config
    assert "auth_query = SELECT usename, passwd FROM pgbouncer.user_lookup($1)" in config
    assert "auth_type = scram-sha-256" in config
    # The only password the pooler holds is the lookup role's, in a secret upload.
    assert _uploads(pooler)["/etc/pgbouncer/userlist.txt"] == (
        f'"pgbouncer_lookup" "{MOCK_PASSWORD}"\n'
    )
    assert "uploads" in pooler.secret_inputs
    assert not any(MOCK_PASSWORD in env for env in pooler.inputs.get("envs", []))


def test_logins_are_looked_up_by_a_role_that_can_do_nothing_else(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program("prod")

    function = deployment.named("db-server-pooler-lookup-function")
    assert function.inputs["securityDefiner"] is True
    # Qualified names only (a definer's function must not follow the caller's search_path),
    # and never a superuser's verifier.
    assert function.inputs["body"] == (
        "SELECT s.usename, s.passwd FROM pg_catalog.pg_shadow AS s"
        " WHERE s.usename OPERATOR(pg_catalog.=) p_user AND NOT s.usesuper"
    )
    usage = deployment.named("db-server-pooler-lookup-usage")
    assert (usage.inputs["objectType"], usage.inputs["privileges"]) == ("schema", ["USAGE"])
    lookup = deployment.named("db-server-pooler-lookup-role")
    assert lookup.inputs["name"] == "pgbouncer_lookup"
    assert lookup.inputs["password"].startswith("SCRAM-SHA-256$4096:")
    assert not lookup.inputs.get("superuser")


def test_exporters_log_in_as_watchers_with_passwords_in_files(run_program: ProgramRunner) -> None:
    deployment = run_program("prod")

    monitor = deployment.named("db-server-metrics-role")
    assert monitor.inputs["roles"] == ["pg_monitor"]
    exporter = deployment.named("db-server-metrics-postgres-exporter")
    assert exporter.inputs["name"] == "db-server-postgres-exporter"
    assert "DATA_SOURCE_PASS_FILE=/run/secrets/monitor_password" in exporter.inputs["envs"]
    assert _uploads(exporter)["/run/secrets/monitor_password"] == MOCK_PASSWORD
    redis_exporter = deployment.named("db-server-metrics-redis-exporter")
    assert _uploads(redis_exporter)["/run/secrets/redis_passwords.json"] == (
        f'{{"redis://db_monitor@db-server-redis:6379": "{MOCK_REDIS_PASSWORD}"}}'
    )
    for container in (exporter, redis_exporter):
        assert not any(MOCK_PASSWORD in env for env in container.inputs["envs"])
        assert not any(MOCK_REDIS_PASSWORD in env for env in container.inputs["envs"])
        assert "uploads" in container.secret_inputs
    rules = deployment.named("db-server-metrics-redis-user").inputs["rules"]
    assert rules[:3] == ["resetkeys", "resetchannels", "-@all"]
    assert not {"+@read", "+@write", "+get", "+keys", "+@all"} & set(rules)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {
                "db-server:pooler": {"enabled": True, "host_port": 15432},
            },
            "db-server:pooler.host_port: port 15432 is db-server:postgres.host_port's already",
        ),
        (
            {"db-server:pooler": {"enabled": True, "max_client_conn": 0}},
            "db-server:pooler.max_client_conn: must be at least 1, got 0",
        ),
        (
            {"db-server:metrics": {"enabled": True, "redis_exporter_port": 70000}},
            "db-server:metrics.redis_exporter_port: must be in 1-65535, got 70000",
        ),
    ],
)
def test_bad_pooler_and_metrics_settings_name_the_field(
    run_program: ProgramRunner, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        run_program("dev", config)

    assert message in raised.value.problems
    assert run_program.registered == []


@pytest.mark.parametrize(
    ("project", "message"),
    [
        (
            Project("shop", user="shop_user", connection_limit=4, pool_size=5),
            "project 'shop': field 'pool_size': must be in 1-4 (its connection_limit), got 5",
        ),
        (
            Project("shop", user="shop_user", pool_mode="statement"),
            "project 'shop': field 'pool_mode': must be one of transaction, session, "
            "got 'statement'",
        ),
        (
            Project("shop", user="shop_user", max_client_connections=0),
            "project 'shop': field 'max_client_connections': must be at least 1, got 0",
        ),
        (
            Project("shop", user="pgbouncer_lookup"),
            "project 'shop': field 'user': 'pgbouncer_lookup' is reserved by PostgreSQL or "
            "this server",
        ),
    ],
)
def test_bad_pool_fields_name_the_project_and_field(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch, project: Project, message: str
) -> None:
    monkeypatch.setattr(projects, "PROJECTS", [project])
    with pytest.raises(InvalidInputError) as raised:
        run_program("prod")

    assert message in raised.value.problems
    assert run_program.registered == []
