"""Random passwords for PostgreSQL logins, and the SCRAM verifiers the roles are created with."""

import base64
from typing import NamedTuple

import pulumi
import pulumi_random as random

from components.scram import scram_sha256_verifier
from settings import PASSWORD_SPECIALS


class Login(NamedTuple):
    """A role's password (for its URLs and files) and its verifier (for the server)."""

    password: pulumi.Output[str]
    verifier: pulumi.Output[str]


def random_login(name: str, parent: pulumi.Resource, *, length: int, special: bool) -> Login:
    """``<name>-password`` and ``<name>-password-salt``: a random password and a random salt,
    both kept in state, so the verifier is the same from one run to the next. Both secret."""
    opts = pulumi.ResourceOptions(parent=parent)
    password: pulumi.Output[str] = pulumi.Output.secret(
        random.RandomPassword(
            f"{name}-password",
            length=length,
            special=special,
            override_special=PASSWORD_SPECIALS if special else None,
            opts=opts,
        ).result
    )
    salt = random.RandomId(f"{name}-password-salt", byte_length=16, opts=opts).b64_std
    verifier: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(password, salt).apply(
            lambda args: scram_sha256_verifier(args[0], base64.b64decode(args[1]))
        )
    )
    return Login(password, verifier)
