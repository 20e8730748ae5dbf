"""A hostile tenant's code, planted in its own database for the admin's paths to run.

With nothing but its own URL, a project can make the server run functions it wrote whenever its
dump is restored: a CHECK constraint or a generated column during COPY, an index expression, a
materialized view's refresh. Each such function here tries to become a superuser (directly,
after RESET ROLE, through SET SESSION AUTHORIZATION) and to write a file on the server (COPY TO
PROGRAM, COPY TO a file), each try in its own exception block so that a refusal stays silent, as
an attacker would write it. Each run reports itself as a WARNING (which psql prints on stderr),
so a test sees which vectors the scripts fired, and as whom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.conftest import docker_cli

VECTORS = ("check", "trigger", "default", "index", "generated", "view", "matview")
"""Every place the tenant hides a call to its function."""

FIRED_BY_A_RESTORE = frozenset({"check", "generated", "index", "matview"})
"""The vectors a plain-format restore runs: the others wait for the tenant's own writes."""

PWNED = "/tmp/db-server-pwned"
"""Prefix of the files a vector writes on the server when it gets the rights to."""

_REPORT = re.compile(
    r"db-server-vector (\w+) ran: current_user=(\S+) session_user=(\S+) superuser=(\w+)"
    r" escalated=(\w+)"
)


@dataclass(frozen=True)
class Run:
    """One run of a vector's function, as it reported itself."""

    vector: str
    current_user: str
    session_user: str
    superuser: bool
    escalated: bool


def _evil_function(role: str, admin: str) -> str:
    attempts = [
        f"EXECUTE 'ALTER ROLE {role} SUPERUSER CREATEROLE CREATEDB'",
        f"EXECUTE 'RESET ROLE'; EXECUTE 'ALTER ROLE {role} SUPERUSER CREATEROLE CREATEDB'",
        f"EXECUTE 'SET SESSION AUTHORIZATION {admin}'; EXECUTE 'ALTER ROLE {role} SUPERUSER'",
        "EXECUTE format('COPY (SELECT %L) TO PROGRAM %L', vector, "
        f"'cat > {PWNED}-program-' || vector)",
        f"EXECUTE format('COPY (SELECT %L) TO %L', vector, '{PWNED}-file-' || vector)",
    ]
    body = "\n".join(
        f"  BEGIN {attempt}; EXCEPTION WHEN OTHERS THEN NULL; END;" for attempt in attempts
    )
    return f"""
CREATE FUNCTION evil(vector text) RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
  was text := current_setting('is_superuser');
BEGIN
{body}
  RAISE WARNING 'db-server-vector % ran: current_user=% session_user=% superuser=% escalated=%',
    vector, current_user, session_user, was,
    (SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = '{role}');
  RETURN true;
END $fn$;
"""


def _meta_command_tables(database: str, role: str, admin: str) -> list[str]:
    """Table names for psql: a tab, then a name that is a meta-command once a tab has split a
    script's list of names and left a quote open; the shell it starts (on the server's
    container, where local logins are trusted) reads its orders from a table."""
    runner = f"b\\! psql -d {database} -Atc'table public.c'|sh #"
    assert len(runner.encode()) <= 63, runner
    orders = (
        f"touch {PWNED}-meta-command; "
        f"psql -U {admin} -d postgres -c 'ALTER ROLE {role} SUPERUSER CREATEROLE CREATEDB'"
    )
    return [
        'CREATE TABLE public."a\t" (i int)',
        f'CREATE TABLE public."{runner}" (i int)',
        "CREATE TABLE public.c (orders text)",
        "INSERT INTO public.c VALUES (" + "'" + orders.replace("'", "''") + "')",
    ]


def plant(url: str, role: str, admin: str = "dbadmin") -> None:
    """Plants every vector in the database the URL (a project's own) logs in to, with rows in
    each table; the tenant's role, ``role``, is what its function tries to escalate."""
    database = url.split("?")[0].rsplit("/", 1)[1]
    statements = [
        _evil_function(role, admin),
        # Index expressions and generated columns need an immutable function: a lie it may tell.
        "CREATE FUNCTION evil_int(id int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
        "$$ BEGIN PERFORM public.evil('index'); RETURN id; END $$",
        "CREATE FUNCTION evil_generated(id int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
        "$$ BEGIN PERFORM public.evil('generated'); RETURN id; END $$",
        "CREATE FUNCTION evil_trigger() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM public.evil('trigger'); RETURN NEW; END $$",
        "CREATE TABLE v_check (id int CHECK (public.evil('check')))",
        "CREATE TABLE v_trigger (id int)",
        "CREATE TRIGGER v_trigger BEFORE INSERT OR UPDATE ON v_trigger "
        "FOR EACH ROW EXECUTE FUNCTION evil_trigger()",
        "CREATE TABLE v_default (id int, d boolean DEFAULT public.evil('default'))",
        "CREATE TABLE v_index (id int)",
        "CREATE TABLE v_generated"
        " (id int, g int GENERATED ALWAYS AS (public.evil_generated(id)) STORED)",
        "CREATE VIEW v_view AS SELECT public.evil('view') AS x",
        *_meta_command_tables(database, role, admin),
    ]
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        for statement in statements:
            conn.execute(statement)
        for table in ("v_check", "v_trigger", "v_default", "v_index", "v_generated"):
            conn.execute(f"INSERT INTO {table} (id) SELECT generate_series(1, 3)")
        conn.execute("CREATE INDEX v_index_evil ON v_index ((public.evil_int(id)))")
        conn.execute("CREATE MATERIALIZED VIEW v_matview AS SELECT public.evil('matview') AS x")
        # A default on its own role that would make every restore as it fail, were the
        # scripts' sessions to take it (its own later sessions read only: a dedicated tenant).
        conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
        # The one vector that needs a superuser to plant at all is refused outright.
        try:
            conn.execute(
                "CREATE EVENT TRIGGER v_event ON ddl_command_start EXECUTE FUNCTION evil_trigger()"
            )
        except psycopg.errors.InsufficientPrivilege:
            pass
        else:
            raise AssertionError("a project's role created an event trigger")


def planted_rows(url: str, **connect: Any) -> dict[str, int]:
    """Rows in each planted table, read as the tenant (the restored ones must be there);
    ``connect`` goes to psycopg (a CA file, say)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5, **connect) as conn:
        conn.execute("SET statement_timeout = 0")
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("v_check", "v_trigger", "v_default", "v_index", "v_generated")
        }


def attributes(conn: psycopg.Connection[Any], role: str) -> dict[str, bool]:
    """The role's rights that the vectors try to give it."""
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s", (role,)
    ).fetchone()
    assert row is not None, f"no role {role}"
    return dict(zip(("rolsuper", "rolcreaterole", "rolcreatedb"), row, strict=True))


def files_written(container: str) -> list[str]:
    """Files the vectors managed to write in the PostgreSQL container."""
    listed = docker_cli("exec", container, "sh", "-c", f"ls -1 {PWNED}-* 2>/dev/null || true")
    return listed.split()


SCRATCH_NAMES = "db\\_server\\_scratch\\_%"
"""LIKE pattern of the scripts' scratch databases."""


def scratch_copies(
    admin: psycopg.Connection[Any], *, restoring: bool = False
) -> list[tuple[str, str]]:
    """``(name, owner)`` of the scratch databases on the server; with ``restoring``, only those
    with their owner's session in them (a restore under way)."""
    in_use = (
        " AND EXISTS (SELECT FROM pg_stat_activity a"
        " WHERE a.datname = d.datname AND a.usename = pg_get_userbyid(d.datdba))"
        if restoring
        else ""
    )
    rows = admin.execute(
        "SELECT d.datname, pg_get_userbyid(d.datdba) FROM pg_database d"
        f" WHERE d.datname LIKE %s{in_use}",
        (SCRATCH_NAMES,),
    ).fetchall()
    return [(str(name), str(owner)) for name, owner in rows]


def runs(text: str) -> list[Run]:
    """Every vector run reported in a script's output."""
    return [
        Run(v, cur, ses, superuser == "on", escalated in ("t", "true"))
        for v, cur, ses, superuser, escalated in _REPORT.findall(text)
    ]


def vectors_run_as(text: str, role: str) -> set[str]:
    """The vectors whose runs ``text`` reports, after checking that each ran logged in as
    ``role`` (no SET ROLE from another session), without a superuser's rights, gaining none."""
    fired = set()
    for run in runs(text):
        assert (run.current_user, run.session_user) == (role, role), run
        assert not run.superuser, run
        assert not run.escalated, run
        fired.add(run.vector)
    return fired
