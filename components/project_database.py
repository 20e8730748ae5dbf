"""One project's share of the server: its database, login role, Redis user and URLs."""

from dataclasses import dataclass

import pulumi
import pulumi_postgresql as postgresql

from components.database_server import PostgresAccess, RedisAccess
from components.logins import random_login
from components.redis_acl import project_rules
from components.urls import Target, postgres_urls, redis_urls
from projects import Project
from providers.redis_user import RedisUser, RedisUserArgs
from settings import Endpoint

POSTGRES_URL_NAMES = ("url", "host_url")
POOLED_URL_NAMES = ("pooled_url", "host_pooled_url")
REDIS_URL_NAMES = ("redis_url", "host_redis_url")
URL_NAMES = POSTGRES_URL_NAMES + POOLED_URL_NAMES + REDIS_URL_NAMES
"""The keys ``ProjectDatabase.urls`` may have: each project exports ``<name>_<key>``."""


@dataclass
class ProjectDatabaseArgs:
    """Inputs of a ``ProjectDatabase``."""

    project: Project
    """The validated project entry from ``projects.py``."""

    postgres: PostgresAccess
    """The server's admin provider and addresses. Only the SQL objects wait for the provider (a
    provider passed in the component's options would hold back every child, the passwords too,
    until the server is up)."""

    redis: RedisAccess
    """The Redis admin's connection and the server's addresses."""

    pooler: Endpoint | None
    """Where the pooler is reached, when the stack runs one: the project gets pooled URLs."""

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
    only that index (components/redis_acl.py).
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
        project, pg = args.project, args.postgres
        # The role, database and revoke live in a container's data volume: when a destroy takes
        # the volume, they go with it, and nothing dials a server that may be gone already.
        data = pulumi.ResourceOptions(
            parent=self,
            provider=pg.provider,
            protect=args.protect,
            retain_on_delete=args.retain_on_delete,
            deleted_with=pg.deleted_with,
        )

        password, verifier = random_login(name, self, pg.salt_seed, length=32, special=True)
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
        owner_rights: list[pulumi.Resource] = []
        if not pg.admin_is_superuser:
            # Only the owner (or a superuser) can take PUBLIC's rights on a database: anyone
            # else's REVOKE is a warning that changes nothing. A non-superuser admin acts as
            # the owner through membership of the project's role.
            owner_rights.append(
                postgresql.GrantRole(
                    f"{name}-admin-membership",
                    role=pg.admin,
                    grant_role=role.name,
                    # The role's creator holds ADMIN OPTION on it from the creation on
                    # (PostgreSQL 16+), which the provider reads back as this membership's.
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        provider=pg.provider,
                        deleted_with=pg.deleted_with,
                        ignore_changes=["withAdminOption"],
                        # After the database: its create grants the same membership for a
                        # moment and takes it back when done.
                        depends_on=[database],
                    ),
                )
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
                parent=self,
                provider=pg.provider,
                deleted_with=pg.deleted_with,
                depends_on=owner_rights,
            ),
        )

        end = pg.endpoint
        targets = {
            "url": Target(end.host, end.port, pg.sslmode),
            "host_url": Target(end.admin_host, end.admin_port, pg.sslmode),
        }
        if args.pooler is not None:
            # Through PgBouncer, for the app; the direct URLs stay for migrations and
            # anything that needs a session of its own.
            pooler = args.pooler
            targets["pooled_url"] = Target(pooler.host, pooler.port)
            targets["host_pooled_url"] = Target(pooler.admin_host, pooler.admin_port)
        self.urls = postgres_urls(role.name, password, database.name, targets)
        self.url, self.host_url = self.urls["url"], self.urls["host_url"]
        self.redis_url = self.host_redis_url = None
        if project.redis_db is not None:
            self._redis_user(name, args, project.redis_db)
        self.register_outputs(dict(self.urls))

    def _redis_user(self, name: str, args: ProjectDatabaseArgs, index: int) -> None:
        project, rd = args.project, args.redis
        user = RedisUser(
            f"{name}-redis-user",
            RedisUserArgs(
                username=project.user,
                rules=project_rules(project.name, index),
                on_delete="disable" if args.retain_on_delete else "delete",
                host=rd.admin_host,
                port=rd.admin_port,
                admin_user=rd.admin_user,
                admin_password=rd.admin_password,
                tls=rd.tls,
                ca_file=rd.ca_file,
            ),
            # The ACL file lives in the Redis container's data volume.
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, deleted_with=rd.deleted_with
            ),
        )
        end = rd.endpoint
        urls = redis_urls(
            user.id,
            user.password,
            index,
            {
                "redis_url": Target(end.host, end.port),
                "host_redis_url": Target(end.admin_host, end.admin_port),
            },
            tls=rd.tls,
        )
        self.redis_url, self.host_redis_url = urls["redis_url"], urls["host_redis_url"]
        self.urls |= urls
