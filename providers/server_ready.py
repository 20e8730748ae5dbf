"""Readiness of a server the stack just started: a real login, polled from the Docker host.

Docker's healthcheck runs its first check one ``interval`` after start; the setting that checks
sooner (``start_interval``) needs Docker Engine 25 (API 1.44), and on older engines the
container is refused outright. So the stack does not wait on Docker's health status at all: it
waits here, logging in through the port the container publishes on 127.0.0.1, every 50 ms, and
the PostgreSQL provider takes its host and port from this resource's ``ready_*`` outputs. The
provider therefore never dials a server before it accepts a login: the official image's
first-start init runs a temporary server that listens on its unix socket only, so a TCP login
succeeds only once the real server is up.

A refresh tries one login and, when the server does not take it (stopped, removed, still
starting), reports this resource gone: the next update waits for the server again before the
provider dials it. With ``pulumi up --refresh --run-program`` (``make repair``) that happens in
program order, after the container has been started or recreated.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from providers import diff_fields, redis_client

POLL_SECONDS = 0.05
"""Time between two login attempts."""

# A changed container or address means a new server to wait for; a changed password or TLS
# setting only needs the next login to work with it.
_REPLACE_ON = ("kind", "container_id", "host", "port")
_COMPARED = (*_REPLACE_ON, "user", "password", "timeout_seconds", "external")

# What the admin of an external PostgreSQL server needs, without being a superuser: to create
# the projects' login roles, and their databases.
_POSTGRES_PRIVILEGES = {"rolcreaterole": "CREATEROLE", "rolcreatedb": "CREATEDB"}

# What the admin of an external Redis server runs on the projects' users.
_REDIS_COMMANDS = (
    ("ACL", "SETUSER", "db-server-check"),
    ("ACL", "DELUSER", "db-server-check"),
    ("ACL", "SAVE"),
    ("CLIENT", "KILL", "USER", "db-server-check"),
)

# Login failures that waiting cannot cure: a wrong password, an unknown admin role, a client
# address the server refuses. libpq gives a failed connection no SQLSTATE, only its message.
_FATAL_POSTGRES_MESSAGES = ("password authentication failed", "does not exist", "pg_hba.conf")


class ServerNotReadyError(Exception):
    """The server did not accept a login in time, or refused it for good."""


class _LoginFailedError(Exception):
    """One login that did not work; ``fatal`` when waiting cannot make it work."""

    def __init__(self, error: Exception, *, fatal: bool) -> None:
        super().__init__(str(error))
        self.fatal = fatal


def _postgres_login(props: dict[str, Any]) -> list[str]:
    import psycopg  # here: the provider process needs it, the program does not

    external = props.get("external") or {}
    try:
        with psycopg.connect(
            host=props["host"],
            port=int(props["port"]),
            user=props["user"],
            password=props["password"],
            dbname=external.get("database") or "postgres",
            sslmode=external.get("sslmode") or "disable",
            sslrootcert=external.get("ca_file"),
            connect_timeout=2,
            autocommit=True,
        ) as conn:
            conn.execute("SELECT 1")
            return _postgres_admin_check(conn, props) if external else []
    except psycopg.Error as error:
        fatal = any(message in str(error) for message in _FATAL_POSTGRES_MESSAGES) or any(
            message in str(error).lower() for message in ("ssl", "certificate")
        )
        raise _LoginFailedError(error, fatal=fatal) from None


def _postgres_admin_check(conn: Any, props: dict[str, Any]) -> list[str]:
    """Fails when an external server's admin lacks a privilege the stack needs; warns about
    databases every role may connect to, which only their owner can close."""
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    superuser, privileges = (
        row[0],
        dict(zip(("rolcreaterole", "rolcreatedb"), row[1:], strict=True)),
    )
    who = f"PostgreSQL admin {props['user']!r} at {props['host']}:{props['port']}"
    if props["external"].get("superuser") and not superuser:
        raise _LoginFailedError(
            Exception(f"{who} is not a superuser: set db-server:postgres.superuser to false"),
            fatal=True,
        )
    missing = [name for column, name in _POSTGRES_PRIVILEGES.items() if not privileges[column]]
    if missing and not superuser:
        raise _LoginFailedError(
            Exception(
                f"{who} lacks {' and '.join(missing)}, which the stack needs to create the "
                f"projects' roles and databases: ALTER ROLE {props['user']} "
                f"{' '.join(missing)} (see README, External servers)"
            ),
            fatal=True,
        )
    open_databases = [
        name
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datallowconn"
            " AND datname IN ('postgres', 'template1', current_database())"
            " AND (datacl IS NULL OR EXISTS ("
            "   SELECT FROM aclexplode(datacl) AS a"
            "   WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT'))"
            " ORDER BY 1"
        )
    ]
    return [
        f"{who}: every role, the projects' too, may connect to database {name!r}; its owner "
        f"should run REVOKE CONNECT, TEMPORARY ON DATABASE {name} FROM PUBLIC"
        for name in open_databases
    ]


def _redis_login(props: dict[str, Any]) -> list[str]:
    import redis  # here: the provider process needs it, the program does not

    external = props.get("external") or {}
    # One attempt per call: the loop in wait_until_ready does the waiting.
    client = redis_client(
        props["host"],
        int(props["port"]),
        props["user"],
        props["password"],
        2,
        tls=bool(external.get("tls")),
        ca_file=external.get("ca_file"),
    )
    try:
        client.ping()
        if external:
            _redis_admin_check(client, props)
        return []
    except redis.RedisError as error:
        fatal = isinstance(error, redis.AuthenticationError | redis.ResponseError) or (
            "SSL" in str(error)
        )
        raise _LoginFailedError(error, fatal=fatal) from None
    finally:
        client.close()


def _redis_admin_check(client: Any, props: dict[str, Any]) -> None:
    """Fails when an external server's admin may not manage ACL users, or the server has
    fewer databases than the stack's Redis indexes need."""
    import redis

    who = f"Redis admin {props['user']!r} at {props['host']}:{props['port']}"
    for command in _REDIS_COMMANDS:
        try:
            answer = client.execute_command("ACL", "DRYRUN", props["user"], *command)
        except redis.ResponseError as error:
            answer = str(error)
        if answer not in (b"OK", "OK"):
            raise redis.ResponseError(
                f"{who} may not run {' '.join(command[:2])}, which the stack needs to manage "
                f"the projects' users: {answer!r} (see README, External servers)"
            )
    databases = int(props["external"]["databases"])
    try:
        client.execute_command("SELECT", databases - 1)
    except redis.ResponseError as error:
        raise redis.ResponseError(
            f"{who}: the server has fewer than the {databases} databases "
            f"db-server:redis.databases says ({error}); set it to the server's `databases`"
        ) from None


def _login(props: dict[str, Any]) -> list[str]:
    """Logs in once; returns warnings about the server, raises ``_LoginFailedError``."""
    try:
        return (_postgres_login if props["kind"] == "postgres" else _redis_login)(props)
    except OSError as error:
        raise _LoginFailedError(error, fatal=False) from None


def is_ready(props: dict[str, Any]) -> bool:
    """Whether one login works right now."""
    try:
        _login(props)
    except _LoginFailedError:
        return False
    return True


def wait_until_ready(props: dict[str, Any]) -> list[str]:
    """Logs in until it works, and returns warnings about the server; raises
    ``ServerNotReadyError`` after ``timeout_seconds``, or at once for a refused login."""
    external = bool(props.get("external"))
    where = (
        f"external {props['kind']} server at {props['host']}:{props['port']}"
        if external
        else f"{props['kind']} in container {props['container_name']} "
        f"at {props['host']}:{props['port']}"
    )
    deadline = time.monotonic() + float(props["timeout_seconds"])
    attempts = 0
    while True:
        attempts += 1
        try:
            return _login(props)
        except _LoginFailedError as error:
            if error.fatal:
                hint = (
                    "Check the admin settings and password in the stack's config."
                    if external
                    else "The data volume may have been initialised with another admin "
                    "password (see README, Data safety)."
                )
                raise ServerNotReadyError(
                    f"{where} refuses {props['user']}'s login: {error}. {hint}"
                ) from None
            if time.monotonic() >= deadline:
                hint = (
                    "Is the server up, and reachable from here?"
                    if external
                    else f"See `docker logs {props['container_name']}`."
                )
                raise ServerNotReadyError(
                    f"{where} did not accept a login within {props['timeout_seconds']} s "
                    f"({attempts} attempts; last error: {error}). {hint}"
                ) from None
        time.sleep(POLL_SECONDS)


def _ready(props: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The inputs, and the outputs only a server that took a login has.

    They are not inputs: a preview of a create or update (the engine's stand-in for the
    outputs is the inputs) leaves them unknown, so whatever is configured with them waits too.
    """
    return {
        **props,
        "ready_host": props["host"],
        "ready_port": props["port"],
        "ready_container_name": props["container_name"],
        "warnings": warnings,
    }


class _ServerReadyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        warnings = wait_until_ready(props)
        return CreateResult(id_=str(props["container_id"]), outs=_ready(props, warnings))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_fields(olds, news, _COMPARED, _REPLACE_ON)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        warnings = wait_until_ready(news)
        return UpdateResult(outs=_ready(news, warnings))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # An empty id tells the engine the resource is gone, so the next update creates it,
        # which waits for the server.
        try:
            warnings = _login(props)
        except _LoginFailedError:
            return ReadResult("", {})
        # An external server's check runs again: what it warns about may have been fixed.
        return ReadResult(id_, _ready(props, warnings) if props.get("external") else props)


@dataclass
class ExternalServer:
    """How to reach an external server, and what its admin must be able to do."""

    database: str | None = None
    """PostgreSQL: the database the admin connects to."""

    sslmode: str | None = None
    """PostgreSQL: libpq ``sslmode``."""

    ca_file: str | None = None
    """PEM file of the CA that signed the server's certificate."""

    superuser: bool | None = None
    """PostgreSQL: whether the settings say the admin is a superuser."""

    tls: bool | None = None
    """Redis: connect with TLS."""

    databases: int | None = None
    """Redis: how many databases the stack's indexes need the server to have."""


@dataclass
class ServerReadyArgs:
    """Inputs of a ``ServerReady``."""

    kind: str
    """``postgres`` or ``redis``."""

    container_id: pulumi.Input[str]
    """The container to wait for: a new container is a new server to wait for; ``external``
    for an external server."""

    container_name: str
    """For messages: whose logs to read when it does not come up."""

    host: str
    """Where the Docker host reaches the server: 127.0.0.1."""

    port: pulumi.Input[int]
    """The port the container publishes on ``host``."""

    user: pulumi.Input[str]
    """The admin user to log in as."""

    password: pulumi.Input[str]
    """Its password (secret)."""

    timeout_seconds: int
    """How long to wait before ``pulumi up`` fails."""

    external: ExternalServer | None = None
    """An external server's connection settings; the admin's privileges are checked too."""


class ServerReady(pulumi.dynamic.Resource):
    """Exists once the server in ``container_id`` accepts a login through ``host``:``port``."""

    ready_host: pulumi.Output[str]
    """``host``, known only once the server took a login: a provider configured with it waits,
    in an update and in a preview."""

    ready_port: pulumi.Output[int]
    """``port``, known only once the server took a login."""

    ready_container_name: pulumi.Output[str]
    """``container_name``, known only once the server took a login: its host name on the
    Docker network, for containers that must not start before it takes logins."""

    warnings: pulumi.Output[list[str] | None]
    """What the check found wrong with an external server that does not stop the stack."""

    def __init__(
        self, name: str, args: ServerReadyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            _ServerReadyProvider(),
            name,
            {
                "kind": args.kind,
                "container_id": args.container_id,
                "container_name": args.container_name,
                "host": args.host,
                "port": args.port,
                "user": args.user,
                "password": pulumi.Output.secret(args.password),
                "timeout_seconds": args.timeout_seconds,
                # Only where set: a container's readiness check keeps the inputs it always had.
                **(
                    {"external": {k: v for k, v in asdict(args.external).items() if v is not None}}
                    if args.external is not None
                    else {}
                ),
                "ready_host": None,
                "ready_port": None,
                "ready_container_name": None,
                "warnings": None,
            },
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["password"])
            ),
        )
