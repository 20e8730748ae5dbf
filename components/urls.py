"""Connection URLs built from outputs. Every URL carries a password, so every URL is secret."""

from urllib.parse import quote

import pulumi


def postgres_url(
    user: pulumi.Input[str],
    password: pulumi.Input[str],
    host: pulumi.Input[str],
    port: pulumi.Input[int],
    database: pulumi.Input[str],
    sslmode: str = "disable",
) -> pulumi.Output[str]:
    """A SQLAlchemy-style ``postgresql+psycopg://`` URL with the password URL-encoded; any
    ``sslmode`` but ``disable`` goes in its query."""
    quoted = pulumi.Output.from_input(password).apply(lambda p: quote(p, safe=""))
    query = "" if sslmode == "disable" else f"?sslmode={sslmode}"
    return pulumi.Output.secret(
        pulumi.Output.format(
            "postgresql+psycopg://{0}:{1}@{2}:{3}/{4}{5}", user, quoted, host, port, database, query
        )
    )


def redis_url(
    user: pulumi.Input[str],
    password: pulumi.Input[str],
    host: pulumi.Input[str],
    port: pulumi.Input[int],
    index: pulumi.Input[int],
    tls: bool = False,
) -> pulumi.Output[str]:
    """A ``redis://<user>:<password>@...`` URL selecting database ``index``; ``rediss://``
    with ``tls``."""
    quoted = pulumi.Output.from_input(password).apply(lambda p: quote(p, safe=""))
    scheme = "rediss" if tls else "redis"
    return pulumi.Output.secret(
        pulumi.Output.format("{0}://{1}:{2}@{3}:{4}/{5}", scheme, user, quoted, host, port, index)
    )
