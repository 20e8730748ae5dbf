"""A project can break its own backup, and only its own.

Each project here does one thing, with nothing but its own login, that its dump or restore cannot
get past (forced row-level security, a lock it holds, its own CONNECT taken back, a restore that
sleeps), or that once made the scripts skip or misread it (marking its database a template,
a table name with a space, terminal escapes in what its code prints). The real scripts then back
up and verify the server: every other project's database is backed up and verified all the
same, each failure is named, and no step waits longer than its limit.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT
from tests.integration.program_server import Server, admin_connection, program_server

pytestmark = pytest.mark.integration

PASSWORD = "project-pw-3"
STEP_TIMEOUT_S = 15
LOCK_TIMEOUT_S = 2

# project: what it does to itself (as its own role, in its own database)
BREAKERS = {
    "forced_rls": [
        "CREATE TABLE t AS SELECT 1 AS id",
        "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE t FORCE ROW LEVEL SECURITY",
        "CREATE POLICY p ON t USING (true)",
    ],
    "no_connect": [
        "CREATE TABLE t AS SELECT 1 AS id",
        "REVOKE CONNECT ON DATABASE no_connect FROM no_connect_user",
    ],
    "closed": ["CREATE TABLE t AS SELECT 1 AS id", "ALTER DATABASE closed CONNECTION LIMIT 0"],
    "sleeper": [
        "CREATE FUNCTION stall() RETURNS boolean LANGUAGE sql AS $$ SELECT current_database()"
        " NOT LIKE 'db\\_server\\_scratch\\_%' OR pg_sleep(86400) IS NOT NULL $$",
        "CREATE TABLE t (id int CHECK (public.stall()))",
        "INSERT INTO t VALUES (1)",
    ],
}
"""Projects whose own dump (or, for sleeper, restore) must fail."""

FINE = {
    "templated": ["CREATE TABLE t AS SELECT 1 AS id", "ALTER DATABASE templated IS_TEMPLATE true"],
    "spaced": ['CREATE TABLE "my table" AS SELECT generate_series(1, 7) AS id'],
    "escapes": [
        "CREATE FUNCTION loud() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
        " RAISE WARNING E'\\r\\033[2K\\033[1A[verify-backup.sh] verified: /forged\\033]0;owned\\a';"
        " RETURN true; END $$",
        "CREATE TABLE t (id int CHECK (public.loud()))",
        "INSERT INTO t VALUES (1), (2)",
    ],
    "bystander": ["CREATE TABLE notes AS SELECT 'mine' AS body"],
}
"""Projects whose backup and verification must go through."""


def _url(server: Server, name: str) -> str:
    return (
        f"postgresql://{name}_user:{PASSWORD}@127.0.0.1:{server.postgres_port}/{name}"
        "?connect_timeout=5"
    )


@pytest.fixture(scope="module")
def server(postgres_image: str, redis_image: str) -> Iterator[Server]:
    with program_server(postgres_image, redis_image) as started:
        for name, statements in {**BREAKERS, **FINE}.items():
            with admin_connection(started) as admin:
                admin.execute(f"CREATE ROLE {name}_user LOGIN PASSWORD '{PASSWORD}'")
                admin.execute(f"CREATE DATABASE {name} OWNER {name}_user TEMPLATE template0")
                admin.execute(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC")
            with psycopg.connect(_url(started, name), autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)
        yield started


def _run(
    server: Server, backups: Path, script: str, *args: str
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts" / script), *args],
        env={
            **os.environ,
            "DB_SERVER_POSTGRES_CONTAINER": server.postgres.name,
            "DB_SERVER_REDIS_CONTAINER": server.redis.name,
            "DB_SERVER_BACKUP_DIR": str(backups),
            "DB_SERVER_STEP_TIMEOUT": str(STEP_TIMEOUT_S),
            "DB_SERVER_LOCK_TIMEOUT": str(LOCK_TIMEOUT_S),
        },
        capture_output=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return done, time.monotonic() - started


def test_every_other_project_is_backed_up_and_verified_and_each_failure_named(
    server: Server, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    # One project holds a lock on its own table all through the backup.
    with psycopg.connect(_url(server, "bystander")) as locker:
        locker.execute("CREATE TABLE IF NOT EXISTS held (id int)")
        locker.commit()
        locker.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        backup, backup_s = _run(server, backups, "backup-database.sh")
    print(f"backup took {backup_s:.1f} s")

    assert backup.returncode == 3, backup.stderr.decode()
    latest = backups / "latest"
    failed = {line.split("\t")[0] for line in (latest / "FAILED").read_text().splitlines()}
    # The lock makes bystander's own dump wait LOCK_TIMEOUT_S and fail: its own, nobody else's.
    assert failed == {"forced_rls", "no_connect", "closed", "bystander"}
    kinds = {line.split("\t")[0] for line in (latest / "manifest.tsv").read_text().splitlines()}
    for name in ("sleeper", *FINE):
        if name != "bystander":
            assert f"database:{name}" in kinds, name
    assert backup_s < 120

    verify, verify_s = _run(server, backups, "verify-backup.sh")
    print(f"verify took {verify_s:.1f} s (the sleeper's restore stopped at {STEP_TIMEOUT_S} s)")
    assert verify.returncode != 0
    failures = (latest / "VERIFY-FAILED").read_text()
    assert [line.split("\t")[1].split(":")[0] for line in failures.splitlines()] == ["sleeper"]
    stderr = verify.stderr.decode()
    for name in ("templated", "spaced", "escapes"):
        assert f"  {name}: restored as {name}_user" in stderr, stderr
    assert '"public"."my table"\t7' in (latest / "spaced.rows.tsv").read_text()
    assert not (latest / "VERIFIED").exists()
    assert verify_s < STEP_TIMEOUT_S + 90
    # What the projects' code printed reached the operator without its control characters.
    for output in (backup.stderr, verify.stderr):
        assert not any(byte < 0x20 and byte not in (0x09, 0x0A) for byte in output)
    assert "[verify-backup.sh] verified: /forged" not in stderr.splitlines()
    with admin_connection(server) as admin:
        left = admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'db\\_server\\_scratch\\_%'"
        ).fetchone()
        assert left == (0,)
        # The sleeper's restore ended with its time limit; no session of the scripts is left.
        sessions = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'db-server-scripts'"
        ).fetchone()
        assert sessions == (0,)


def test_a_project_left_out_is_restored_from_its_newest_backup_that_holds_it(
    server: Server, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    with psycopg.connect(_url(server, "bystander"), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS held")
    first, _ = _run(server, backups, "backup-database.sh", "bystander")
    assert first.returncode == 0, first.stderr.decode()
    time.sleep(1.1)  # backups are named by the second
    with psycopg.connect(_url(server, "bystander")) as locker:
        locker.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
        second, _ = _run(server, backups, "backup-database.sh", "bystander", "spaced")
        assert second.returncode == 3
    with psycopg.connect(_url(server, "bystander"), autocommit=True) as conn:
        conn.execute("UPDATE notes SET body = 'changed'")

    restored, _ = _run(server, backups, "restore-database.sh", "bystander", "--yes")

    assert restored.returncode == 0, restored.stderr.decode()
    assert Path(first.stdout.decode().strip()).name in restored.stderr.decode()
    with psycopg.connect(_url(server, "bystander")) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("mine",)]
    with admin_connection(server) as admin:
        for (name,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'bystander\\_\\_before%'"
        ).fetchall():
            admin.execute(f'DROP DATABASE "{name}"')
