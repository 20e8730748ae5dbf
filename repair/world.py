"""What is really there: the object a pending operation was making or removing, looked up by
its name in the Docker engine, the PostgreSQL server or the Redis server the state names.

Each lookup answers with the object's real id (what the provider would have stored), ``None``
when the object is not there, or raises ``UnreachableError`` when the server cannot be asked:
then the repair stops, because an object that cannot be looked up is never cleared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from repair.stack import Deployment, Resource, plain

if TYPE_CHECKING:
    import docker
    import psycopg

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
ROLE = "postgresql:index/role:Role"
DATABASE = "postgresql:index/database:Database"
GRANT = "postgresql:index/grant:Grant"
GRANT_ROLE = "postgresql:index/grantRole:GrantRole"
DYNAMIC = "pulumi-python:dynamic:Resource"


class UnreachableError(Exception):
    """The server that holds the object could not be asked."""


def is_redis_user(resource: Resource) -> bool:
    inputs = resource.get("inputs") or {}
    return resource.get("type") == DYNAMIC and {"username", "rules", "on_delete"} <= set(inputs)


class World:
    """Looks objects up where the stack's state says they live."""

    def __init__(self, state: Deployment) -> None:
        """``state``: an export with its secrets shown (the servers' admin logins)."""
        self._state = state
        self._docker: docker.DockerClient | None = None

    def close(self) -> None:
        if self._docker is not None:
            self._docker.close()

    def real_id(self, resource: Resource) -> str | None:
        """The id of the object the resource stands for, or None where there is none."""
        kind, inputs = resource.get("type"), resource.get("inputs") or {}
        if kind in (CONTAINER, VOLUME, NETWORK):
            return self._docker_id(str(kind), str(inputs["name"]))
        if kind == ROLE:
            return self._one(resource, "SELECT rolname FROM pg_roles WHERE rolname = %s", "name")
        if kind == DATABASE:
            sql = "SELECT datname FROM pg_database WHERE datname = %s"
            return self._one(resource, sql, "name")
        if kind == GRANT:
            return self._grant_id(resource, inputs)
        if kind == GRANT_ROLE:
            return self._grant_role_id(resource, inputs)
        if is_redis_user(resource):
            return self._redis_user(inputs)
        raise ValueError(f"no lookup for {kind}")

    # -- Docker ------------------------------------------------------------------------------

    def _docker_id(self, kind: str, name: str) -> str | None:
        import docker
        from docker.errors import DockerException, NotFound

        try:
            if self._docker is None:
                self._docker = docker.from_env()
            client = self._docker
            if kind == CONTAINER:
                return str(client.containers.get(name).id)
            if kind == VOLUME:
                return str(client.volumes.get(name).name)  # a volume's id is its name
            # A network is asked for by its exact name: a lookup by name also matches ids.
            found = [n for n in client.networks.list(names=[name]) if n.name == name]
            return str(found[0].id) if found else None
        except NotFound:
            return None
        except DockerException as error:
            raise UnreachableError(f"Docker engine: {error}") from error

    # -- PostgreSQL --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _postgres(self, resource: Resource, dbname: str | None = None) -> Iterator[Any]:
        import psycopg

        provider = self._state.provider_of(resource)
        if provider is None:
            raise UnreachableError(f"no provider in the state for {resource['urn']}")
        config = {key: plain(value) for key, value in (provider.get("inputs") or {}).items()}
        try:
            conn: psycopg.Connection[Any] = psycopg.connect(
                host=str(config.get("host") or "127.0.0.1"),
                port=int(config.get("port") or 5432),
                user=str(config.get("username") or "postgres"),
                password=str(config.get("password") or ""),
                dbname=dbname or str(config.get("database") or "postgres"),
                sslmode=str(config.get("sslmode") or "prefer"),
                sslrootcert=str(config["sslrootcert"]) if config.get("sslrootcert") else None,
                connect_timeout=15,
                autocommit=True,
            )
        except psycopg.OperationalError as error:
            raise UnreachableError(f"PostgreSQL: {str(error).strip()}") from error
        with conn:
            yield conn

    def _one(self, resource: Resource, sql: str, key: str) -> str | None:
        value = str((resource.get("inputs") or {})[key])
        with self._postgres(resource) as conn:
            row = conn.execute(sql, (value,)).fetchone()
        return str(row[0]) if row else None

    def _grant_id(self, resource: Resource, inputs: dict[str, Any]) -> str | None:
        """A grant exists once its role and database do (what it grants is read back by the
        provider, and the next `up` makes it right); its id is the provider's own form."""
        role, database, kind = str(inputs["role"]), str(inputs["database"]), inputs["objectType"]
        with self._postgres(resource) as conn:
            there = conn.execute(
                "SELECT (%s = 'public' OR EXISTS (SELECT FROM pg_roles WHERE rolname = %s))"
                " AND EXISTS (SELECT FROM pg_database WHERE datname = %s)",
                (role, role, database),
            ).fetchone()
        if not (there and there[0]):
            return None
        parts = [role, database]
        if kind not in ("database", "foreign_data_wrapper", "foreign_server"):
            parts.append(str(inputs.get("schema") or ""))
        parts += [str(kind), *sorted(str(o) for o in inputs.get("objects") or [])]
        return "_".join(parts)

    def _grant_role_id(self, resource: Resource, inputs: dict[str, Any]) -> str | None:
        role, granted = str(inputs["role"]), str(inputs["grantRole"])
        with self._postgres(resource) as conn:
            row = conn.execute(
                "SELECT m.admin_option FROM pg_auth_members m"
                " JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid"
                " WHERE r.rolname = %s AND g.rolname = %s",
                (role, granted),
            ).fetchone()
        return (
            f"{role}_{granted}_{str(bool(inputs.get('withAdminOption'))).lower()}" if row else None
        )

    # -- Redis -------------------------------------------------------------------------------

    def _redis_user(self, inputs: dict[str, Any]) -> str | None:
        import redis

        from providers import redis_client

        values = {key: plain(value) for key, value in inputs.items()}
        try:
            with redis_client(
                str(values["host"]),
                int(values["port"]),
                str(values["admin_user"]),
                str(values["admin_password"]),
                10,
                tls=bool(values.get("tls")),
                ca_file=values.get("ca_file"),
            ) as admin:
                found = admin.acl_getuser(str(values["username"]))
        except redis.RedisError as error:
            raise UnreachableError(f"Redis: {error}") from error
        return str(values["username"]) if found else None
