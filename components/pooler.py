"""PgBouncer in front of PostgreSQL: the projects' clients share a few server connections.

Logins are checked by the server, never by a list of users in the pooler: PgBouncer looks each
user's SCRAM verifier up through ``pgbouncer.user_lookup``, a function that only the lookup role
may reach, and then logs in to PostgreSQL as that user with the client's own SCRAM proof. So a
project reaches only the database it owns, as it does directly, and superusers cannot log in
through the pooler at all. Only the project databases are listed: nothing else is reachable.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_postgresql as postgresql

from components.database_server import PostgresAccess
from components.logins import service_login
from components.service_container import service_container
from projects import Project
from settings import POSTGRES_PORT, PoolerSettings

LOOKUP_ROLE = "pgbouncer_lookup"
"""The role PgBouncer looks users up as: it may call the lookup function, nothing else."""

POOLER_PORT = 6432
"""The port PgBouncer listens on inside its container and on the Docker network."""

_CONFIG_DIR = "/etc/pgbouncer"
_LOOKUP_SCHEMA = "pgbouncer"
_AUTH_DATABASE = "pgbouncer_auth"

# Fully qualified, operator included: a SECURITY DEFINER function must not depend on the
# caller's search_path.
_LOOKUP_BODY = (
    "SELECT s.usename, s.passwd FROM pg_catalog.pg_shadow AS s"
    " WHERE s.usename OPERATOR(pg_catalog.=) p_user AND NOT s.usesuper"
)


@dataclass
class PoolerArgs:
    """Inputs of a ``Pooler``."""

    settings: PoolerSettings
    """Image, container name, port and the total client limit."""

    projects: Sequence[Project]
    """Each gets a pool of its own: mode, size and client limit from ``projects.py``."""

    postgres: PostgresAccess
    """The admin's provider, for the lookup role and function."""

    network_name: pulumi.Input[str]
    """The Docker network the pooler joins."""


class Pooler(pulumi.ComponentResource):
    """A PgBouncer container on the server's network, published on 127.0.0.1 only."""

    endpoint_host: str
    """The pooler's host name on the Docker network."""

    host_port: int
    """Its port on 127.0.0.1 of the Docker host."""

    def __init__(
        self, name: str, args: PoolerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("db-server:pooler:Pooler", name, None, opts)
        settings, pg = args.settings, args.postgres
        sql = pulumi.ResourceOptions(
            parent=self, provider=pg.provider, deleted_with=pg.deleted_with
        )

        # Alphanumeric: it goes into PgBouncer's auth file between quotes.
        password, lookup, connect = service_login(f"{name}-lookup", self, LOOKUP_ROLE, pg)
        # No PUBLIC rights on a new schema: only the lookup role reaches the function in it.
        schema = postgresql.Schema(
            f"{name}-lookup-schema", name=_LOOKUP_SCHEMA, database="postgres", opts=sql
        )
        usage = postgresql.Grant(
            f"{name}-lookup-usage",
            database="postgres",
            schema=schema.name,
            role=lookup.name,
            object_type="schema",
            privileges=["USAGE"],
            opts=sql,
        )
        function = postgresql.Function(
            f"{name}-lookup-function",
            name="user_lookup",
            schema=schema.name,
            database="postgres",
            args=[
                postgresql.FunctionArgArgs(name="p_user", type="text"),
                postgresql.FunctionArgArgs(name="usename", type="name", mode="OUT"),
                postgresql.FunctionArgArgs(name="passwd", type="text", mode="OUT"),
            ],
            returns="record",
            language="sql",
            body=_LOOKUP_BODY,
            security_definer=True,
            volatility="STABLE",
            opts=sql,
        )

        container_name = settings.container_name or ""
        service_container(
            f"{name}-container",
            self,
            image_resource_name=f"{name}-image",
            image=settings.image,
            container_name=container_name,
            port=POOLER_PORT,
            host_port=settings.host_port,
            network_name=args.network_name,
            aliases=[container_name],
            uploads=[
                docker.ContainerUploadArgs(
                    file=f"{_CONFIG_DIR}/pgbouncer.ini",
                    content=pg.ready_host.apply(
                        lambda host: _config(settings, args.projects, host)
                    ),
                ),
                # The lookup role's password only; the image runs PgBouncer as a user of its own.
                docker.ContainerUploadArgs(
                    file=f"{_CONFIG_DIR}/userlist.txt",
                    content=pulumi.Output.format('"{0}" "{1}"\n', LOOKUP_ROLE, password),
                    permissions="0644",
                ),
            ],
            depends_on=[connect, usage, function],
        )
        self.endpoint_host = container_name
        self.host_port = settings.host_port
        self.register_outputs({})


def _config(settings: PoolerSettings, projects: Sequence[Project], postgres_host: str) -> str:
    """pgbouncer.ini: one pool per project database, logins looked up through the server."""
    databases = "".join(
        f"{p.name} = host={postgres_host} port={POSTGRES_PORT} dbname={p.name}"
        f" auth_user={LOOKUP_ROLE} pool_mode={p.pool_mode} pool_size={p.pool_connections}"
        f" max_db_connections={p.pool_connections}"
        f" max_db_client_connections={p.max_client_connections}\n"
        for p in projects
    )
    # auth_dbname must name an entry here: the lookup role's own, on the admin database,
    # which no project role may connect to.
    auth = (
        f"{_AUTH_DATABASE} = host={postgres_host} port={POSTGRES_PORT} dbname=postgres"
        f" auth_user={LOOKUP_ROLE} pool_size=2 max_db_connections=2\n"
    )
    return (
        "; Written by db-server; changes here are replaced on the next `pulumi up`.\n"
        "[databases]\n"
        f"{databases}{auth}\n"
        "[pgbouncer]\n"
        "listen_addr = *\n"
        f"listen_port = {POOLER_PORT}\n"
        "auth_type = scram-sha-256\n"
        f"auth_file = {_CONFIG_DIR}/userlist.txt\n"
        f"auth_dbname = {_AUTH_DATABASE}\n"
        f"auth_query = SELECT usename, passwd FROM {_LOOKUP_SCHEMA}.user_lookup($1)\n"
        f"max_client_conn = {settings.max_client_conn}\n"
        # Sent by JDBC and others at connect; PgBouncer refuses unknown ones otherwise.
        "ignore_startup_parameters = extra_float_digits\n"
        "server_reset_query = DISCARD ALL\n"
    )
