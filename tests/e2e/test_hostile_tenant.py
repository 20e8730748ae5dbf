"""A hostile project against the program's own admin paths, on a stack of the real program.

One stack with scheduled backups: a hostile project plants code that runs when its dump is
restored (tests/hostile_tenant.py), a slow project holds a verification open, a bystander only
keeps its rows. The scheduled container verifies every interval; from the host, the README's
backup, verify and restore commands run in turn. After each, every role's rights are printed
and checked: the hostile project's never grow, no file is written on the server, its rows come
back, and no other project connects to a scratch copy while it exists.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests import hostile_tenant
from tests.conftest import ROOT, docker_cli
from tests.e2e.harness import E2EStack, ProjectLine, connect, connect_as, libpq_url

pytestmark = pytest.mark.e2e

HOSTILE = ProjectLine("evil_app", user="evil_app_user", redis_db=1)
BYSTANDER = ProjectLine("bystander", user="bystander_user", redis_db=2)
SLOW = ProjectLine("slow_app", user="slow_app_user", redis_db=None)
SLOW_ROWS = 12
"""Rows of slow_app's table, each taking 0.5 s to check: a restore held open for 6 s."""
INTERVAL_S = 15
TABLES = ("v_check", "v_trigger", "v_default", "v_index", "v_generated")


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., E2EStack]) -> E2EStack:
    made = make_stack(
        "hostile",
        projects=(HOSTILE, BYSTANDER, SLOW),
        settings={"backup": {"enabled": True, "interval_seconds": INTERVAL_S, "keep_daily": 2}},
    )
    made.up()
    hostile_tenant.plant(libpq_url(made.project_url(HOSTILE.name)), HOSTILE.user)
    with connect(made.project_url(BYSTANDER.name)) as conn:
        conn.execute("CREATE TABLE notes AS SELECT 'mine' AS body")
    with connect(made.project_url(SLOW.name)) as conn:
        conn.execute("CREATE TABLE slow (id int CHECK (pg_sleep(0.5) IS NOT NULL))")
        conn.execute(f"INSERT INTO slow SELECT generate_series(1, {SLOW_ROWS})")
    return made


def _rights(stack: E2EStack) -> dict[str, dict[str, bool]]:
    with connect(stack.outputs()["admin_host_url"]) as admin:
        return {
            p.user: hostile_tenant.attributes(admin, p.user) for p in (HOSTILE, BYSTANDER, SLOW)
        }


NONE = {"rolsuper": False, "rolcreaterole": False, "rolcreatedb": False}


def _check(stack: E2EStack, step: str, output: str) -> set[str]:
    """Prints and checks what a step left: every role's rights, files, who ran the vectors.
    Returns the vectors the step fired."""
    rights = _rights(stack)
    print(f"after {step}: " + "; ".join(f"{user} {r}" for user, r in rights.items()))
    assert all(r == NONE for r in rights.values()), (step, rights)
    assert hostile_tenant.files_written(stack.names.postgres) == [], step
    fired = hostile_tenant.vectors_run_as(output, HOSTILE.user)
    print(f"  {step} fired {sorted(fired)}, each as {HOSTILE.user}, never a superuser")
    return fired


def _env(stack: E2EStack, backups: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DB_SERVER_POSTGRES_CONTAINER": stack.names.postgres,
        "DB_SERVER_REDIS_CONTAINER": stack.names.redis,
        "DB_SERVER_BACKUP_DIR": str(backups),
    }


def _script(stack: E2EStack, backups: Path, *args: str) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / args[0]), *args[1:]],
        env=_env(stack, backups),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_before_anything_no_project_has_a_right_to_gain(stack: E2EStack) -> None:
    _check(stack, "plant", "")


def test_the_scheduled_container_verifies_the_hostile_dump_as_its_owner(stack: E2EStack) -> None:
    backup = f"{stack.names.prefix}-backup"
    deadline = time.monotonic() + 4 * INTERVAL_S + 120
    # A verified backup that holds the planted tables: taken after the planting.
    while "v_check" not in docker_cli(
        "exec",
        backup,
        "sh",
        "-c",
        "test -f /backups/latest/VERIFIED && cat /backups/latest/evil_app.rows.tsv || true",
    ):
        assert time.monotonic() < deadline, docker_cli("logs", "--tail", "40", backup)
        time.sleep(2)
    logs = subprocess.run(
        ["docker", "logs", backup], capture_output=True, text=True, check=True, timeout=60
    )
    fired = _check(stack, "the scheduled backup and verify", logs.stdout + logs.stderr)
    assert fired >= hostile_tenant.FIRED_BY_A_RESTORE


def test_the_readme_backup_verify_and_restores_run_the_tenants_code_as_the_tenant(
    stack: E2EStack, tmp_path: Path
) -> None:
    # From here on only the host's commands run: the scheduled container's own verifications
    # would share the server's scratch databases with theirs.
    docker_cli("stop", f"{stack.names.prefix}-backup")
    backups = tmp_path / "backups"
    hostile_url = libpq_url(stack.project_url(HOSTILE.name))
    steps = [
        ("backup-database.sh", ()),
        ("verify-backup.sh", ()),
        ("restore-database.sh", (HOSTILE.name, "--into", "evil_copy")),
        ("restore-database.sh", (HOSTILE.name, "--yes")),
    ]
    for script, args in steps:
        fired = _check(stack, f"{script} {' '.join(args)}", _script(stack, backups, script, *args))
        if script != "backup-database.sh":  # a dump runs nothing of the tenant's
            assert fired == hostile_tenant.FIRED_BY_A_RESTORE, script
    assert hostile_tenant.planted_rows(hostile_url) == dict.fromkeys(TABLES, 3)
    copy = hostile_url.rsplit("/", 1)[0] + "/evil_copy"
    assert hostile_tenant.planted_rows(copy) == dict.fromkeys(TABLES, 3)
    # The copies are as closed as the live database: the bystander may not connect.
    bystander = stack.project_url(BYSTANDER.name)
    with connect(stack.outputs()["admin_host_url"]) as admin:
        kept = [
            str(name)
            for (name,) in admin.execute(
                "SELECT datname FROM pg_database WHERE datname = 'evil_copy'"
                " OR datname LIKE 'evil\\_app\\_\\_before\\_restore\\_%'"
            ).fetchall()
        ]
        assert len(kept) == 2
        for name in kept:
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                connect_as(bystander, name).close()
            admin.execute(f'DROP DATABASE "{name}"'.encode())
    with connect(bystander) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("mine",)]


def test_while_a_verify_restores_no_other_project_connects_to_its_scratch_copy(
    stack: E2EStack, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    _script(stack, backups, "backup-database.sh", SLOW.name)
    admin_url = stack.outputs()["admin_host_url"]

    def restoring() -> list[tuple[str, str]]:
        with connect(admin_url) as admin:
            return hostile_tenant.scratch_copies(admin, restoring=True)

    verify = subprocess.Popen(
        [str(ROOT / "scripts" / "verify-backup.sh")],
        env=_env(stack, backups),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (found := [f for f in restoring() if f[1] == SLOW.user]):
            assert verify.poll() is None, "the verification ended before its restore was seen"
            assert time.monotonic() < deadline, "no restore into a scratch database within 60 s"
            time.sleep(0.05)
        ((name, owner),) = found
        assert owner == SLOW.user
        refused = []
        for other in (HOSTILE, BYSTANDER):
            with pytest.raises(psycopg.OperationalError) as raised:
                connect_as(stack.project_url(other.name), name).close()
            refused.append(str(raised.value))
        assert verify.poll() is None, "the restore was over before the logins were tried"
        _, stderr = verify.communicate(timeout=120)
    finally:
        verify.kill()
    print(f"while {name} was being restored: " + " | ".join(r.splitlines()[-1] for r in refused))
    assert all("permission denied for database" in r for r in refused), refused
    assert verify.returncode == 0, stderr
    with connect(admin_url) as admin:
        assert hostile_tenant.scratch_copies(admin) == []
