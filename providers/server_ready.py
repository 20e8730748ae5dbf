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
from dataclasses import dataclass
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

# A changed container or address means a new server to wait for; a changed password only needs
# the next login to work with it.
_REPLACE_ON = ("kind", "container_id", "host", "port")
_COMPARED = (*_REPLACE_ON, "user", "password", "timeout_seconds")

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


def _postgres_login(props: dict[str, Any]) -> None:
    import psycopg  # here: the provider process needs it, the program does not

    try:
        with psycopg.connect(
            host=props["host"],
            port=int(props["port"]),
            user=props["user"],
            password=props["password"],
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        fatal = any(message in str(error) for message in _FATAL_POSTGRES_MESSAGES)
        raise _LoginFailedError(error, fatal=fatal) from None


def _redis_login(props: dict[str, Any]) -> None:
    import redis  # here: the provider process needs it, the program does not

    # One attempt per call: the loop in wait_until_ready does the waiting.
    client = redis_client(props["host"], int(props["port"]), props["user"], props["password"], 2)
    try:
        client.ping()
    except redis.RedisError as error:
        raise _LoginFailedError(error, fatal=isinstance(error, redis.AuthenticationError)) from None
    finally:
        client.close()


def _login(props: dict[str, Any]) -> None:
    try:
        (_postgres_login if props["kind"] == "postgres" else _redis_login)(props)
    except OSError as error:
        raise _LoginFailedError(error, fatal=False) from None


def is_ready(props: dict[str, Any]) -> bool:
    """Whether one login works right now."""
    try:
        _login(props)
    except _LoginFailedError:
        return False
    return True


def wait_until_ready(props: dict[str, Any]) -> None:
    """Logs in until it works; raises ``ServerNotReadyError`` after ``timeout_seconds``."""
    where = (
        f"{props['kind']} in container {props['container_name']} at {props['host']}:{props['port']}"
    )
    deadline = time.monotonic() + float(props["timeout_seconds"])
    attempts = 0
    while True:
        attempts += 1
        try:
            _login(props)
            return
        except _LoginFailedError as error:
            if error.fatal:
                raise ServerNotReadyError(
                    f"{where} refuses {props['user']}'s login: {error}. The data volume may have "
                    "been initialised with another admin password (see README, Data safety)."
                ) from None
            if time.monotonic() >= deadline:
                raise ServerNotReadyError(
                    f"{where} did not accept a login within {props['timeout_seconds']} s "
                    f"({attempts} attempts; last error: {error}). "
                    f"See `docker logs {props['container_name']}`."
                ) from None
        time.sleep(POLL_SECONDS)


def _ready(props: dict[str, Any]) -> dict[str, Any]:
    """The inputs, and the outputs only a server that took a login has.

    They are not inputs: a preview of a create or update (the engine's stand-in for the
    outputs is the inputs) leaves them unknown, so whatever is configured with them waits too.
    """
    return {
        **props,
        "ready_host": props["host"],
        "ready_port": props["port"],
        "ready_container_name": props["container_name"],
    }


class _ServerReadyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wait_until_ready(props)
        return CreateResult(id_=str(props["container_id"]), outs=_ready(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_fields(olds, news, _COMPARED, _REPLACE_ON)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        wait_until_ready(news)
        return UpdateResult(outs=_ready(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # An empty id tells the engine the resource is gone, so the next update creates it,
        # which waits for the server.
        return ReadResult(id_, props) if is_ready(props) else ReadResult("", {})


@dataclass
class ServerReadyArgs:
    """Inputs of a ``ServerReady``."""

    kind: str
    """``postgres`` or ``redis``."""

    container_id: pulumi.Input[str]
    """The container to wait for: a new container is a new server to wait for."""

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
                "ready_host": None,
                "ready_port": None,
                "ready_container_name": None,
            },
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["password"])
            ),
        )
