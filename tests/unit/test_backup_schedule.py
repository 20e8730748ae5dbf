"""The scheduled backup container, as the program asks for it."""

from typing import Any

import pytest

from tests.conftest import ROOT
from tests.unit.conftest import MOCK_PASSWORD, ProgramRunner
from tests.unit.test_bad_input import _fails_before_registering

CONTAINER = "docker:index/container:Container"


def _envs(container: Any) -> dict[str, str]:
    return dict(env.split("=", 1) for env in container.inputs["envs"])


def test_prod_backs_up_every_day_into_a_protected_volume(run_program: ProgramRunner) -> None:
    deployment = run_program("prod")

    backup = deployment.named("db-server-backup-container")
    assert backup.type == CONTAINER
    assert backup.delete_before_replace
    assert backup.inputs["restart"] == "unless-stopped"
    env = _envs(backup)
    assert env["BACKUP_INTERVAL_SECONDS"] == "86400"
    assert (env["BACKUP_KEEP_DAILY"], env["BACKUP_KEEP_WEEKLY"]) == ("7", "4")
    # PostgreSQL through its socket only: no host, user or password file to log in with.
    assert not {"PGHOST", "PGUSER", "PGPASSFILE"} & set(env)
    assert env["DB_SERVER_REDIS_HOST"] == "db-server-redis"
    volume = deployment.named("db-server-backup-volume")
    assert volume.inputs["name"] == "db_server_backups"
    assert volume.protect
    assert volume.retain_on_delete
    mounts = {
        (v["volumeName"], v["containerPath"], v.get("readOnly", False))
        for v in backup.inputs["volumes"]
    }
    assert mounts == {
        ("db_server_backups", "/backups", False),
        ("db_server_pgsocket", "/var/run/postgresql", False),
        ("db_server_redisdata", "/redis-data", True),
        ("db_server_metrics", "/var/lib/db-server-metrics", False),
    }
    assert env["DB_SERVER_METRICS_DIR"] == "/var/lib/db-server-metrics"
    # The metrics files are rewritten every run: nothing to protect, one volume for both writers.
    metrics = deployment.named("db-server-metrics-volume")
    assert metrics.inputs["name"] == "db_server_metrics"
    assert not metrics.protect
    pgbackrest = deployment.named("db-server-pgbackrest-container")
    assert ("db_server_metrics", "/var/lib/db-server-metrics") in {
        (v["volumeName"], v["containerPath"]) for v in pgbackrest.inputs["volumes"]
    }
    # The same socket directory as the server's.
    server = deployment.named("db-server-postgres")
    assert {(v["volumeName"], v["containerPath"]) for v in server.inputs["volumes"]} >= {
        ("db_server_pgsocket", "/var/run/postgresql")
    }
    socket = deployment.named("db-server-pgsocket")
    assert socket.inputs["name"] == "db_server_pgsocket"
    assert not socket.protect  # no data in it
    assert backup.inputs["networksAdvanced"][0]["name"] == "nginx-network"
    # It uses the server's own image (prod's: with pgBackRest), so pg_dump matches the server.
    assert backup.inputs["image"] == deployment.named("db-server-postgres").inputs["image"]


def test_dev_has_no_scheduled_backups(run_program: ProgramRunner) -> None:
    deployment = run_program("dev")

    assert [r.name for r in deployment.resources if "backup" in r.name] == []
    assert [r.name for r in deployment.resources if r.name == "db-server-metrics-volume"] == []
    assert deployment.of_type("db-server:backup_schedule:BackupSchedule") == []


def test_the_container_runs_the_repositorys_scripts_and_keeps_passwords_out_of_sight(
    run_program: ProgramRunner,
) -> None:
    backup = run_program("prod").named("db-server-backup-container")

    uploads = {u["file"]: u["content"] for u in backup.inputs["uploads"]}
    for script in ("backup-loop.sh", "backup-database.sh", "verify-backup.sh", "prune-backups.sh"):
        assert (
            uploads[f"/opt/db-server/scripts/{script}"] == (ROOT / "scripts" / script).read_text()
        )
    assert (
        uploads["/opt/db-server/scripts/lib/common.sh"]
        == (ROOT / "scripts" / "lib" / "common.sh").read_text()
    )
    # The Redis admin's password (BGSAVE), and no PostgreSQL password at all.
    secrets = {file for file in uploads if not file.startswith("/opt/db-server/scripts/")}
    assert secrets == {"/run/secrets/redis_admin_password"}
    assert uploads["/run/secrets/redis_admin_password"] == MOCK_PASSWORD
    assert _envs(backup)["DB_SERVER_REDIS_USER"] == "dbadmin"  # BGSAVE is the admin's
    assert "uploads" in backup.secret_inputs
    assert "uploads" in backup.additional_secret_outputs
    visible = " ".join(backup.inputs["envs"] + backup.inputs["entrypoints"])
    assert MOCK_PASSWORD not in visible
    assert backup.inputs["entrypoints"] == ["bash", "/opt/db-server/scripts/backup-loop.sh"]


def test_a_short_interval_from_settings_reaches_the_container(run_program: ProgramRunner) -> None:
    backup = run_program(
        "dev", {"db-server:backup": {"enabled": True, "interval_seconds": 30, "keep_daily": 2}}
    ).named("db-server-backup-container")

    env = _envs(backup)
    assert (env["BACKUP_INTERVAL_SECONDS"], env["BACKUP_KEEP_DAILY"]) == ("30", "2")
    assert backup.inputs["healthcheck"]["startPeriod"] == "10m30s"


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        ({"interval_seconds": 5}, "db-server:backup.interval_seconds: must be at least 10, got 5"),
        ({"keep_daily": 0}, "db-server:backup.keep_daily: must be at least 1, got 0"),
        (
            {"volume": "db_server_dev_pgdata"},
            "db-server:backup.volume: 'db_server_dev_pgdata' is already the database server's",
        ),
        ({"enabled": "yes"}, "db-server:backup.enabled: must be a boolean, got 'yes'"),
    ],
)
def test_bad_backup_settings_are_named(
    run_program: ProgramRunner, backup: dict[str, Any], message: str
) -> None:
    error = _fails_before_registering(run_program, {"db-server:backup": backup})

    assert message in error.problems


def test_each_stacks_backups_are_named_after_its_own_server(run_program: ProgramRunner) -> None:
    """A second stack with backups on one host must not take prod's container or volume."""

    def names(stack: str, overrides: dict[str, Any] | None = None) -> tuple[str, str]:
        deployment = run_program(stack, overrides)
        return (
            deployment.named("db-server-backup-container").inputs["name"],
            deployment.named("db-server-backup-volume").inputs["name"],
        )

    assert names("prod") == ("db-server-backup", "db_server_backups")
    assert names("dev", {"db-server:backup": {"enabled": True}}) == (
        "db-server-dev-backup",
        "db_server_dev_backups",
    )
    staging = {
        "db-server:backup": {"enabled": True},
        "db-server:postgres": {"container_name": "staging-pg", "volume": "staging_data"},
        "db-server:redis": {"container_name": "staging-redis", "volume": "staging_redis"},
    }
    assert names("prod", staging) == ("staging-pg-backup", "staging_data_backups")
    chosen = {"db-server:backup": {"enabled": True, "container_name": "b", "volume": "bv"}}
    assert names("dev", chosen) == ("b", "bv")
