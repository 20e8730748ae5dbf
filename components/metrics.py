"""Prometheus exporters beside the servers, each logged in as a user that may only watch.

postgres_exporter logs in as ``db_monitor``, a member of ``pg_monitor``: it reads statistics and
sizes (connections and size per database, so per project) and no table. redis_exporter logs in
as a Redis user of the same name that may run INFO and the like, and no command that reads or
writes a key's value; it reports keys per database index, so per project. Both publish their
port on 127.0.0.1 only. ``monitoring/`` holds the Prometheus config and alert rules.
"""

import json
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.database_server import PostgresAccess, RedisAccess
from components.logins import service_login
from components.service_container import service_container
from providers.redis_user import RedisUser, RedisUserArgs
from settings import POSTGRES_PORT, REDIS_PORT, MetricsSettings

MONITOR_ROLE = "db_monitor"
"""The PostgreSQL role and the Redis user the exporters log in as."""

POSTGRES_EXPORTER_PORT = 9187
REDIS_EXPORTER_PORT = 9121

# What redis_exporter runs, and nothing that reads or writes a key's value.
MONITOR_REDIS_RULES = [
    "resetkeys",
    "resetchannels",
    "-@all",
    "+@connection",
    "+info",
    "+config|get",
    "+slowlog",
    "+latency",
    "+client|list",
    "+client|setname",
    "+memory|stats",
    "+select",
    "+dbsize",
]

_PASSWORD_FILE = "/run/secrets/monitor_password"
_REDIS_PASSWORDS_FILE = "/run/secrets/redis_passwords.json"


@dataclass
class MetricsArgs:
    """Inputs of a ``Metrics``."""

    settings: MetricsSettings
    """Images and ports."""

    postgres: PostgresAccess
    """The admin's provider, for the monitoring role."""

    redis: RedisAccess
    """The Redis admin's connection, for the monitoring user."""

    network_name: pulumi.Input[str]
    """The Docker network the exporters join."""


class Metrics(pulumi.ComponentResource):
    """postgres_exporter and redis_exporter containers with least-privilege logins, named
    after their servers' containers (``<server>-exporter``)."""

    def __init__(
        self, name: str, args: MetricsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("db-server:metrics:Metrics", name, None, opts)
        settings, pg, rd = args.settings, args.postgres, args.redis
        postgres_host, redis_host = pg.ready_host, rd.ready_host

        password, _, connect = service_login(name, self, MONITOR_ROLE, pg, ["pg_monitor"])
        redis_user = RedisUser(
            f"{name}-redis-user",
            RedisUserArgs(
                username=MONITOR_ROLE,
                rules=MONITOR_REDIS_RULES,
                on_delete="delete",
                host=rd.admin_host,
                port=rd.admin_port,
                admin_user=rd.admin_user,
                admin_password=rd.admin_password,
            ),
            opts=pulumi.ResourceOptions(parent=self, deleted_with=rd.deleted_with),
        )

        service_container(
            f"{name}-postgres-exporter",
            self,
            image_resource_name=f"{name}-postgres-exporter-image",
            image=settings.postgres_exporter_image,
            container_name=f"{pg.endpoint.host}-exporter",
            port=POSTGRES_EXPORTER_PORT,
            host_port=settings.postgres_exporter_port,
            network_name=args.network_name,
            envs=[
                pulumi.Output.format(
                    "DATA_SOURCE_URI={0}:{1}/postgres?sslmode=disable",
                    postgres_host,
                    POSTGRES_PORT,
                ),
                f"DATA_SOURCE_USER={MONITOR_ROLE}",
                f"DATA_SOURCE_PASS_FILE={_PASSWORD_FILE}",
            ],
            uploads=[
                docker.ContainerUploadArgs(
                    file=_PASSWORD_FILE, content=password, permissions="0644"
                )
            ],
            depends_on=[connect],
        )
        # redis_exporter reads a JSON map from each server's URI to its password.
        passwords = pulumi.Output.all(redis_host, redis_user.password).apply(
            lambda a: json.dumps({f"redis://{MONITOR_ROLE}@{a[0]}:{REDIS_PORT}": a[1]})
        )
        service_container(
            f"{name}-redis-exporter",
            self,
            image_resource_name=f"{name}-redis-exporter-image",
            image=settings.redis_exporter_image,
            container_name=f"{rd.endpoint.host}-exporter",
            port=REDIS_EXPORTER_PORT,
            host_port=settings.redis_exporter_port,
            network_name=args.network_name,
            envs=[
                pulumi.Output.format("REDIS_ADDR=redis://{0}:{1}", redis_host, REDIS_PORT),
                f"REDIS_USER={MONITOR_ROLE}",
                f"REDIS_PASSWORD_FILE={_REDIS_PASSWORDS_FILE}",
            ],
            uploads=[
                docker.ContainerUploadArgs(
                    file=_REDIS_PASSWORDS_FILE,
                    content=pulumi.Output.secret(passwords),
                    permissions="0644",
                )
            ],
            depends_on=[redis_user],
        )
        self.register_outputs({})
