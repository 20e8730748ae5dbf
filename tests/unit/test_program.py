"""What `pulumi up` would ask for, per stack, run under mocks."""

import base64
import re

import pytest
import yaml

import projects
from components.healthcheck import go_duration
from components.redis_acl import server_acl
from components.scram import derived_salt, scram_sha256_verifier
from projects import Project
from settings import ADMIN_ROLE, load_settings
from tests.conftest import ROOT
from tests.unit.conftest import (
    MOCK_PASSWORD,
    MOCK_REDIS_PASSWORD,
    MOCK_SALT_SEED_B64,
    Deployment,
    ProgramRunner,
    Registration,
    stack_config,
)

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
ROLE = "postgresql:index/role:Role"
DATABASE = "postgresql:index/database:Database"
GRANT = "postgresql:index/grant:Grant"
PASSWORD = "random:index/randomPassword:RandomPassword"
PROJECT = "db-server:project_database:ProjectDatabase"
DYNAMIC = "pulumi-python:dynamic:Resource"
READY_TYPE_PATH = "db-server:database_server:DatabaseServer$pulumi-python:dynamic:Resource"

URL_SUFFIXES = ("_url", "_host_url", "_redis_url", "_host_redis_url")
DATA_CONTAINERS = ("db-server-postgres", "db-server-redis")
"""Logical names of the containers that hold data (their Docker names come from settings)."""


def _data_containers(deployment: Deployment) -> list[Registration]:
    return [c for c in deployment.of_type(CONTAINER) if c.name in DATA_CONTAINERS]


@pytest.fixture(params=["dev", "prod"])
def stack_name(request: pytest.FixtureRequest) -> str:
    return request.param


def _children(deployment: Deployment, project: str) -> dict[str, str]:
    """Type of each resource whose parent is the project's component, by name."""
    return {
        r.name: r.type for r in deployment.resources if r.parent.endswith(f"{PROJECT}::{project}")
    }


def test_every_project_gets_its_own_role_database_password_and_revoke(
    run_program: ProgramRunner, stack_name: str
) -> None:
    deployment = run_program(stack_name)

    assert [r.name for r in deployment.of_type(PROJECT)] == [p.name for p in projects.PROJECTS]
    for project in projects.PROJECTS:
        assert _children(deployment, project.name) == {
            f"{project.name}-password": PASSWORD,
            f"{project.name}-role": ROLE,
            f"{project.name}-database": DATABASE,
            f"{project.name}-revoke-public": GRANT,
            f"{project.name}-redis-user": DYNAMIC,
        }
        role = deployment.named(f"{project.name}-role").inputs
        assert role["name"] == project.user
        assert role["login"] is True
        for power in ("superuser", "createDatabase", "createRole", "replication"):
            assert role[power] is False, power
        assert role["bypassRowLevelSecurity"] is False
        assert role["connectionLimit"] == project.connection_limit
        database = deployment.named(f"{project.name}-database").inputs
        assert database["name"] == project.name
        assert database["owner"] == project.user


def test_project_passwords_are_long_random_and_secret(run_program: ProgramRunner) -> None:
    deployment = run_program("dev")

    for project in projects.PROJECTS:
        password = deployment.named(f"{project.name}-password").inputs
        assert password["length"] >= 32
        role = deployment.named(f"{project.name}-role")
        assert "password" in role.secret_inputs
        # PostgreSQL gets a SCRAM verifier, never the password: a failed CREATE/ALTER ROLE
        # statement lands in the server log whole.
        salt = derived_salt(base64.b64decode(MOCK_SALT_SEED_B64), MOCK_PASSWORD)
        assert role.inputs["password"] == scram_sha256_verifier(MOCK_PASSWORD, salt)
        assert MOCK_PASSWORD not in role.inputs["password"]
        # The Redis user's password is made by its provider, and only the URL carries it.
        assert project.redis_db is None or MOCK_REDIS_PASSWORD in str(
            deployment.outputs[f"{project.name}_redis_url"]
        )


def test_public_loses_connect_and_temporary_on_every_project_database(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program("dev")

    revokes = {r.inputs["database"]: r.inputs for r in deployment.of_type(GRANT)}
    for database in [p.name for p in projects.PROJECTS] + ["postgres", "template1"]:
        assert revokes[database]["role"] == "public"
        assert revokes[database]["objectType"] == "database"
        # No privileges listed: the provider revokes all PUBLIC holds, CONNECT and TEMP included.
        assert revokes[database]["privileges"] == []


def test_sql_objects_are_managed_through_the_servers_admin_provider(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program("dev")

    (provider,) = deployment.of_type("pulumi:providers:postgresql")
    assert provider.inputs["host"] == "127.0.0.1"
    # Provider config reaches the engine as strings.
    assert provider.inputs["port"] == "15432"  # dev's own host port
    assert provider.inputs["username"] == ADMIN_ROLE
    assert "password" in provider.secret_inputs
    # Host and port come from the readiness check, so the provider waits for a real login.
    assert (
        "urn:pulumi:dev::db-server::" + READY_TYPE_PATH + "::db-server-postgres-ready"
    ) in provider.dependencies
    sql_objects = [r for r in deployment.resources if r.type.startswith("postgresql:index/")]
    assert len(sql_objects) == 2 + 3 * len(projects.PROJECTS)  # two server grants, 3 each
    for sql_object in sql_objects:
        # Through the parent's providers map or its own provider option: either way, this one.
        assert sql_object.provider.startswith(
            "urn:pulumi:dev::db-server::db-server:database_server:DatabaseServer"
            "$pulumi:providers:postgresql::db-server-postgres-provider::"
        )


def test_sql_objects_go_with_the_data_volume_so_a_lost_server_can_be_destroyed(
    run_program: ProgramRunner, stack_name: str
) -> None:
    """`pulumi destroy` skips what the volume takes with it: no dial to a server that is gone."""
    deployment = run_program(stack_name)

    volume = (
        f"urn:pulumi:{stack_name}::db-server::db-server:database_server:DatabaseServer"
        "$docker:index/volume:Volume::db-server-pgdata"
    )
    sql_objects = [r for r in deployment.resources if r.type.startswith("postgresql:index/")]
    assert sql_objects
    for sql_object in sql_objects:
        assert sql_object.deleted_with == volume, sql_object.name


def test_ports_are_published_on_loopback_only(run_program: ProgramRunner, stack_name: str) -> None:
    deployment = run_program(stack_name)

    published = {
        c.name: [(p["ip"], p["internal"], p["external"]) for p in c.inputs["ports"]]
        for c in deployment.of_type(CONTAINER)
        if c.inputs.get("ports")
    }
    ports = {"dev": (15432, 16379), "prod": (5432, 6379)}[stack_name]
    # Nothing else publishes a port at all (the backup container only talks on the network).
    expected = {
        "db-server-postgres": [("127.0.0.1", 5432, ports[0])],
        "db-server-redis": [("127.0.0.1", 6379, ports[1])],
    }
    if stack_name == "prod":  # the pooler and the exporters, prod's only
        expected |= {
            "db-server-pooler-container": [("127.0.0.1", 6432, 6432)],
            "db-server-metrics-postgres-exporter": [("127.0.0.1", 9187, 9187)],
            "db-server-metrics-redis-exporter": [("127.0.0.1", 9121, 9121)],
        }
    assert published == expected


def test_containers_wait_for_the_network_to_exist_not_for_its_resource(
    run_program: ProgramRunner,
) -> None:
    """The docker provider reads a new network back two seconds after creating it."""
    deployment = run_program("prod")

    ready = deployment.named("db-server-network-ready")
    assert ready.type == DYNAMIC
    assert ready.inputs["name"] == "nginx-network"
    for container in _data_containers(deployment):
        assert not any(d.endswith("::db-server-network") for d in container.dependencies)
        assert any(d.endswith("::db-server-network-ready") for d in container.dependencies)


def test_containers_join_the_shared_network_under_their_own_names(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program("prod")

    (network,) = deployment.of_type("docker:index/network:Network")
    assert network.inputs["name"] == "nginx-network"
    for container in _data_containers(deployment):
        (attachment,) = container.inputs["networksAdvanced"]
        assert attachment["name"] == "nginx-network"
        assert attachment["aliases"] == [container.inputs["name"]]


def test_joining_an_existing_network_creates_none(run_program: ProgramRunner) -> None:
    deployment = run_program("prod", {"db-server:network": {"name": "proxy", "create": False}})

    assert deployment.of_type("docker:index/network:Network") == []
    for container in deployment.of_type(CONTAINER):
        assert container.inputs["networksAdvanced"][0]["name"] == "proxy"


def test_volumes_hold_the_data_at_the_images_data_paths(run_program: ProgramRunner) -> None:
    deployment = run_program("prod")

    assert {v.inputs["name"] for v in deployment.of_type(VOLUME)} == {
        "db_server_pgdata",
        "db_server_pgsocket",
        "db_server_redisdata",
        "db_server_backups",
        "db_server_pgbackrest",
        "db_server_pgbackrest_drill",
        "db_server_metrics",
    }
    mounts = {
        c.inputs["name"]: [(v["volumeName"], v["containerPath"]) for v in c.inputs["volumes"]]
        for c in _data_containers(deployment)
    }
    assert mounts == {
        "db-server-postgres": [
            ("db_server_pgdata", "/var/lib/postgresql/data"),
            # The socket directory, shared with the backup container (no data in it).
            ("db_server_pgsocket", "/var/run/postgresql"),
            # pgBackRest's local repository, where archive_command pushes the WAL.
            ("db_server_pgbackrest", "/var/lib/pgbackrest"),
        ],
        "db-server-redis": [("db_server_redisdata", "/data")],
    }
    postgres = deployment.named("db-server-postgres").inputs
    assert "PGDATA=/var/lib/postgresql/data" in postgres["envs"]


def test_data_containers_stop_cleanly_before_their_replacement_starts(
    run_program: ProgramRunner, stack_name: str
) -> None:
    deployment = run_program(stack_name)

    for container in _data_containers(deployment):
        assert container.delete_before_replace, container.name
        assert container.inputs["destroyGraceSeconds"] >= 60
        assert container.inputs["stopTimeout"] >= 60
        assert container.inputs["restart"] == "unless-stopped"
    assert deployment.named("db-server-postgres").inputs["stopSignal"] == "SIGINT"


def test_no_container_needs_docker_engine_25(run_program: ProgramRunner, stack_name: str) -> None:
    """A healthcheck start interval needs API 1.44: Docker 20.10 (API 1.41) refuses the create.

    Nor does `pulumi up` wait on Docker's health status, whose first check comes one interval
    after start: it waits on a login of its own (next test)."""
    for container in run_program(stack_name).of_type(CONTAINER):
        assert "startInterval" not in container.inputs.get("healthcheck", {}), container.name
        assert not container.inputs.get("wait"), container.name


def test_up_waits_for_a_login_to_each_new_server(
    run_program: ProgramRunner, stack_name: str
) -> None:
    deployment = run_program(stack_name)
    ports = {"dev": (15432, 16379), "prod": (5432, 6379)}[stack_name]

    readies = {
        r.name: r
        for r in deployment.of_type(DYNAMIC)
        if r.name.endswith(("-postgres-ready", "-redis-ready"))
    }
    assert set(readies) == {"db-server-postgres-ready", "db-server-redis-ready"}
    for (kind, user), port in zip(
        (("postgres", ADMIN_ROLE), ("redis", ADMIN_ROLE)), ports, strict=True
    ):
        ready = readies[f"db-server-{kind}-ready"]
        assert ready.inputs["kind"] == kind
        # A new container id is a new server to wait for.
        assert ready.inputs["container_id"] == f"db-server-{kind}-id"
        assert (ready.inputs["host"], ready.inputs["port"]) == ("127.0.0.1", port)
        assert ready.inputs["user"] == user
        assert ready.inputs["password"] == MOCK_PASSWORD
        assert "password" in ready.secret_inputs
        assert "password" in ready.additional_secret_outputs
    backup = [c for c in deployment.of_type(CONTAINER) if c.name.endswith("-backup-container")]
    for container in backup:  # prod: backups start once both servers take logins
        assert set(container.dependencies) >= {
            "urn:pulumi:prod::db-server::" + READY_TYPE_PATH + "::db-server-postgres-ready",
            "urn:pulumi:prod::db-server::" + READY_TYPE_PATH + "::db-server-redis-ready",
        }


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(1, "1s"), (60, "1m0s"), (120, "2m0s"), (630, "10m30s"), (87000, "24h10m0s")],
)
def test_durations_are_written_as_the_provider_reads_them_back(seconds: int, written: str) -> None:
    assert go_duration(seconds) == written


def test_every_healthcheck_duration_is_in_gos_canonical_form(run_program: ProgramRunner) -> None:
    """Docker reports 120s as 2m0s; any other spelling is a change on every preview."""
    canonical = re.compile(r"(\d+h)?(\d+m)?\d+s")
    for container in run_program("prod").of_type(CONTAINER):
        health = container.inputs.get("healthcheck", {})
        for field in ("interval", "timeout", "startPeriod", "startInterval"):
            if field in health:
                value = health[field]
                assert canonical.fullmatch(value), (container.name, field, value)
                seconds = sum(
                    int(n) * {"h": 3600, "m": 60, "s": 1}[u]
                    for n, u in re.findall(r"(\d+)([hms])", value)
                )
                assert go_duration(seconds) == value, (container.name, field, value)


def test_postgres_healthcheck_runs_sql_over_tcp(run_program: ProgramRunner) -> None:
    deployment = run_program("dev")

    healthcheck = deployment.named("db-server-postgres").inputs["healthcheck"]
    kind, command = healthcheck["tests"]
    assert kind == "CMD-SHELL"
    # TCP, not the socket: the first-start init server listens on the socket only.
    assert "psql" in command
    assert "--host=127.0.0.1" in command
    assert "SELECT 1" in command
    assert "pg_isready" not in command


def test_redis_has_no_default_user_and_keeps_an_append_only_file(
    run_program: ProgramRunner, stack_name: str
) -> None:
    deployment = run_program(stack_name)
    settings = load_settings(_FakeConfig(stack_config(stack_name))).redis  # type: ignore[arg-type]

    redis = deployment.named("db-server-redis")
    uploads = {u["file"]: u["content"] for u in redis.inputs["uploads"]}
    config = dict(
        line.split(" ", 1)
        for line in uploads["/usr/local/etc/redis/redis.conf"].splitlines()
        if not line.startswith("#")
    )
    assert "requirepass" not in config
    assert config["aclfile"] == "/data/users.acl"  # on the volume, with the data
    assert config["databases"] == "256"
    assert config["appendonly"] == "yes"
    assert config["dir"] == "/data"
    assert config["appendfsync"] == settings.appendfsync
    assert config["maxmemory"] == settings.maxmemory
    assert config["maxmemory-policy"] == settings.maxmemory_policy
    # The server's own users: `default` off, the admin with a SHA-256 of its password only.
    assert uploads["/usr/local/etc/redis/server.acl"] == server_acl("dbadmin", MOCK_PASSWORD)
    assert MOCK_PASSWORD not in uploads["/usr/local/etc/redis/server.acl"]
    assert uploads["/run/secrets/redis_admin_password"] == MOCK_PASSWORD
    command = redis.inputs["command"]
    assert command[:2] == ["sh", "-c"]
    assert command[-1] == "/data"
    assert "exec docker-entrypoint.sh redis-server /usr/local/etc/redis/redis.conf" in command[2]


def test_no_secret_reaches_docker_inspect_and_uploads_stay_secret(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program("dev")

    for container in deployment.of_type(CONTAINER):
        visible = " ".join(
            container.inputs.get("envs", [])
            + container.inputs["command"]
            + container.inputs["healthcheck"]["tests"]
        )
        assert MOCK_PASSWORD not in visible, container.name
        assert "uploads" in container.secret_inputs
        assert "uploads" in container.additional_secret_outputs
    postgres = deployment.named("db-server-postgres").inputs
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in postgres["envs"]
    assert not any(env.startswith("POSTGRES_PASSWORD=") for env in postgres["envs"])


def test_every_url_is_exported_as_a_secret_with_the_password_url_encoded(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program("prod")
    encoded = "pw%23%25%5E%2B%3D~%21%2A.-_x"

    expected = {"admin_url", "admin_host_url", "redis_admin_url", "redis_admin_host_url"} | {
        f"{p.name}{suffix}" for p in projects.PROJECTS for suffix in URL_SUFFIXES
    }
    assert expected <= set(deployment.outputs)
    assert expected <= deployment.secret_outputs
    assert "summary" not in deployment.secret_outputs

    outputs = deployment.outputs
    assert outputs["crypto_ai_agent_url"] == (
        f"postgresql+psycopg://crypto:{encoded}@db-server-postgres:5432/crypto_ai_agent"
    )
    assert outputs["crypto_ai_agent_host_url"] == (
        f"postgresql+psycopg://crypto:{encoded}@127.0.0.1:5432/crypto_ai_agent"
    )
    # Each project's own Redis user (its role's name) on its own index.
    assert outputs["project2_db_redis_url"] == (
        f"redis://project2_user:{MOCK_REDIS_PASSWORD}@db-server-redis:6379/1"
    )
    assert outputs["project3_db_host_redis_url"] == (
        f"redis://project3_user:{MOCK_REDIS_PASSWORD}@127.0.0.1:6379/2"
    )
    assert outputs["redis_admin_host_url"] == f"redis://dbadmin:{encoded}@127.0.0.1:6379/0"
    assert (
        outputs["admin_host_url"]
        == f"postgresql+psycopg://dbadmin:{encoded}@127.0.0.1:5432/postgres"
    )


def test_summary_names_projects_indexes_and_containers(run_program: ProgramRunner) -> None:
    summary = run_program("prod").outputs["summary"]

    assert summary == {
        "network": "nginx-network",
        "postgres": {"mode": "container", "container": "db-server-postgres", "host_port": 5432},
        "redis": {"mode": "container", "container": "db-server-redis", "host_port": 6379},
        # Where `make pitr` and the runbooks find the archive's pieces.
        "archive": {
            "container": "db-server-pgbackrest",
            "data_volume": "db_server_pgdata",
            "data_path": "/var/lib/postgresql/data",
            "repository_volume": "db_server_pgbackrest",
            "object_store": None,
            "backup_volume": "db_server_backups",
        },
        "projects": {
            "crypto_ai_agent": {"database": "crypto_ai_agent", "user": "crypto", "redis_db": 3},
            "project2_db": {"database": "project2_db", "user": "project2_user", "redis_db": 1},
            "project3_db": {"database": "project3_db", "user": "project3_user", "redis_db": 2},
        },
    }


def test_prod_protects_and_retains_volumes_databases_and_roles(run_program: ProgramRunner) -> None:
    deployment = run_program("prod")

    # The pooler's lookup role and the exporters' role hold nothing: they are not guarded.
    project_roles = [r for r in deployment.of_type(ROLE) if PROJECT in r.parent]
    # The socket directory's volume, the restore drills' scratch and the metrics files hold no
    # data either.
    scratch = {"db-server-pgsocket", "db-server-pgbackrest-drill", "db-server-metrics-volume"}
    data_volumes = [v for v in deployment.of_type(VOLUME) if v.name not in scratch]
    guarded = (
        data_volumes
        + deployment.of_type("docker:index/network:Network")
        + deployment.of_type(DATABASE)
        + project_roles
    )
    # Four volumes (PostgreSQL's, Redis's, the backups', pgBackRest's repository), the shared
    # network, and per project.
    assert len(guarded) == 4 + 1 + 2 * len(projects.PROJECTS)
    for resource in guarded:
        assert resource.protect, resource.name
        assert resource.retain_on_delete, resource.name


def test_prod_limits_container_memory(run_program: ProgramRunner) -> None:
    deployment = run_program("prod")

    memory = {
        c.inputs["name"]: (c.inputs.get("memory"), c.inputs.get("memorySwap"))
        for c in _data_containers(deployment)
    }
    # Swap limit equal to the memory limit: no swap (a swapping database stalls every project).
    assert memory == {"db-server-postgres": (2048, 2048), "db-server-redis": (768, 768)}


def test_dev_sets_no_memory_or_swap_limit(run_program: ProgramRunner) -> None:
    for container in _data_containers(run_program("dev")):
        assert "memory" not in container.inputs, container.name
        assert "memorySwap" not in container.inputs, container.name


def test_dev_and_prod_share_no_container_volume_network_or_port(run_program: ProgramRunner) -> None:
    """Docker silently reuses a volume that has the name: dev on the prod host must not."""

    def claimed(stack_name: str) -> set[object]:
        deployment = run_program(stack_name)
        names: set[object] = {r.inputs["name"] for r in deployment.of_type(VOLUME)}
        names |= {r.inputs["name"] for r in deployment.of_type(CONTAINER)}
        names |= {r.inputs["name"] for r in deployment.of_type("docker:index/network:Network")}
        names |= {
            p["external"] for c in deployment.of_type(CONTAINER) for p in c.inputs.get("ports", [])
        }
        return names

    assert claimed("dev").isdisjoint(claimed("prod"))


def test_dev_can_be_torn_down(run_program: ProgramRunner) -> None:
    deployment = run_program("dev")

    for resource in deployment.resources:
        assert not resource.protect, resource.name
        assert not resource.retain_on_delete, resource.name


def test_admin_password_from_config_replaces_the_random_one(run_program: ProgramRunner) -> None:
    deployment = run_program(
        "dev",
        {"db-server:admin_password": "from-config/password"},
        secret_keys=("db-server:admin_password",),
    )

    names = {r.name for r in deployment.of_type(PASSWORD)}
    assert "db-server-admin-password" not in names
    assert deployment.outputs["admin_host_url"].startswith(
        "postgresql+psycopg://dbadmin:from-config%2Fpassword@"
    )
    assert "admin_host_url" in deployment.secret_outputs


def test_server_parameters_become_postgres_flags(run_program: ProgramRunner) -> None:
    deployment = run_program("prod")

    command = deployment.named("db-server-postgres").inputs["command"]
    assert command[0] == "postgres"
    assert command[1::2] == ["-c"] * (len(command) // 2)
    flags = dict(flag.split("=", 1) for flag in command[2::2])
    assert flags["max_connections"] == "200"


def test_reordering_projects_changes_no_resource_name(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {(r.type, r.name, r.parent) for r in run_program("dev").resources}
    monkeypatch.setattr(projects, "PROJECTS", list(reversed(projects.PROJECTS)))
    after = {(r.type, r.name, r.parent) for r in run_program("dev").resources}

    assert before == after


def test_adding_a_project_adds_only_that_projects_resources(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {(r.type, r.name) for r in run_program("dev").resources}
    extra = Project("analytics", user="analytics_user", redis_db=4)
    monkeypatch.setattr(projects, "PROJECTS", [*projects.PROJECTS, extra])
    deployment = run_program("dev")
    after = {(r.type, r.name) for r in deployment.resources}

    assert after - before == {
        (PROJECT, "analytics"),
        (PASSWORD, "analytics-password"),
        (ROLE, "analytics-role"),
        (DATABASE, "analytics-database"),
        (GRANT, "analytics-revoke-public"),
        (DYNAMIC, "analytics-redis-user"),
    }
    assert before <= after
    assert deployment.outputs["analytics_redis_url"].endswith("@db-server-dev-redis:6379/4")


def test_stack_settings_non_default_ports_reach_urls_and_provider(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program(
        "dev",
        {
            "db-server:postgres": {"host_port": 15432, "container_name": "t-pg", "volume": "t_pg"},
            "db-server:redis": {"host_port": 16379, "container_name": "t-redis", "volume": "t_rd"},
        },
    )

    assert deployment.outputs["project2_db_host_url"].endswith("@127.0.0.1:15432/project2_db")
    assert deployment.outputs["project2_db_url"].endswith("@t-pg:5432/project2_db")
    assert deployment.outputs["project2_db_host_redis_url"].endswith("@127.0.0.1:16379/1")
    assert deployment.outputs["project2_db_redis_url"].endswith("@t-redis:6379/1")
    (provider,) = deployment.of_type("pulumi:providers:postgresql")
    assert provider.inputs["port"] == "15432"


class _FakeConfig:
    """Just enough of ``pulumi.Config`` for ``load_settings``, outside a Pulumi run."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def get_object(self, key: str) -> object:
        return self.values.get(f"db-server:{key}")

    def get_secret(self, key: str) -> None:
        return None


def test_pulumi_yaml_declares_the_same_defaults_as_the_code() -> None:
    """Pulumi.yaml documents the defaults; settings/ applies them. They must agree."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    declared = {f"db-server:{k}": v["default"] for k, v in project["config"].items()}

    from_yaml = load_settings(_FakeConfig(declared))  # type: ignore[arg-type]
    built_in = load_settings(_FakeConfig({}))  # type: ignore[arg-type]
    assert from_yaml == built_in
