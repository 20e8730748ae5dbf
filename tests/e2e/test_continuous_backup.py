"""Continuous backup, for real: pgBackRest archiving into a local volume and an S3-compatible
object store (tests/object_store.py) on the stack's own network, point-in-time recovery with
`make pitr`, no plaintext in the store, archiving that breaks and catches up, and the settings a
user gets wrong. The tests share one stack and run in the order written; the host-loss drill has
a module of its own (test_host_loss.py)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pulumi import automation as auto

from tests.conftest import docker_cli
from tests.e2e.alerts import alert_fires, metrics_file
from tests.e2e.harness import E2EStack, Names, ProjectLine, connect, password_of
from tests.object_store import KEY_ID, SECRET_KEY, ObjectStore, start_object_store

pytestmark = pytest.mark.e2e

SHOP = ProjectLine("shop", user="shop_user", redis_db=1)
BLOG = ProjectLine("blog", user="blog_user", redis_db=None)
PASSPHRASE = "the archive's passphrase, long enough"
BUCKET = "db-backups"
ARCHIVE_TIMEOUT_S = 10
MARKER = "plaintext-marker-7f3c1e"


def archive_settings(store: ObjectStore, **overrides: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "archive_timeout_seconds": ARCHIVE_TIMEOUT_S,
        "backup_interval_seconds": 300,
        "drill_interval_seconds": 600,
        "s3_endpoint": store.endpoint,
        "s3_bucket": BUCKET,
        "s3_uri_style": "path",
        "s3_ca_file": str(store.ca_file),
        **overrides,
    }


def set_archive_secrets(stack: E2EStack, passphrase: str = PASSPHRASE) -> None:
    stack.set_secret("db-server:s3_access_key_id", KEY_ID)
    stack.set_secret("db-server:s3_secret_access_key", SECRET_KEY)
    stack.set_secret("db-server:archive_passphrase", passphrase)


@pytest.fixture(scope="module")
def names() -> Names:
    return Names()


@pytest.fixture(scope="module")
def store(names: Names, s3_image: str, tmp_path_factory: pytest.TempPathFactory) -> ObjectStore:
    """The object store, on a network the test makes: the stack joins it (network.create
    false), as it joins an existing nginx-network."""
    docker_cli("network", "create", names.network)
    started = start_object_store(
        s3_image, names.network, f"{names.prefix}-s3", tmp_path_factory.mktemp("certs")
    )
    started.make_bucket(BUCKET)
    # The stack's cleanup removes what carries its prefix, this container and network too.
    return started


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., E2EStack], names: Names, store: ObjectStore) -> E2EStack:
    made = make_stack(
        "archive",
        projects=(SHOP, BLOG),
        settings={
            "network": {"name": names.network, "create": False},
            "archive": archive_settings(store),
        },
        names=names,
    )
    set_archive_secrets(made)
    started = time.monotonic()
    try:
        made.up()
    except auto.CommandError:
        print(
            subprocess.run(
                ["docker", "logs", names.postgres], capture_output=True, text=True
            ).stderr[-5000:]
        )
        raise
    print(f"cold up with continuous backup: {time.monotonic() - started:.1f} s")
    return made


def sidecar(stack: E2EStack) -> str:
    return f"{stack.names.prefix}-pgbackrest"


def pgbackrest(stack: E2EStack, *args: str) -> str:
    return docker_cli(
        "exec", "--user", "postgres", sidecar(stack), "pgbackrest", *args, timeout=600
    )


def info(stack: E2EStack, repo: int) -> dict[str, Any]:
    return json.loads(pgbackrest(stack, "info", "--output=json", f"--repo={repo}"))[0]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``check`` holds; fails after ``timeout_s``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(2)
    return time.monotonic() - started


def health(container: str) -> str:
    return docker_cli("inspect", "--format", "{{.State.Health.Status}}", container).strip()


def test_a_both_repositories_get_a_backup_and_the_wal_and_a_drill_restores_them(
    stack: E2EStack,
) -> None:
    took = wait_for(
        "a backup in both repositories",
        lambda: all(info(stack, repo).get("backup") for repo in (1, 2)),
        240,
    )
    print(f"first backups in both repositories {took:.0f} s after up")
    pgbackrest(stack, "check")  # a WAL switch that must reach both
    for repo in (1, 2):
        described = info(stack, repo)
        assert described["status"]["code"] == 0, described
        assert described["backup"][-1]["type"] == "full"
        assert described["archive"][0]["max"]
    assert info(stack, 2)["cipher"] == "aes-256-cbc"
    assert info(stack, 1)["cipher"] == "none"
    took = wait_for(
        "a passing restore drill",
        lambda: (
            "status\tok"
            in docker_cli(
                "exec",
                sidecar(stack),
                "sh",
                "-c",
                "cat /var/lib/db-server-drill/state/drill-report 2>/dev/null || true",
            )
        ),
        600,
    )
    report = docker_cli(
        "exec", sidecar(stack), "cat", "/var/lib/db-server-drill/state/drill-report"
    )
    print(f"drill report ({took:.0f} s):\n{report}")
    assert "repo\t2" in report  # from the object store: what a lost host leaves
    assert "databases\t3" in report  # postgres, shop, blog: each took its owner's login
    assert "unchecked\t\n" in report
    # Recovered to a restore point made on the live server just before: the WAL up to then is
    # in the archive, not only the backup.
    assert "point\tdb_server_drill_" in report
    assert (
        wait_for(
            "the pgBackRest container healthy", lambda: health(sidecar(stack)) == "healthy", 600
        )
        >= 0
    )


def run_drill(stack: E2EStack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", sidecar(stack), "bash", "/opt/db-server/scripts/archive-drill.sh"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_a_project_that_locks_itself_out_fails_no_ones_drill_or_pitr(stack: E2EStack) -> None:
    admin = stack.outputs()["admin_host_url"]
    with connect(stack.project_url(SHOP.name)) as conn:
        # Its own database closed to every login, and a count(*) of its own that would stall
        # whoever calls it unqualified.
        conn.execute(
            "CREATE FUNCTION public.slow_step(bigint) RETURNS bigint LANGUAGE sql"
            " AS 'SELECT pg_sleep(3600)::text::bigint'"
        )
        conn.execute("CREATE AGGREGATE public.count(*) (sfunc = public.slow_step, stype = bigint)")
        conn.execute(f"ALTER ROLE {SHOP.user} SET search_path = public, pg_catalog")
        conn.execute(f"ALTER DATABASE {SHOP.name} CONNECTION LIMIT 0")
    try:
        started = time.monotonic()
        drill = run_drill(stack)
        took = time.monotonic() - started
        print(f"drill with shop locked out: {took:.0f} s\n{drill.stderr[-1500:]}")
        assert drill.returncode == 0, drill.stderr
        report = docker_cli(
            "exec", sidecar(stack), "cat", "/var/lib/db-server-drill/state/drill-report"
        )
        assert "unchecked\tshop\n" in report
        assert "databases\t2" in report  # postgres and blog still checked

        started = time.monotonic()
        done = stack.make("pitr", f"STACK={stack.stack_name}", "TARGET=latest", timeout=900)
        print(f"make pitr (no switch) with shop locked out: {time.monotonic() - started:.0f} s")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "shop: does NOT take its owner" in done.stderr
        assert f"{BLOG.name}: {BLOG.user} logs in" in done.stderr
        kept = done.stderr.split("VOLUME=")[1].split()[0]  # checked, kept for a switch
        docker_cli("volume", "rm", kept)
    finally:
        with connect(admin) as conn:
            conn.execute(f"ALTER DATABASE {SHOP.name} CONNECTION LIMIT -1")
        with connect(stack.project_url(SHOP.name)) as conn:
            conn.execute(f"ALTER ROLE {SHOP.user} RESET search_path")
            conn.execute("DROP AGGREGATE public.count(*)")
            conn.execute("DROP FUNCTION public.slow_step(bigint)")


@pytest.mark.parametrize(
    "target",
    ["name:x'\nrestore_command = 'touch /tmp/owned", "yesterday", "2026-12-01 15:04:05"],
)
def test_a_target_pgbackrest_would_misread_is_refused(stack: E2EStack, target: str) -> None:
    done = stack.make("pitr", f"STACK={stack.stack_name}", f"TARGET={target}", "YES=1")

    assert done.returncode != 0
    assert "is not a time with its offset" in done.stderr


def test_b_the_object_store_holds_no_plaintext(stack: E2EStack, store: ObjectStore) -> None:
    with connect(stack.project_url(SHOP.name)) as conn:
        conn.execute(
            "CREATE TABLE secrets AS SELECT %s::text AS marker FROM generate_series(1, 200)",
            (MARKER,),
        )
    pgbackrest(stack, "backup", "--repo=2", "--type=diff")
    pgbackrest(stack, "check")
    wait_for(
        "Redis's snapshot in the object store",
        lambda: any("/redis/" in key for key, _ in store.objects(BUCKET)),
        420,
    )
    passwords = {
        name: password_of(str(url))
        for name, url in stack.outputs().items()
        if name.endswith("_host_url") or name.endswith("_host_redis_url")
    }
    objects = list(store.objects(BUCKET))
    # Under the stack's path (/db-server/<stack>): pgBackRest's archive/ and backup/, redis/.
    kinds = {key.split("/")[2] for key, _ in objects if key.count("/") >= 2}
    print(f"{len(objects)} objects, {sum(len(b) for _, b in objects)} bytes, under {sorted(kinds)}")
    assert {"archive", "backup", "redis"} <= kinds
    for key, body in objects:
        assert MARKER.encode() not in body, key
        for name, password in passwords.items():
            assert password.encode() not in body, (key, name)
        assert b"CREATE TABLE" not in body, key
        assert b"PGDMP" not in body, key


def _count(stack: E2EStack, table: str) -> int | None:
    try:
        with connect(stack.project_url(SHOP.name)) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    assert row is not None
    return int(row[0])


def test_c_make_pitr_brings_back_exactly_the_state_at_t2(stack: E2EStack) -> None:
    with connect(stack.project_url(SHOP.name)) as conn:
        conn.execute("CREATE TABLE ledger (id int, at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO ledger (id) SELECT generate_series(1, 100)")  # T1
        time.sleep(1.5)
        t2 = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        time.sleep(1.5)
        conn.execute("INSERT INTO ledger (id) SELECT generate_series(101, 150)")
        time.sleep(1.5)
        conn.execute("DROP TABLE ledger")  # T3: the bad migration
    pgbackrest(stack, "check")  # the WAL past T3 reached the repositories
    server_before = docker_cli("inspect", "--format", "{{.Id}}", stack.names.postgres).strip()
    url_before = stack.project_url(SHOP.name)

    started = time.monotonic()
    done = stack.make(
        "pitr", f"STACK={stack.stack_name}", f"TARGET={t2.isoformat(sep=' ')}", "YES=1"
    )
    took = time.monotonic() - started
    print(f"make pitr to {t2} and the switch: {took:.1f} s\n{done.stderr[-3000:]}")
    assert done.returncode == 0, done.stdout + done.stderr
    stack.reload_config()  # the switch named the new volume in the stack's file
    assert stack.config["postgres"]["volume"].startswith(f"{stack.names.pg_volume}_pitr_")

    assert stack.project_url(SHOP.name) == url_before
    assert _count(stack, "ledger") == 100  # T2: the first rows, not the later ones, not dropped
    assert (
        docker_cli("inspect", "--format", "{{.Id}}", stack.names.postgres).strip() != server_before
    )
    volumes = docker_cli("volume", "ls", "--format", "{{.Name}}").split()
    assert stack.names.pg_volume in volumes  # the old data stays until the user drops it
    assert any(v.startswith(f"{stack.names.pg_volume}_pitr_") for v in volumes)
    stack.preview(expect_no_changes=True)
    # The archive goes on, on the new timeline, whose history reached the object store: a
    # later recovery from an older backup follows it instead of making a second timeline 2.
    pgbackrest(stack, "check")
    with connect(stack.outputs()["admin_host_url"]) as conn:
        (timeline,) = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()  # type: ignore[misc]
    listed = pgbackrest(stack, "repo-ls", "--repo=2", "--recurse", "archive")
    assert f"{timeline:08X}.history" in listed


def test_d_archiving_that_breaks_shows_and_catches_up_without_a_loss(
    stack: E2EStack, store: ObjectStore, prometheus_image: str, tmp_path: Path
) -> None:
    admin = stack.outputs()["admin_host_url"]

    def archiver() -> tuple[int, int]:
        with connect(admin) as conn:
            row = conn.execute(
                "SELECT archived_count, failed_count FROM pg_stat_archiver"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    _, failed_before = archiver()
    store.stop_answering()
    try:
        with connect(stack.project_url(SHOP.name)) as conn:
            conn.execute("CREATE TABLE during_outage AS SELECT generate_series(1, 1000) AS id")
        with connect(admin) as conn:
            conn.execute("SELECT pg_switch_wal()")
        failing = wait_for("the archiver's failures", lambda: archiver()[1] > failed_before, 300)
        print(f"archive failures seen in pg_stat_archiver {failing:.0f} s after the store stopped")
        # The metrics the container writes (every 30 s) say so, and the shipped rule fires on them.
        seen = wait_for("the metrics", lambda: archive_failing(sidecar(stack)), 90)
        print(f"db_server_archive.prom shows it {failing + seen:.0f} s after the store stopped")
        samples = metrics_file(sidecar(stack), "db_server_archive")
        assert alert_fires(prometheus_image, tmp_path, "ArchiveFailing", samples, time.time())
        unhealthy = wait_for("the healthcheck", lambda: health(sidecar(stack)) == "unhealthy", 600)
        print(f"pgBackRest container unhealthy {failing + unhealthy:.0f} s after the store stopped")
    finally:
        store.answer_again()
    caught_up = wait_for(
        "archiving to catch up",
        lambda: _archived_after_failures(stack),
        600,
    )
    print(f"archiving caught up {caught_up:.0f} s after the store answered again")
    pgbackrest(stack, "check")
    assert _count(stack, "during_outage") == 1000
    wait_for("the healthcheck healthy again", lambda: health(sidecar(stack)) == "healthy", 900)
    wait_for("the metrics clear", lambda: not archive_failing(sidecar(stack)), 90)
    samples = metrics_file(sidecar(stack), "db_server_archive")
    assert not alert_fires(
        prometheus_image, tmp_path / "after", "ArchiveFailing", samples, time.time()
    )


def archive_failing(container: str) -> bool:
    """ArchiveFailing's test, on the container's metrics file."""
    samples = metrics_file(container, "db_server_archive")
    return (
        samples["db_server_archive_wal_last_failed_timestamp_seconds"]
        > samples["db_server_archive_wal_last_archived_timestamp_seconds"]
    )


def _archived_after_failures(stack: E2EStack) -> bool:
    with connect(stack.outputs()["admin_host_url"]) as conn:
        row = conn.execute(
            "SELECT last_archived_time > coalesce(last_failed_time, 'epoch') FROM pg_stat_archiver"
        ).fetchone()
    return bool(row and row[0])


def test_e_a_target_before_the_oldest_backup_is_refused_and_changes_nothing(
    stack: E2EStack,
) -> None:
    server = docker_cli("inspect", "--format", "{{.Id}}", stack.names.postgres).strip()
    volumes = set(docker_cli("volume", "ls", "--format", "{{.Name}}").split())

    done = stack.make("pitr", f"STACK={stack.stack_name}", "TARGET=2020-01-01 00:00:00+00", "YES=1")

    print(done.stderr[-1500:])
    assert done.returncode != 0
    assert "is before the oldest backup" in done.stderr
    assert docker_cli("inspect", "--format", "{{.Id}}", stack.names.postgres).strip() == server
    assert set(docker_cli("volume", "ls", "--format", "{{.Name}}").split()) == volumes


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"passphrase": "another passphrase, also long enough"}, "another passphrase"),
        ({"s3_endpoint": "nowhere.invalid:9000"}, "ERROR"),
        ({"s3_bucket": "no-such-bucket"}, "bucket does not exist"),
    ],
)
def test_f_a_wrong_archive_setting_stops_up_before_the_server_is_touched(
    stack: E2EStack, store: ObjectStore, change: dict[str, str], expected: str
) -> None:
    server = docker_cli("inspect", "--format", "{{.Id}}", stack.names.postgres).strip()
    settings = dict(stack.config["archive"])
    passphrase = change.pop("passphrase", None)
    if passphrase:
        set_archive_secrets(stack, passphrase)
    stack.set("archive", **change)
    try:
        with pytest.raises(auto.CommandError) as raised:
            stack.up()
        print("FULL ERROR:", str(raised.value).split("Diagnostics:")[-1][:4000])
        assert expected in str(raised.value)
        assert docker_cli("inspect", "--format", "{{.Id}}", stack.names.postgres).strip() == server
        with connect(stack.project_url(SHOP.name)) as conn:
            conn.execute("SELECT 1")
    finally:
        stack.replace("archive", **settings)
        set_archive_secrets(stack)
    stack.up()
    stack.preview(expect_no_changes=True)


def test_g_another_stacks_repository_is_refused(
    stack: E2EStack, store: ObjectStore, make_stack: Callable[..., E2EStack]
) -> None:
    intruder = make_stack(
        "intruder",
        projects=(SHOP,),
        settings={
            "network": {"name": stack.names.network, "create": False},
            # The archive stack's path in the bucket.
            "archive": archive_settings(store, s3_path=f"/db-server/{stack.stack_name}"),
        },
    )
    set_archive_secrets(intruder)

    with pytest.raises(auto.CommandError) as raised:
        intruder.up()

    print(str(raised.value)[-1500:])
    assert "holds the backups of a cluster" in str(raised.value)
    assert f"{intruder.names.prefix}-postgres" not in docker_cli(
        "ps", "-a", "--format", "{{.Names}}"
    )
    pgbackrest(stack, "check")  # the first stack's archive is intact
