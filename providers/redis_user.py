"""A project's Redis ACL user, managed live through the ``redis`` package: no restart.

Each change is ``ACL SETUSER`` followed by ``ACL SAVE``, which writes the server's ACL file on its
data volume, so users outlive restarts and container replacement. Removing a project deletes its
user, or, where the stack keeps what a removed project leaves (prod), switches it off and drops
its password, so the project can come back later under the same name.

The user's password is made when the user is created, with ``secrets``, and kept in state as a
secret output: every later update, and a user a refresh finds missing, gets the same password
again, so the project's URL never changes under it. Users created when the password was an input
keep the one their state holds. Replacing the user makes a new password: ``pulumi up --replace
<urn>`` rotates it. A user whose create was cut short (``make repair`` imports it) has no password
in state: its next update gives it a new one.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.redis_acl import password_hash
from providers import diff_fields, redis_client

if TYPE_CHECKING:
    from redis import Redis

# A new name is a new user; anything else is applied to the user in place.
_REPLACE_ON = ("username",)
_COMPARED = (*_REPLACE_ON, "rules", "on_delete")
_MISSING = "missing"
"""Set by a refresh that finds the user gone from the server: the next update makes it again."""

PASSWORD_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits


def new_password() -> str:
    """40 letters and digits (about 238 bits): nothing to escape in a URL or an ACL rule."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _admin(props: dict[str, Any]) -> Redis:
    return redis_client(
        props["host"],
        int(props["port"]),
        props["admin_user"],
        props["admin_password"],
        10,
        tls=bool(props.get("tls")),
        ca_file=props.get("ca_file"),
    )


def _save(admin: Redis) -> None:
    """Writes the users where the server reads them at start: its ACL file, or, on a server
    started without one, its config file. A user that would vanish on restart is an error."""
    import redis

    try:
        admin.acl_save()
        return
    except redis.ResponseError as error:
        if "ACL file" not in str(error):
            raise
    try:
        admin.config_rewrite()
    except redis.ResponseError as error:
        raise redis.ResponseError(
            "Redis has no ACL file (`aclfile`) and cannot rewrite its config file "
            f"({error}): the projects' users would be lost on its next restart. Start the "
            "server with an aclfile (see README, External servers)."
        ) from None


def _apply(props: dict[str, Any]) -> None:
    with _admin(props) as admin:
        admin.execute_command(
            "ACL",
            "SETUSER",
            props["username"],
            "reset",
            "on",
            password_hash(props["password"]),
            *props["rules"],
        )
        _save(admin)


class _RedisUserProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = {**props, "password": new_password()}
        _apply(outs)
        return CreateResult(id_=props["username"], outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        diff = diff_fields(olds, news, _COMPARED, _REPLACE_ON)
        if olds.get(_MISSING) and not diff.changes:
            return DiffResult(changes=True, replaces=[], delete_before_replace=True)
        return diff

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # No password in state: a user `make repair` imported after a create that was cut
        # short, made with a password nobody recorded. It gets a new one.
        outs = {**news, "password": olds.get("password") or new_password()}
        _apply(outs)
        return UpdateResult(outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        import redis

        try:
            with _admin(props) as admin:
                exists = admin.acl_getuser(id_) is not None
        except redis.ConnectionError:
            # Redis is down: nothing to tell. `make repair` reads again once Redis is back,
            # in program order; its preview must get past this.
            return ReadResult(id_, props)
        # Gone (a volume restored without it, a user deleted by hand): the next update
        # makes it again, with the password its project's URL carries. There but with no
        # password in state (imported by `make repair`): the next update sets a new one.
        missing = not exists or not props.get("password")
        return ReadResult(id_, {**props, _MISSING: True} if missing else props)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with _admin(props) as admin:
            if props["on_delete"] == "delete":
                admin.acl_deluser(id_)
            else:
                admin.execute_command("ACL", "SETUSER", id_, "off", "resetpass")
                # Switching a user off leaves its open connections; these end now.
                admin.execute_command("CLIENT", "KILL", "USER", id_)
            _save(admin)


@dataclass
class RedisUserArgs:
    """Inputs of a ``RedisUser``."""

    username: str
    """The user's name: the project's PostgreSQL role name, so one name means one project."""

    rules: list[str]
    """ACL rules besides the password (``components/redis_acl.py``)."""

    on_delete: str
    """``delete`` the user when the project leaves, or ``disable`` it (keeps it for a return)."""

    host: pulumi.Input[str]
    """Where the Docker host reaches Redis (known once Redis takes logins)."""

    port: pulumi.Input[int]
    """Redis's port on ``host``."""

    admin_user: str
    """The Redis admin user the changes are made as."""

    admin_password: pulumi.Input[str]
    """Its password (secret)."""

    tls: bool = False
    """Connect with TLS."""

    ca_file: str | None = None
    """PEM file of the CA that signed the server's certificate, with TLS."""


class RedisUser(pulumi.dynamic.Resource):
    """A Redis ACL user, kept in the server's ACL file."""

    password: pulumi.Output[str]
    """The user's password (secret), made when the user is created; Redis receives only its
    SHA-256."""

    def __init__(
        self, name: str, args: RedisUserArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            _RedisUserProvider(),
            name,
            {
                "username": args.username,
                "password": None,
                "rules": args.rules,
                "on_delete": args.on_delete,
                "host": args.host,
                "port": args.port,
                "admin_user": args.admin_user,
                "admin_password": pulumi.Output.secret(args.admin_password),
                # Only where set: users on a container keep the inputs they always had.
                **({"tls": True, "ca_file": args.ca_file} if args.tls else {}),
            },
            pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    additional_secret_outputs=["password", "admin_password"],
                    # A user is its name: a replacement must delete the old user first, or
                    # the delete that follows the create would take the new one. The diff
                    # says so too, but `pulumi up --replace` reads only this option.
                    delete_before_replace=True,
                ),
            ),
        )
