"""Backups that restore: the scripts in scripts/ against the server as the program runs it.

Two projects are set up the way the program's ProjectDatabase does (their own login role, a
database they own, PUBLIC's access revoked), then backed up, damaged, restored and verified
with the real scripts, checked from the outside with psycopg and redis.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, docker_cli
from tests.integration.program_server import (
    ADMIN_PASSWORD,
    Server,
    admin_connection,
    program_server,
    redis_client,
)

pytestmark = pytest.mark.integration

SCRIPTS = ROOT / "scripts"
PROJECTS = {"shop": "shop_user", "blog": "blog_user"}
PASSWORD = "project-pw-1"


@pytest.fixture(scope="module")
def server(postgres_image: str, redis_image: str) -> Iterator[Server]:
    with program_server(postgres_image, redis_image) as started:
        with admin_connection(started) as admin:
            for database, user in PROJECTS.items():
                admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'")
                admin.execute(f"CREATE DATABASE {database} OWNER {user} TEMPLATE template0")
                admin.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        yield started


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    return tmp_path / "backups"


def _env(server: Server, backups: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DB_SERVER_POSTGRES_CONTAINER": server.postgres.name,
        "DB_SERVER_REDIS_CONTAINER": server.redis.name,
        "DB_SERVER_BACKUP_DIR": str(backups),
    }


def _run(
    script: str,
    *args: str,
    server: Server,
    backups: Path,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a script against the test server; ``env`` overrides its environment."""
    result = subprocess.run(
        [str(SCRIPTS / script), *args],
        env={**_env(server, backups), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    # No password in anything a script prints, whatever happened.
    assert ADMIN_PASSWORD not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _project(
    server: Server, database: str, dbname: str | None = None
) -> psycopg.Connection[tuple[object, ...]]:
    """A login as the project's role, to its database or to ``dbname``."""
    return psycopg.connect(
        host="127.0.0.1",
        port=server.postgres_port,
        user=PROJECTS[database],
        password=PASSWORD,
        dbname=dbname or database,
        autocommit=True,
        connect_timeout=5,
    )


def _rows(server: Server, database: str, table: str) -> list[tuple[object, ...]]:
    with _project(server, database) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def _fill(server: Server) -> None:
    for database in PROJECTS:
        with _project(server, database) as conn:
            conn.execute("DROP TABLE IF EXISTS items, notes")
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
            conn.execute(
                "INSERT INTO items SELECT i, 'line ' || i || E'\\nwith a newline'"
                " FROM generate_series(1, 500) i"
            )
            conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
            conn.execute("INSERT INTO notes VALUES (1, 'kept'), (2, 'also kept')")
    with redis_client(server, 4) as client:
        client.set("session:1", "alive")


def _complete_backup(server: Server, backups: Path) -> Path:
    result = _run("backup-database.sh", server=server, backups=backups)
    backup = Path(result.stdout.strip())
    assert (backup / "COMPLETE").is_file()
    assert (backups / "latest").resolve() == backup.resolve()
    return backup


def test_a_backup_holds_every_database_globals_and_redis_readable_by_the_owner_only(
    server: Server, backups: Path
) -> None:
    _fill(server)
    backup = _complete_backup(server, backups)

    manifest = [line.split("\t") for line in (backup / "manifest.tsv").read_text().splitlines()]
    assert manifest[0] == ["kind", "file", "bytes", "sha256", "server_version", "owner"]
    kinds = {row[0]: row[1] for row in manifest[1:]}
    # Each database was dumped as its owner, who restores it; the globals by the admin.
    owners = {row[0]: row[5] for row in manifest[1:]}
    assert owners["database:shop"] == owners["rows:shop"] == "shop_user"
    assert owners["database:blog"] == "blog_user"
    assert owners["globals"] == owners["redis"] == ""
    assert kinds["database:shop"] == "shop.sql.gz"
    assert kinds["database:blog"] == "blog.sql.gz"
    assert kinds["globals"] == "globals.sql.gz"
    assert kinds["redis"] == "redis.rdb.gz"
    assert all(row[4].startswith("17.") for row in manifest[1:])
    assert (backup / "shop.rows.tsv").read_text() == (
        '"public"."items"\t500\n"public"."notes"\t2\n'
    )
    assert b"CREATE ROLE" in gzip.decompress((backup / "globals.sql.gz").read_bytes())
    assert gzip.decompress((backup / "redis.rdb.gz").read_bytes()).startswith(b"REDIS")

    assert backups.stat().st_mode & 0o777 == 0o700
    assert backup.stat().st_mode & 0o777 == 0o700
    for file in backup.iterdir():
        assert file.stat().st_mode & 0o077 == 0, file


def test_restore_brings_one_project_back_exactly_and_leaves_the_other_alone(
    server: Server, backups: Path
) -> None:
    _fill(server)
    before = {db: _rows(server, db, "items") for db in PROJECTS}
    _complete_backup(server, backups)
    with _project(server, "shop") as shop:
        shop.execute("DROP TABLE notes")
        shop.execute("UPDATE items SET name = 'changed' WHERE id <= 10")
        shop.execute("CREATE TABLE after_backup (id int)")
    with _project(server, "blog") as blog:
        blog.execute("INSERT INTO items VALUES (9999, 'written after the backup')")

    _run("restore-database.sh", "shop", "--yes", server=server, backups=backups)

    assert _rows(server, "shop", "items") == before["shop"]
    assert _rows(server, "shop", "notes") == [(1, "kept"), (2, "also kept")]
    with _project(server, "shop") as shop:
        tables = shop.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        assert tables == [("items",), ("notes",)]
        # Still the project's own database: owned by its role, closed to other roles.
        owner = shop.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'"
        ).fetchone()
        assert owner == ("shop_user",)
    assert _rows(server, "blog", "items")[-1] == (9999, "written after the backup")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(
            host="127.0.0.1",
            port=server.postgres_port,
            user="blog_user",
            password=PASSWORD,
            dbname="shop",
            connect_timeout=5,
        )
    # The replaced contents are kept, never dropped.
    with admin_connection(server) as admin:
        kept = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'shop__before_restore_%'"
        ).fetchall()
        assert len(kept) == 1
        admin.execute(f'DROP DATABASE "{kept[0][0]}"')


def test_restore_into_a_scratch_database_leaves_the_live_one_alone(
    server: Server, backups: Path
) -> None:
    _fill(server)
    _complete_backup(server, backups)
    with _project(server, "blog") as blog:
        blog.execute("DELETE FROM notes")

    _run("restore-database.sh", "blog", "--into", "blog_copy", server=server, backups=backups)

    # The copy is the project's own, like its live database: its role owns it and every table,
    # and the other project's role may not connect.
    with _project(server, "blog", dbname="blog_copy") as copy:
        assert copy.execute("SELECT count(*) FROM notes").fetchone() == (2,)
        assert copy.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall() == [("blog_user",)]
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _project(server, "shop", dbname="blog_copy")
    assert _rows(server, "blog", "notes") == []
    with admin_connection(server) as admin:
        admin.execute("DROP DATABASE blog_copy")


def test_restore_over_a_live_database_needs_confirmation(server: Server, backups: Path) -> None:
    _fill(server)
    _complete_backup(server, backups)
    with _project(server, "shop") as shop:
        shop.execute("DELETE FROM notes")

    result = _run("restore-database.sh", "shop", server=server, backups=backups, check=False)

    assert result.returncode != 0
    assert "not replacing shop without confirmation" in result.stderr
    assert _rows(server, "shop", "notes") == []


def test_verify_passes_on_a_good_backup_and_marks_it(server: Server, backups: Path) -> None:
    _fill(server)
    backup = _complete_backup(server, backups)

    result = _run("verify-backup.sh", server=server, backups=backups)

    assert (backup / "VERIFIED").is_file()
    assert "shop: restored as shop_user, 2 table(s) with matching row counts" in result.stderr
    with admin_connection(server) as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'db\\_server\\_scratch\\_%'"
        )
        assert left.fetchall() == []


def test_verify_fails_on_a_dump_damaged_after_the_backup(server: Server, backups: Path) -> None:
    _fill(server)
    backup = _complete_backup(server, backups)
    dump = backup / "shop.sql.gz"
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])

    result = _run("verify-backup.sh", server=server, backups=backups, check=False)

    assert result.returncode != 0
    assert "shop.sql.gz does not match the manifest" in result.stderr
    assert not (backup / "VERIFIED").exists()
    assert (backup / "VERIFY-FAILED").is_file()


def test_verify_fails_on_a_dump_that_was_cut_short_when_written(
    server: Server, backups: Path
) -> None:
    """A dump truncated before its manifest was written: checksums agree, the data does not."""
    _fill(server)
    backup = _complete_backup(server, backups)
    dump = backup / "shop.sql.gz"
    text = gzip.decompress(dump.read_bytes()).decode()
    dump.write_bytes(gzip.compress(text[: text.index("line 250")].encode()))
    manifest = backup / "manifest.tsv"
    lines = manifest.read_text().splitlines()
    digest = subprocess.run(
        ["sha256sum", str(dump)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    manifest.write_text(
        "\n".join(
            "\t".join(["database:shop", "shop.sql.gz", str(dump.stat().st_size), digest, f[4]])
            if (f := line.split("\t"))[1] == "shop.sql.gz"
            else line
            for line in lines
        )
        + "\n"
    )

    result = _run("verify-backup.sh", server=server, backups=backups, check=False)

    assert result.returncode != 0
    assert "shop: row counts in the dump differ" in result.stderr
    assert not (backup / "VERIFIED").exists()


def test_a_failing_step_fails_the_backup_and_it_never_becomes_latest(
    server: Server, backups: Path
) -> None:
    _fill(server)
    good = _complete_backup(server, backups)
    result = _run(
        "backup-database.sh",
        server=server,
        backups=backups,
        check=False,
        env={"DB_SERVER_REDIS_CONTAINER": "dbs-test-no-such-redis"},
    )

    assert result.returncode != 0
    assert (backups / "latest").resolve() == good.resolve()
    (partial,) = [p for p in backups.iterdir() if p.name.endswith(".partial")]
    assert not (partial / "COMPLETE").exists()
    assert (partial / "shop.sql.gz").exists()  # it failed after the dumps, at Redis


def test_a_backup_killed_midway_never_becomes_latest(server: Server, backups: Path) -> None:
    _fill(server)
    good = _complete_backup(server, backups)
    with _project(server, "blog") as blog:
        blog.execute("DROP TABLE IF EXISTS bulk")
        blog.execute(
            "CREATE TABLE bulk AS SELECT i, md5(i::text) AS h FROM generate_series(1, 1500000) i"
        )
    try:
        process = subprocess.Popen(
            [str(SCRIPTS / "backup-database.sh")],
            env=_env(server, backups),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".partial") for p in backups.iterdir()):
            assert process.poll() is None, "the backup finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) != 0

        assert (backups / "latest").resolve() == good.resolve()
        (partial,) = [p for p in backups.iterdir() if p.name.endswith(".partial")]
        assert not (partial / "COMPLETE").exists()
        with pytest.raises(subprocess.CalledProcessError):
            subprocess.run(
                [str(SCRIPTS / "restore-database.sh"), "blog", partial.name, "--into", "x"],
                env=_env(server, backups),
                capture_output=True,
                check=True,
                timeout=60,
            )
    finally:
        with _project(server, "blog") as blog:
            blog.execute("DROP TABLE IF EXISTS bulk")
        shutil.rmtree(backups, ignore_errors=True)


def test_the_scheduled_container_makes_a_verified_backup_within_its_interval(
    postgres_image: str, redis_image: str
) -> None:
    interval = 20
    with program_server(postgres_image, redis_image, backup_interval_s=interval) as server:
        assert server.backup is not None
        with admin_connection(server) as admin:
            admin.execute(f"CREATE ROLE shop_user LOGIN PASSWORD '{PASSWORD}'")
            admin.execute("CREATE DATABASE shop OWNER shop_user TEMPLATE template0")
        with _project(server, "shop") as shop:
            shop.execute("CREATE TABLE orders AS SELECT i AS id FROM generate_series(1, 42) i")
        with redis_client(server, 3) as client:
            client.set("cart:1", "3 items")

        written = time.monotonic()

        # A run that sees the data must be complete and verified within one interval (plus
        # the run's own time): the first run starts at once, the next ones every interval.
        deadline = written + interval + 60
        rows = ""
        while time.monotonic() < deadline:
            server.backup.check_alive()
            rows = server.backup.exec(
                "sh",
                "-c",
                "test -f /backups/latest/VERIFIED && cat /backups/latest/shop.rows.tsv || true",
            )
            if rows:
                break
            time.sleep(1)
        took = time.monotonic() - written
        print(f"verified backup of the new data after {took:.1f} s (interval {interval} s)")
        assert rows == '"public"."orders"\t42\n', server.backup.logs()
        assert took < interval + 30
        listing = server.backup.exec("ls", "/backups/latest").split()
        assert {"COMPLETE", "VERIFIED", "redis.rdb.gz", "globals.sql.gz"} <= set(listing)
        logs = server.backup.logs()
        assert "verified: /backups/" in logs
        assert ADMIN_PASSWORD not in logs
        assert ADMIN_PASSWORD not in docker_cli("inspect", server.backup.name)
