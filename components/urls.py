"""Connection URLs built from outputs. Every URL carries a password, so every URL is secret."""

from urllib.parse import quote

import pulumi


def postgres_url(
    user: pulumi.Input[str],
    password: pulumi.Input[str],
    host: pulumi.Input[str],
    port: pulumi.Input[int],
    database: pulumi.Input[str],
) -> pulumi.Output[str]:
    """A SQLAlchemy-style ``postgresql+psycopg://`` URL with the password URL-encoded."""
    quoted = pulumi.Output.from_input(password).apply(lambda p: quote(p, safe=""))
    return pulumi.Output.secret(
        pulumi.Output.format(
            "postgresql+psycopg://{0}:{1}@{2}:{3}/{4}", user, quoted, host, port, database
        )
    )


def redis_url(
    user: pulumi.Input[str],
    password: pulumi.Input[str],
    host: pulumi.Input[str],
    port: pulumi.Input[int],
    index: pulumi.Input[int],
) -> pulumi.Output[str]:
    """A ``redis://<user>:<password>@...`` URL selecting database ``index``."""
    quoted = pulumi.Output.from_input(password).apply(lambda p: quote(p, safe=""))
    return pulumi.Output.secret(
        pulumi.Output.format("redis://{0}:{1}@{2}:{3}/{4}", user, quoted, host, port, index)
    )
