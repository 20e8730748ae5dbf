"""Random passwords for PostgreSQL logins, the SCRAM verifiers the roles are created with, and
the login roles of the services beside the server."""

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import pulumi
import pulumi_postgresql as postgresql
import pulumi_random as random

from components.scram import derived_salt, scram_sha256_verifier
from settings import PASSWORD_SPECIALS

if TYPE_CHECKING:
    from components.database_server import PostgresAccess

SERVICE_CONNECTION_LIMIT = 5
"""Connections a service's login (the pooler's lookup, the exporters' watcher) may hold."""


class Login(NamedTuple):
    """A role's password (for its URLs and files) and its verifier (for the server)."""

    password: pulumi.Output[str]
    verifier: pulumi.Output[str]


def random_login(
    name: str,
    parent: pulumi.Resource,
    salt_seed: pulumi.Output[str],
    *,
    length: int,
    special: bool,
) -> Login:
    """``<name>-password``: a random password kept in state, and its verifier, salted from
    the server's ``salt_seed`` (base64), so it is the same from one run to the next. Both
    secret."""
    password: pulumi.Output[str] = pulumi.Output.secret(
        random.RandomPassword(
            f"{name}-password",
            length=length,
            special=special,
            override_special=PASSWORD_SPECIALS if special else None,
            opts=pulumi.ResourceOptions(parent=parent),
        ).result
    )
    verifier: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(password, salt_seed).apply(
            lambda args: scram_sha256_verifier(
                args[0], derived_salt(base64.b64decode(args[1]), args[0])
            )
        )
    )
    return Login(password, verifier)


class ServiceLogin(NamedTuple):
    """A service's login role, its password, and its CONNECT on the admin database."""

    password: pulumi.Output[str]
    role: postgresql.Role
    connect: postgresql.Grant


def service_login(
    name: str,
    parent: pulumi.Resource,
    role_name: str,
    postgres: "PostgresAccess",
    member_of: Sequence[str] = (),
) -> ServiceLogin:
    """A login role for a service beside the server (the pooler's lookup, the exporters'
    watcher): a random alphanumeric password, SERVICE_CONNECTION_LIMIT connections, CONNECT on the
    admin database ``postgres``, which PUBLIC does not have. ``<name>-password``,
    ``<name>-role`` and ``<name>-connect``."""
    sql = pulumi.ResourceOptions(
        parent=parent, provider=postgres.provider, deleted_with=postgres.deleted_with
    )
    password, verifier = random_login(name, parent, postgres.salt_seed, length=40, special=False)
    role = postgresql.Role(
        f"{name}-role",
        name=role_name,
        login=True,
        password=verifier,
        roles=list(member_of) or None,
        connection_limit=SERVICE_CONNECTION_LIMIT,
        opts=sql,
    )
    connect = postgresql.Grant(
        f"{name}-connect",
        database="postgres",
        role=role.name,
        object_type="database",
        privileges=["CONNECT"],
        opts=sql,
    )
    return ServiceLogin(password, role, connect)
