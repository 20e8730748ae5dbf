"""The isolation every stack must hold, whatever its servers: checks shared by the e2e suites.

Each check logs in with the projects' own URLs, as their apps do, tries what a project must not
be able to do to another project or to the server, and fails listing every attempt that worked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis

from tests.e2e.harness import (
    ProjectLine,
    connect,
    connect_as,
    login_refused,
    redis_client,
    sql_error,
)

ADMIN_DATABASES = ("postgres", "template1")

ESCALATIONS = [
    ("become the admin", "SET ROLE {admin}", "42501"),
    ("act as the admin", "SET SESSION AUTHORIZATION {admin}", "42501"),
    ("make itself superuser", "ALTER ROLE {user} SUPERUSER", "42501"),
    ("give itself CREATEDB", "ALTER ROLE {user} CREATEDB", "42501"),
    ("give itself CREATEROLE", "ALTER ROLE {user} CREATEROLE", "42501"),
    ("create a role", "CREATE ROLE intruder LOGIN PASSWORD 'x'", "42501"),
    ("create a database", "CREATE DATABASE intruder", "42501"),
    ("change another project's password", "ALTER ROLE {other_user} PASSWORD 'x'", "42501"),
    ("read a server file", "SELECT pg_read_file('/etc/passwd')", "42501"),
    ("list the data directory", "SELECT pg_ls_dir('.')", "42501"),
    ("run a program", "COPY (SELECT 1) TO PROGRAM 'id'", "42501"),
    ("write a server file", "COPY (SELECT 1) TO '/tmp/x'", "42501"),
    ("load an untrusted extension", "CREATE EXTENSION dblink", "42501"),
    ("load a foreign-data wrapper", "CREATE EXTENSION file_fdw", "42501"),
    ("read password hashes", "SELECT rolpassword FROM pg_authid", "42501"),
    ("change a server setting", "ALTER SYSTEM SET log_statement = 'none'", "42501"),
    ("turn off logging of its statements", "SET log_statement = 'none'", "42501"),
]
"""``(attempt, sql, sqlstate)``: what a project's role tries; ``{user}``, ``{other_user}`` and
``{admin}`` are filled in."""


def assert_databases_closed(outputs: dict[str, Any], projects: Sequence[ProjectLine]) -> int:
    """Every project is refused every other project's database and the admin databases;
    returns how many logins were refused."""
    denied = 0
    names = [p.name for p in projects]
    for project in projects:
        url = outputs[f"{project.name}_host_url"]
        for other in [*names, *ADMIN_DATABASES]:
            if other == project.name:
                continue
            # CONNECT was revoked from PUBLIC.
            with login_refused(f'permission denied for database "{other}"'):
                connect_as(url, other).close()
            denied += 1
    assert denied == len(projects) * (len(projects) - 1 + len(ADMIN_DATABASES))
    return denied


def try_escalation(url: str, sql: str, sqlstate: str, **names: str) -> None:
    """One escalation attempt with a project's URL, refused with ``sqlstate``."""
    with connect(url) as conn, sql_error(sqlstate):
        conn.execute(sql.format(**names).encode())


def _cmd(client: Any, *args: object) -> Any:
    """A raw command, as an attacker sends it."""
    return client.execute_command(*args)


def _refused(error: redis.ResponseError) -> bool:
    """Whether Redis refused the command: by ACL (NOPERM, or an ACL failure inside a script),
    or because the server's config switches the command off for everyone (DEBUG, MODULE)."""
    message = str(error)
    return (
        isinstance(error, redis.exceptions.NoPermissionError)
        or "has no permissions to run" in message
        or "command not allowed" in message
    )


def _attacks(victim: ProjectLine) -> dict[str, Callable[[redis.Redis], object]]:
    """What a project's credentials try against another project's data."""
    index = victim.redis_db
    return {
        "SELECT its index": lambda c: _cmd(c, "SELECT", index),
        "SELECT in MULTI": lambda c: _cmd(c.pipeline(), "SELECT", index).execute(),
        "SELECT in a script": lambda c: c.eval(f"return redis.call('SELECT', '{index}')", 0),
        "MOVE a key into it": lambda c: _cmd(c, "MOVE", "bait", index),
        "COPY a key into it": lambda c: _cmd(c, "COPY", "bait", "x", "DB", index),
        "SWAPDB with it": lambda c: _cmd(c, "SWAPDB", 0, index),
        "SUBSCRIBE to its channel": lambda c: _cmd(c, "SUBSCRIBE", f"{victim.name}:events"),
        "PUBLISH on its channel": lambda c: c.publish(f"{victim.name}:events", "x"),
        "PSUBSCRIBE to every channel": lambda c: _cmd(c, "PSUBSCRIBE", "*"),
        "kill its connections": lambda c: _cmd(c, "CLIENT", "KILL", "USER", victim.user),
    }


SERVER_ATTACKS: dict[str, Callable[[redis.Redis], object]] = {
    "FLUSHALL": lambda c: c.flushall(),
    "CONFIG GET": lambda c: c.config_get("*"),
    "CONFIG SET maxmemory": lambda c: c.config_set("maxmemory", "1mb"),
    "ACL LIST": lambda c: c.acl_list(),
    "ACL SETUSER": lambda c: _cmd(c, "ACL", "SETUSER", "intruder", "on", ">x", "+@all"),
    "SHUTDOWN NOSAVE": lambda c: _cmd(c, "SHUTDOWN", "NOSAVE"),
    "DEBUG SLEEP": lambda c: _cmd(c, "DEBUG", "SLEEP", "0"),
    "MONITOR": lambda c: _cmd(c, "MONITOR"),
    "SAVE": lambda c: c.save(),
    "BGSAVE": lambda c: c.bgsave(),
    "BGREWRITEAOF": lambda c: c.bgrewriteaof(),
    "REPLICAOF": lambda c: _cmd(c, "REPLICAOF", "127.0.0.1", "1"),
    "MODULE LOAD": lambda c: _cmd(c, "MODULE", "LOAD", "/tmp/x.so"),
    "SCRIPT FLUSH": lambda c: c.script_flush(),
    "SCRIPT KILL": lambda c: c.script_kill(),
    "FUNCTION FLUSH": lambda c: _cmd(c, "FUNCTION", "FLUSH"),
    "FUNCTION LOAD": lambda c: _cmd(
        c, "FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('x', function() end)"
    ),
    "CLIENT LIST": lambda c: c.client_list(),
    "CLIENT KILL": lambda c: _cmd(c, "CLIENT", "KILL", "ADDR", "127.0.0.1:1"),
    "KEYS": lambda c: c.keys("*"),
    "PUBSUB CHANNELS": lambda c: _cmd(c, "PUBSUB", "CHANNELS"),
    "SLOWLOG GET": lambda c: c.slowlog_get(),
    "LATENCY LATEST": lambda c: _cmd(c, "LATENCY", "LATEST"),
    "MEMORY STATS": lambda c: _cmd(c, "MEMORY", "STATS"),
    "MIGRATE": lambda c: _cmd(c, "MIGRATE", "127.0.0.1", 1, "bait", 0, 100),
}


def assert_redis_attacks_hold(
    outputs: dict[str, Any], projects: Sequence[ProjectLine], ca_file: str | None = None
) -> tuple[int, int]:
    """Every project's Redis credentials try every attack on the server and on each other
    project; all are refused and each project's data is intact. Returns (held, tried).
    ``ca_file`` checks a TLS server's certificate."""
    for project in projects:  # each project's own data, to be found intact afterwards
        with redis_client(outputs[f"{project.name}_host_redis_url"], ca_file) as client:
            client.set("treasure", project.name)
            client.set("bait", "x")
    held, tried, succeeded = 0, 0, []
    for attacker in projects:
        url = outputs[f"{attacker.name}_host_redis_url"]
        attacks = dict(SERVER_ATTACKS)
        for victim in projects:
            if victim != attacker:
                attacks |= {f"{k} of {victim.name}": v for k, v in _attacks(victim).items()}
        for name, attack in attacks.items():
            tried += 1
            with redis_client(url, ca_file) as client:
                try:
                    attack(client)
                except redis.ResponseError as error:
                    if _refused(error):
                        held += 1
                    else:
                        succeeded.append(f"{attacker.name}: {name}: {error}")
                    continue
            succeeded.append(f"{attacker.name}: {name}")
        # Without any SELECT a connection is in database 0, which is no project's.
        with redis_client(url.rsplit("/", 1)[0] + "/0", ca_file) as client:
            tried += 1
            assert client.client_info()["db"] == 0
            if client.get("treasure") is None and not list(client.scan_iter("*")):
                held += 1
            else:
                succeeded.append(f"{attacker.name}: read database 0")
    assert succeeded == [], "\n".join(succeeded)
    assert held == tried
    for project in projects:
        with redis_client(outputs[f"{project.name}_host_redis_url"], ca_file) as client:
            assert client.get("treasure") == project.name.encode()
    return held, tried
