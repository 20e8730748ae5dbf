"""A hostile project against the admin's own paths: backups, verification, restores.

A project plants code that runs when its dump is restored (tests/hostile_tenant.py), then the
real scripts run against the server as the program configures it, from the Docker host and in
the scheduled backup container. After each, the project's role is no more than it was, no file
was written on the server, its rows are restored, and no other project reached a scratch copy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests import hostile_tenant
from tests.conftest import ROOT
from tests.integration.program_server import Server, admin_connection, program_server

pytestmark = pytest.mark.integration

HOSTILE = ("evil_app", "evil_app_user")
BYSTANDER = ("bystander", "bystander_user")
SLOW = ("slow_app", "slow_app_user")
PASSWORD = "project-pw-2"
SLOW_ROWS = 12
"""Rows of slow_app's table, each taking 0.5 s to check: a restore held open for 6 s."""


def _url(server: Server, project: tuple[str, str], dbname: str | None = None) -> str:
    database, user = project
    return (
        f"postgresql://{user}:{PASSWORD}@127.0.0.1:{server.postgres_port}/{dbname or database}"
        "?connect_timeout=5"
    )


def _make_project(server: Server, project: tuple[str, str]) -> None:
    """What ProjectDatabase makes: a login role, a database it owns, PUBLIC's rights revoked."""
    database, user = project
    with admin_connection(server) as admin:
        admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'")
        admin.execute(f"CREATE DATABASE {database} OWNER {user} TEMPLATE template0")
        admin.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")


@pytest.fixture(scope="module")
def server(postgres_image: str, redis_image: str) -> Iterator[Server]:
    with program_server(postgres_image, redis_image) as started:
        for project in (HOSTILE, BYSTANDER, SLOW):
            _make_project(started, project)
        hostile_tenant.plant(_url(started, HOSTILE), HOSTILE[1])
        with psycopg.connect(_url(started, BYSTANDER), autocommit=True) as conn:
            conn.execute("CREATE TABLE notes AS SELECT 'mine' AS body")
        with psycopg.connect(_url(started, SLOW), autocommit=True) as conn:
            conn.execute("CREATE TABLE slow (id int CHECK (pg_sleep(0.5) IS NOT NULL))")
            conn.execute(f"INSERT INTO slow SELECT generate_series(1, {SLOW_ROWS})")
        yield started


def _script(
    server: Server, backups: Path, script: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / script), *args],
        env={
            **os.environ,
            "DB_SERVER_POSTGRES_CONTAINER": server.postgres.name,
            "DB_SERVER_REDIS_CONTAINER": server.redis.name,
            "DB_SERVER_BACKUP_DIR": str(backups),
        },
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _assert_held(server: Server, result: subprocess.CompletedProcess[str]) -> None:
    """The tenant is what it was, nothing was written on the server, and the script worked."""
    with admin_connection(server) as admin:
        assert hostile_tenant.attributes(admin, HOSTILE[1]) == {
            "rolsuper": False,
            "rolcreaterole": False,
            "rolcreatedb": False,
        }
    assert hostile_tenant.files_written(server.postgres.name) == []
    assert result.returncode == 0, result.stderr
    hostile_tenant.vectors_run_as(result.stderr, HOSTILE[1])


def test_backup_verify_and_restores_run_the_tenants_code_as_the_tenant_only(
    server: Server, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    expected_rows = dict.fromkeys(
        ("v_check", "v_trigger", "v_default", "v_index", "v_generated"), 3
    )

    backup = _script(server, backups, "backup-database.sh", HOSTILE[0], BYSTANDER[0])
    _assert_held(server, backup)
    assert f"{HOSTILE[0]} (as {HOSTILE[1]})" in backup.stderr

    verify = _script(server, backups, "verify-backup.sh")
    _assert_held(server, verify)
    # The restore ran the tenant's code: as the tenant, and it gained nothing.
    fired = hostile_tenant.vectors_run_as(verify.stderr, HOSTILE[1])
    assert fired == hostile_tenant.FIRED_BY_A_RESTORE, verify.stderr
    assert f"{HOSTILE[0]}: restored as {HOSTILE[1]}, 7 table(s)" in verify.stderr

    into = _script(server, backups, "restore-database.sh", HOSTILE[0], "--into", "evil_copy")
    _assert_held(server, into)
    assert hostile_tenant.vectors_run_as(into.stderr, HOSTILE[1]) == (
        hostile_tenant.FIRED_BY_A_RESTORE
    )
    assert hostile_tenant.planted_rows(_url(server, HOSTILE, "evil_copy")) == expected_rows

    replaced = _script(server, backups, "restore-database.sh", HOSTILE[0], "--yes")
    _assert_held(server, replaced)
    assert hostile_tenant.planted_rows(_url(server, HOSTILE)) == expected_rows
    with admin_connection(server) as admin:
        copies = admin.execute(
            "SELECT d.datname, pg_get_userbyid(d.datdba), d.datacl::text FROM pg_database d"
            " WHERE datname = 'evil_copy' OR datname LIKE 'evil\\_app\\_\\_before\\_restore\\_%'"
        ).fetchall()
        # Both copies are the tenant's and closed to PUBLIC (no "=c" entry in the ACL).
        assert len(copies) == 2
        for name, owner, acl in copies:
            assert owner == HOSTILE[1], name
            assert not any(entry.startswith("=") for entry in acl.strip("{}").split(",")), acl
        assert hostile_tenant.scratch_copies(admin) == []
        for name, _, _ in copies:
            admin.execute(f'DROP DATABASE "{name}"')
    # The bystander's data went through the same paths untouched.
    with psycopg.connect(_url(server, BYSTANDER)) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("mine",)]


def _scratch_databases(server: Server, *, restoring: bool = False) -> list[tuple[str, str]]:
    with admin_connection(server) as admin:
        return hostile_tenant.scratch_copies(admin, restoring=restoring)


def _verify_held_open(server: Server, backups: Path) -> tuple[subprocess.Popen[str], str, str]:
    """A verification of slow_app's backup, once its restore (0.5 s a row) is under way; with
    the scratch database's name and owner."""
    assert _script(server, backups, "backup-database.sh", SLOW[0]).returncode == 0
    process = _start_verify(server, backups)
    deadline = time.monotonic() + 60
    while not (found := _scratch_databases(server, restoring=True)):
        assert process.poll() is None, "the verification ended before its restore was seen"
        assert time.monotonic() < deadline, "no restore into a scratch database within 60 s"
        time.sleep(0.05)
    ((name, owner),) = found
    return process, name, owner


def _start_verify(server: Server, backups: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(ROOT / "scripts" / "verify-backup.sh")],
        env={
            **os.environ,
            "DB_SERVER_POSTGRES_CONTAINER": server.postgres.name,
            "DB_SERVER_BACKUP_DIR": str(backups),
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_while_a_verify_restores_no_other_project_may_connect_to_its_scratch_copy(
    server: Server, tmp_path: Path
) -> None:
    verify, name, owner = _verify_held_open(server, tmp_path / "backups")
    try:
        assert owner == SLOW[1]
        # Held open in the restore of slow_app (0.5 s a row): every other role is refused.
        for other in (HOSTILE, BYSTANDER):
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                psycopg.connect(_url(server, other, name)).close()
        assert verify.poll() is None, "the restore was over before the logins were tried"
        _, stderr = verify.communicate(timeout=120)
    finally:
        verify.kill()
    assert verify.returncode == 0, stderr
    assert _scratch_databases(server) == []


def test_a_verify_stopped_during_its_restore_drops_its_scratch_copy(
    server: Server, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    verify, _, _ = _verify_held_open(server, backups)
    try:
        verify.send_signal(signal.SIGTERM)
        _, stderr = verify.communicate(timeout=60)
    finally:
        verify.kill()
    assert verify.returncode != 0
    assert _scratch_databases(server) == [], stderr
    assert not (backups / "latest" / "VERIFIED").exists()


def test_the_scheduled_container_verifies_the_tenants_backup_as_the_tenant(
    postgres_image: str, redis_image: str
) -> None:
    with program_server(postgres_image, redis_image, backup_interval_s=20) as scheduled:
        assert scheduled.backup is not None
        _make_project(scheduled, HOSTILE)
        hostile_tenant.plant(_url(scheduled, HOSTILE), HOSTILE[1])

        deadline = time.monotonic() + 120
        while "v_check" not in scheduled.backup.exec(
            "sh", "-c", "test -f /backups/latest/VERIFIED && cat /backups/latest/*.rows.tsv || true"
        ):
            scheduled.backup.check_alive()
            assert time.monotonic() < deadline, scheduled.backup.logs()
            time.sleep(1)

        logs = scheduled.backup.logs()
        _assert_held(scheduled, subprocess.CompletedProcess([], 0, "", logs))
        assert hostile_tenant.vectors_run_as(logs, HOSTILE[1]) >= hostile_tenant.FIRED_BY_A_RESTORE


def test_a_project_cannot_keep_its_scratch_copy_from_being_dropped(
    server: Server, tmp_path: Path
) -> None:
    """It owns the scratch copy, so it may mark it a template (which DROP refuses) and hold a
    lock on it from its own database (which DROP ... WITH (FORCE) does not end)."""
    verify, name, _ = _verify_held_open(server, tmp_path / "backups")
    try:
        with psycopg.connect(_url(server, SLOW), autocommit=True) as own:
            own.execute(f'ALTER DATABASE "{name}" IS_TEMPLATE true')
        holder = psycopg.connect(_url(server, SLOW))
        holder.execute(f"COMMENT ON DATABASE \"{name}\" IS 'mine'")  # held: no commit
        _, stderr = verify.communicate(timeout=120)
    finally:
        verify.kill()
    assert verify.returncode == 0, stderr
    assert _scratch_databases(server) == []
    with pytest.raises(psycopg.OperationalError):  # its session was ended to drop the copy
        holder.execute("SELECT 1")
    holder.close()
