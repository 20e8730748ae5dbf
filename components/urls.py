"""Connection URLs built from outputs. Every URL carries a password, so every URL is secret.

A login's URLs (the same user, password and database at several addresses) come from one
``apply`` and are then split by name: each Output is a task the Python SDK tracks and waits on
until the program ends, and a chain of them per URL made up a third of a project's.
"""

from collections.abc import Mapping
from operator import itemgetter
from typing import NamedTuple
from urllib.parse import quote

import pulumi


class Target(NamedTuple):
    """Where one URL points."""

    host: str
    port: int
    sslmode: str = "disable"
    """libpq ``sslmode`` of a PostgreSQL URL; any but ``disable`` goes in its query."""


def postgres_url(user: str, password: str, database: str, target: Target) -> str:
    """A SQLAlchemy-style ``postgresql+psycopg://`` URL with the password URL-encoded."""
    query = "" if target.sslmode == "disable" else f"?sslmode={target.sslmode}"
    return (
        f"postgresql+psycopg://{user}:{quote(password, safe='')}@{target.host}:{target.port}"
        f"/{database}{query}"
    )


def redis_url(user: str, password: str, index: int, target: Target, tls: bool) -> str:
    """A ``redis://<user>:<password>@...`` URL selecting database ``index``; ``rediss://``
    with ``tls``."""
    scheme = "rediss" if tls else "redis"
    return f"{scheme}://{user}:{quote(password, safe='')}@{target.host}:{target.port}/{index}"


def postgres_urls(
    user: pulumi.Input[str],
    password: pulumi.Input[str],
    database: pulumi.Input[str],
    targets: Mapping[str, Target],
) -> dict[str, pulumi.Output[str]]:
    """A secret URL for each named target, all of one login to one database."""
    urls = pulumi.Output.all(user, password, database).apply(
        lambda a: {name: postgres_url(a[0], a[1], a[2], t) for name, t in targets.items()}
    )
    return _split(urls, targets)


def redis_urls(
    user: pulumi.Input[str],
    password: pulumi.Input[str],
    index: int,
    targets: Mapping[str, Target],
    *,
    tls: bool,
) -> dict[str, pulumi.Output[str]]:
    """A secret URL for each named target, all of one user on one index."""
    urls = pulumi.Output.all(user, password).apply(
        lambda a: {name: redis_url(a[0], a[1], index, t, tls) for name, t in targets.items()}
    )
    return _split(urls, targets)


def _split(
    urls: pulumi.Output[dict[str, str]], names: Mapping[str, Target]
) -> dict[str, pulumi.Output[str]]:
    secret: pulumi.Output[dict[str, str]] = pulumi.Output.secret(urls)
    return {name: secret.apply(itemgetter(name)) for name in names}
