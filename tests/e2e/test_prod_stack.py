"""A stack configured like Pulumi.prod.yaml (protection, memory limits, server parameters,
scheduled backups), with its own names, ports and smaller sizes, run for real.

The tests share the stack and run in the order written.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml
from pulumi import automation as auto

from tests.conftest import ROOT, docker_cli, free_port
from tests.e2e.alerts import alert_fires, metrics_file, metrics_in_volume
from tests.e2e.harness import (
    PASSPHRASE,
    E2EStack,
    ProjectLine,
    connect,
    libpq_url,
    password_of,
    redis_client,
    secrets_in,
)
from tests.e2e.interrupt import Step, unknown_objects, up_killed_at

pytestmark = pytest.mark.e2e

KEPT = ProjectLine("orders", user="orders_user", redis_db=4)
LEAVING = ProjectLine("legacy", user="legacy_user", redis_db=5)
INTERVAL_S = 20
"""The backup interval of these stacks (prod's is a day)."""
HEALTHY_TIMEOUT_S = 180


def prod_settings(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pulumi.prod.yaml's settings, smaller, with backups every INTERVAL_S seconds."""
    config = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    settings: dict[str, dict[str, Any]] = {
        key.removeprefix("db-server:"): dict(value) for key, value in config.items()
    }
    settings["postgres"] |= {"memory_mb": 512, "shm_size_mb": 128}
    settings["postgres"]["parameters"] = {
        **settings["postgres"]["parameters"],
        "shared_buffers": "64MB",
    }
    settings["redis"] |= {"memory_mb": 256, "maxmemory": "128mb"}
    settings["backup"] |= {"interval_seconds": INTERVAL_S, "keep_daily": 2, "keep_weekly": 1}
    # The test images (the fixtures of `prod` check they exist), on ports of the stack's own.
    settings["pooler"] |= {
        "image": os.environ["DB_SERVER_TEST_PGBOUNCER_IMAGE"],
        "host_port": free_port(),
    }
    settings["metrics"] |= {
        "postgres_exporter_image": os.environ["DB_SERVER_TEST_POSTGRES_EXPORTER_IMAGE"],
        "redis_exporter_image": os.environ["DB_SERVER_TEST_REDIS_EXPORTER_IMAGE"],
        "postgres_exporter_port": free_port(),
        "redis_exporter_port": free_port(),
    }
    for key, values in overrides.items():
        settings.setdefault(key, {}).update(values)
    return settings


@pytest.fixture(scope="module")
def prod(
    make_stack: Callable[..., E2EStack],
    pgbouncer_image: str,
    postgres_exporter_image: str,
    redis_exporter_image: str,
) -> E2EStack:
    """The prod-like stack; the image fixtures make sure the pooler's and exporters' test
    images exist before prod_settings names them."""
    settings = prod_settings()
    stack = make_stack("prodlike", projects=(KEPT, LEAVING), settings=settings)
    assert stack.config["pooler"]["enabled"]
    assert stack.config["metrics"]["enabled"]
    assert stack.config["protection"] == {"protect": True, "retain_on_delete": True}
    stack.up()
    with connect(stack.project_url(LEAVING.name)) as conn:
        conn.execute("CREATE TABLE ledger AS SELECT g AS id FROM generate_series(1, 500) g")
    with redis_client(stack.project_url(LEAVING.name, "host_redis_url")) as client:
        client.set("session", "kept")
    return stack


def _health(container: str) -> str:
    return docker_cli("inspect", "--format", "{{.State.Health.Status}}", container).strip()


def test_prod_a_second_preview_right_after_up_is_empty(prod: E2EStack) -> None:
    """Memory limits, swap, server parameters, log options: nothing reads back differently."""
    prod.preview(expect_no_changes=True)
    dangling = ("volume", "ls", "--quiet", "--filter", "dangling=true")
    before = set(docker_cli(*dangling).split())
    prod.preview(refresh=True, expect_no_changes=True)
    # The refresh looks into the data volume in a container of its own, and leaves nothing.
    assert set(docker_cli(*dangling).split()) - before == set()
    inspect = docker_cli(
        "inspect",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
        prod.names.postgres,
    ).split()
    assert inspect == [str(512 * 1024**2)] * 2  # limit, and no swap beyond it


def _pooled(url: str) -> psycopg.Connection[Any]:
    """A connection through PgBouncer, once it listens (it starts without waiting on anything)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return connect(url)
        except psycopg.OperationalError as error:
            if "Connection refused" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_pooled_urls_log_each_project_in_to_its_own_database_only(
    prod: E2EStack, postgres_image: str
) -> None:
    outputs = prod.outputs()
    projects = (KEPT, LEAVING)
    for project in projects:
        url = outputs[f"{project.name}_host_pooled_url"]
        assert f"@127.0.0.1:{prod.config['pooler']['host_port']}/{project.name}" in url
        with _pooled(url) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == (
                project.user,
                project.name,
            )
        seen = docker_cli(
            *("run", "--rm", "--network", prod.names.network, postgres_image, "psql"),
            libpq_url(outputs[f"{project.name}_pooled_url"]),
            *("--no-psqlrc", "--tuples-only", "--no-align", "--command", "SELECT current_user"),
        )
        assert seen.split() == [project.user]
    # The other project's database, the admin databases, the pooler's own: refused.
    refused = []
    for project in projects:
        url = outputs[f"{project.name}_host_pooled_url"]
        others = [p.name for p in projects if p != project]
        for other in [*others, "postgres", "template1", "pgbouncer_auth"]:
            with pytest.raises(psycopg.OperationalError) as raised:
                connect(url, dbname=other).close()
            refused.append(str(raised.value))
    assert len(refused) == 2 * 4
    assert all("FATAL" in reason for reason in refused), refused
    # The admin, a superuser, cannot log in through the pooler at all.
    admin = outputs["admin_host_url"]
    kept_url = outputs[f"{KEPT.name}_host_pooled_url"]
    with pytest.raises(psycopg.OperationalError):
        connect(kept_url, user="dbadmin", password=password_of(admin)).close()


def test_metrics_endpoints_answer_with_per_project_series(prod: E2EStack) -> None:
    with connect(prod.project_url(KEPT.name)) as conn:
        conn.execute("CREATE TABLE sized AS SELECT g FROM generate_series(1, 10000) AS g")
    with redis_client(prod.project_url(KEPT.name, "host_redis_url")) as client:
        client.set("metric-key", "1")

    postgres = _scrape(prod.config["metrics"]["postgres_exporter_port"], "pg_up 1")
    sizes = {
        line.split('datname="')[1].split('"')[0]: float(line.split()[-1])
        for line in postgres
        if line.startswith("pg_database_size_bytes{")
    }
    assert sizes[KEPT.name] > 0
    assert sizes[LEAVING.name] > 0
    assert any(
        line.startswith("pg_stat_database_numbackends{") and f'datname="{KEPT.name}"' in line
        for line in postgres
    )
    redis_lines = _scrape(prod.config["metrics"]["redis_exporter_port"], "redis_up 1")
    assert 'redis_exporter_last_scrape_error{err=""} 0' in redis_lines
    keys = {
        line.split('db="')[1].split('"')[0]: float(line.split()[-1])
        for line in redis_lines
        if line.startswith("redis_db_keys{")
    }
    assert keys[f"db{KEPT.redis_db}"] >= 1
    assert keys[f"db{LEAVING.redis_db}"] >= 1
    # No password in any of the new containers' settings.
    secrets = {n: password_of(str(v)) for n, v in prod.outputs().items() if "url" in n}
    for container in ("pgbouncer", "postgres-exporter", "redis-exporter"):
        name = f"{prod.names.prefix}-{container}"
        assert secrets_in(docker_cli("inspect", name), secrets) == [], name


def _scrape(port: int, ready_line: str) -> list[str]:
    """The exporter's /metrics on 127.0.0.1, once it reports ``ready_line``."""
    deadline = time.monotonic() + 60
    lines: list[str] = []
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
                lines = page.read().decode().splitlines()
            if ready_line in lines:
                return lines
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"127.0.0.1:{port} never reported {ready_line!r}: {lines[-20:]}")
        time.sleep(1)


def test_f_removing_a_project_stops_on_protect_and_drops_nothing(prod: E2EStack) -> None:
    prod.write_projects([KEPT])

    with pytest.raises(auto.CommandError, match="protected"):
        prod.up()

    admin = prod.outputs()["admin_host_url"]
    with connect(admin) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (LEAVING.name,)
        ).fetchone() == (1,)
    with connect(prod.project_url(LEAVING.name)) as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (500,)


def test_f_after_the_documented_retire_step_up_forgets_the_project_and_keeps_its_data(
    prod: E2EStack, real_plugins: str
) -> None:
    """... even when that up is killed halfway and `make repair` finishes it."""
    pulumi_cli = real_plugins
    legacy_url = prod.project_url(LEAVING.name)
    legacy_redis_url = prod.project_url(LEAVING.name, "host_redis_url")
    retire = subprocess.run(
        [
            *("make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "retire"),
            *(f"PROJECT={LEAVING.name}", f"STACK={prod.stack_name}"),
        ],
        cwd=prod.workdir,
        env={
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{prod.state_dir}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert retire.returncode == 0, retire.stderr
    redis_admin = prod.outputs()["redis_admin_host_url"]

    # The up that forgets it is killed halfway, once its Redis user was switched off.
    with redis_client(redis_admin) as admin:

        def switched_off(_step: Step) -> bool:
            user = admin.acl_getuser(LEAVING.user)
            return user is not None and "off" in user["flags"]

        killed = up_killed_at(
            prod,
            pulumi_cli,
            step=lambda step: (
                step["op"] == "delete" and step["urn"].endswith(f"::{LEAVING.name}-redis-user")
            ),
            there=switched_off,
        )
    assert killed.pending, "the kill left nothing pending"
    repaired = prod.make("repair", f"STACK={prod.stack_name}", "YES=1")
    print(repaired.stdout)
    assert repaired.returncode == 0, repaired.stdout[-4000:] + repaired.stderr[-4000:]
    assert "pending delete of" in repaired.stdout

    assert f"{LEAVING.name}_url" not in prod.outputs()
    assert not [r for r in prod.pulumi("stack", "--show-urns").split() if f"::{LEAVING.name}-" in r]
    assert unknown_objects(prod, kept=frozenset({LEAVING.name, LEAVING.user})) == []
    _, events = prod.preview()
    assert events.changed() == {}
    with connect(legacy_url) as conn:  # role, password, database and rows all still there
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (500,)
    # Its Redis user is switched off, its keys stay for the project's return.
    with redis_client(legacy_redis_url) as client, pytest.raises(redis.AuthenticationError):
        client.ping()
    with redis_client(prod.outputs()["redis_admin_host_url"]) as admin:
        user = admin.acl_getuser(LEAVING.user)
        assert user is not None
        assert "off" in user["flags"]
    admin_on_index = (
        prod.outputs()["redis_admin_host_url"].rsplit("/", 1)[0] + f"/{LEAVING.redis_db}"
    )
    with redis_client(admin_on_index) as admin:
        assert admin.get("session") == b"kept"


def test_backups_turn_healthy_and_the_latest_one_restores(prod: E2EStack, tmp_path: Path) -> None:
    backup = f"{prod.names.prefix}-backup"
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while _health(backup) != "healthy":
        assert time.monotonic() < deadline, docker_cli("logs", "--tail", "40", backup)
        time.sleep(2)

    # The newest verified backup (`latest` may already be a newer one under verification).
    marker = docker_cli("exec", backup, "sh", "-c", "ls -1d /backups/*Z/VERIFIED | tail -n 1")
    verified = Path(marker.strip()).parent
    docker_cli("cp", f"{backup}:{verified}", str(tmp_path))
    local = tmp_path / verified.name
    assert (local / "COMPLETE").exists()
    restored = subprocess.run(
        [str(ROOT / "scripts" / "restore-database.sh"), KEPT.name, str(local), "--into", "check"],
        env={**os.environ, "DB_SERVER_POSTGRES_CONTAINER": prod.names.postgres},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr
    with connect(prod.outputs()["admin_host_url"]) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 'check'"
        ).fetchone() == (1,)
        conn.execute('DROP DATABASE "check"')


def test_a_stopped_backup_container_makes_backups_stale_fire_on_its_metrics(
    prod: E2EStack, prometheus_image: str, tmp_path: Path
) -> None:
    backup = f"{prod.names.prefix}-backup"
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while _health(backup) != "healthy":
        assert time.monotonic() < deadline, docker_cli("logs", "--tail", "40", backup)
        time.sleep(2)
    samples, read_at = metrics_file(backup, "db_server_backup"), time.time()
    # What the healthcheck says, the metrics say: verified, fresh, whole.
    assert read_at - samples["db_server_backup_last_success_timestamp_seconds"] < 2 * INTERVAL_S
    assert samples["db_server_backup_interval_seconds"] == INTERVAL_S
    assert samples["db_server_backup_databases_left_out"] == 0
    assert samples["db_server_backup_last_size_bytes"] > 0
    failing = alert_fires(prometheus_image, tmp_path / "failing", "BackupFailing", samples, read_at)
    assert not failing

    docker_cli("stop", backup)
    try:
        # Nothing rewrites the file now: held as it is, BackupsStale fires on it.
        volume = f"{prod.names.prefix}_metrics"
        image = prod.config["postgres"]["image"]
        assert metrics_in_volume(volume, "db_server_backup", image) == samples
        assert alert_fires(prometheus_image, tmp_path / "stale", "BackupsStale", samples, read_at)
    finally:
        docker_cli("start", backup)


def test_two_stacks_with_backups_run_side_by_side(
    prod: E2EStack, make_stack: Callable[..., E2EStack]
) -> None:
    first_backup = f"{prod.names.prefix}-backup"
    # Name, place and labels: the volume's CreatedAt is its folder's mtime, which each backup of
    # the first stack moves on.
    identity = ("volume", "inspect", "--format", "{{.Name}} {{.Mountpoint}} {{json .Labels}}")
    first_volume_before = docker_cli(*identity, f"{prod.names.prefix}_backups")

    second = make_stack("staging", projects=(KEPT,), settings=prod_settings())
    second.up()

    second_backup = f"{second.names.prefix}-backup"
    for container in (first_backup, second_backup):
        assert docker_cli("inspect", "--format", "{{.State.Running}}", container).strip() == "true"
    mounts = docker_cli(
        "inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", second_backup
    ).split()
    assert f"{second.names.prefix}_backups" in mounts
    assert not any(m.startswith(prod.names.prefix) for m in mounts)
    assert docker_cli(*identity, f"{prod.names.prefix}_backups") == first_volume_before


def test_a_stack_given_another_stacks_volume_name_is_refused(
    prod: E2EStack, make_stack: Callable[..., E2EStack]
) -> None:
    taken = f"{prod.names.prefix}_backups"
    backup = f"{prod.names.prefix}-backup"
    docker_cli("exec", backup, "touch", "/backups/sentinel")
    intruder = make_stack(
        "intruder", projects=(KEPT,), settings=prod_settings(backup={"volume": taken})
    )

    # The preview a user (and a pull request) sees already says so.
    with pytest.raises(auto.CommandError) as raised:
        intruder.preview()
    assert f"Docker volume '{taken}' already exists" in str(raised.value)
    with pytest.raises(auto.CommandError, match="already exists"):
        intruder.up()

    users = docker_cli("ps", "--all", "--filter", f"volume={taken}", "--format", "{{.Names}}")
    assert users.split() == [backup]  # mounted by its own stack's container only
    docker_cli("exec", backup, "test", "-f", "/backups/sentinel")  # and not emptied
