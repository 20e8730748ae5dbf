"""One project's share of the server: its database, login role, Redis user and URLs."""

import base64
from dataclasses import dataclass

import pulumi
import pulumi_postgresql as postgresql
import pulumi_random as random

from components.redis_acl import project_rules
from components.scram import scram_sha256_verifier
from components.urls import postgres_url, redis_url
from projects import Project
from providers.redis_user import RedisUser, RedisUserArgs
from settings import ADMIN_ROLE, PASSWORD_SPECIALS, POSTGRES_PORT, REDIS_PORT

POSTGRES_URL_NAMES = ("url", "host_url")
REDIS_URL_NAMES = ("redis_url", "host_redis_url")
URL_NAMES = POSTGRES_URL_NAMES + REDIS_URL_NAMES
"""The keys ``ProjectDatabase.urls`` may have: each project exports ``<name>_<key>``."""


@dataclass
class ProjectDatabaseArgs:
    """Inputs of a ``ProjectDatabase``."""

    project: Project
    """The validated project entry from ``projects.py``."""

    postgres_provider: postgresql.Provider
    """The server's admin provider. Only the SQL objects wait for it (a provider passed in the
    component's options would hold back every child, the passwords too, until the server is up)."""

    postgres_host: pulumi.Input[str]
    """PostgreSQL's host name on the Docker network (its container name)."""

    postgres_host_port: pulumi.Input[int]
    """PostgreSQL's port published on 127.0.0.1."""

    redis_host: pulumi.Input[str]
    """Redis's host name on the Docker network (its container name)."""

    redis_host_port: pulumi.Input[int]
    """Redis's port published on 127.0.0.1."""

    redis_admin_host: pulumi.Input[str]
    """Where the Docker host reaches Redis as the admin, to manage the project's Redis user."""

    redis_admin_port: pulumi.Input[int]
    """Redis's port on ``redis_admin_host``."""

    redis_admin_password: pulumi.Input[str]
    """The Redis admin's password (secret)."""

    protect: bool
    """The database, role and Redis user carry ``protect``."""

    retain_on_delete: bool
    """The database and role stay on the server when the project leaves the list, and its Redis
    user is switched off rather than deleted, so the project can come back."""


class ProjectDatabase(pulumi.ComponentResource):
    """A database owned by the project's own login role, closed to every other project.

    The role can log in and nothing more: no superuser, CREATEDB, CREATEROLE or REPLICATION.
    CONNECT and TEMPORARY are revoked from PUBLIC on the database, so only its owner (and the
    admin) can connect. A project with a Redis index gets a Redis user of its own that may select
    only that index (components/redis_acl.py). Give it the server's data volume through
    ``opts.deleted_with``.
    """

    url: pulumi.Output[str]
    """``postgresql+psycopg://`` URL for the project's containers on the Docker network (secret)."""

    host_url: pulumi.Output[str]
    """The same database through 127.0.0.1 on the Docker host (secret)."""

    redis_url: pulumi.Output[str] | None
    """``redis://`` URL of the project's user and index on the Docker network (secret); None
    for a project without Redis."""

    host_redis_url: pulumi.Output[str] | None
    """The same Redis index through 127.0.0.1 on the Docker host (secret)."""

    urls: dict[str, pulumi.Output[str]]
    """The URLs above that the project has, by name; the program exports each as
    ``<project>_<name>``."""

    def __init__(
        self, name: str, args: ProjectDatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("db-server:project_database:ProjectDatabase", name, None, opts)
        project = args.project
        # The role, database and revoke live in the server's data volume: when a destroy takes
        # the volume, they go with it, and nothing dials a server that may be gone already.
        deleted_with = opts.deleted_with if opts is not None else None
        data = pulumi.ResourceOptions(
            parent=self,
            provider=args.postgres_provider,
            protect=args.protect,
            retain_on_delete=args.retain_on_delete,
            deleted_with=deleted_with,
        )

        password: pulumi.Output[str] = pulumi.Output.secret(
            random.RandomPassword(
                f"{name}-password",
                length=32,
                special=True,
                override_special=PASSWORD_SPECIALS,
                opts=pulumi.ResourceOptions(parent=self),
            ).result
        )
        # A random salt kept in state, so the verifier is stable from one run to the next.
        salt = random.RandomId(
            f"{name}-password-salt", byte_length=16, opts=pulumi.ResourceOptions(parent=self)
        ).b64_std
        verifier: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(password, salt).apply(
                lambda args: scram_sha256_verifier(args[0], base64.b64decode(args[1]))
            )
        )
        role = postgresql.Role(
            f"{name}-role",
            name=project.user,
            login=True,
            password=verifier,
            superuser=False,
            create_database=False,
            create_role=False,
            replication=False,
            bypass_row_level_security=False,
            connection_limit=project.connection_limit,
            statement_timeout=project.statement_timeout_ms,
            opts=data,
        )
        database = postgresql.Database(
            f"{name}-database",
            name=project.name,
            owner=role.name,
            encoding="UTF8",
            template="template0",
            opts=data,
        )
        # An empty privilege list for "public" revokes everything PUBLIC holds on the
        # database, CONNECT and TEMPORARY included; the owner keeps its own rights.
        postgresql.Grant(
            f"{name}-revoke-public",
            database=database.name,
            role="public",
            object_type="database",
            privileges=[],
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.postgres_provider, deleted_with=deleted_with
            ),
        )

        self.url = postgres_url(
            role.name, password, args.postgres_host, POSTGRES_PORT, database.name
        )
        self.host_url = postgres_url(
            role.name, password, "127.0.0.1", args.postgres_host_port, database.name
        )
        self.urls = {"url": self.url, "host_url": self.host_url}
        self.redis_url = self.host_redis_url = None
        if project.redis_db is not None:
            self._redis_user(name, args, project.redis_db, deleted_with)
        self.register_outputs(dict(self.urls))

    def _redis_user(
        self,
        name: str,
        args: ProjectDatabaseArgs,
        index: int,
        deleted_with: pulumi.Resource | None,
    ) -> None:
        project = args.project
        # Alphanumeric, like every Redis password here: nothing to escape anywhere.
        password: pulumi.Output[str] = pulumi.Output.secret(
            random.RandomPassword(
                f"{name}-redis-password",
                length=40,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            ).result
        )
        user = RedisUser(
            f"{name}-redis-user",
            RedisUserArgs(
                username=project.user,
                password=password,
                rules=project_rules(project.name, index),
                on_delete="disable" if args.retain_on_delete else "delete",
                host=args.redis_admin_host,
                port=args.redis_admin_port,
                admin_user=ADMIN_ROLE,
                admin_password=args.redis_admin_password,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, deleted_with=deleted_with
            ),
        )
        self.redis_url = redis_url(user.id, password, args.redis_host, REDIS_PORT, index)
        self.host_redis_url = redis_url(user.id, password, "127.0.0.1", args.redis_host_port, index)
        self.urls |= {"redis_url": self.redis_url, "host_redis_url": self.host_redis_url}
