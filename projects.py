"""The projects that share the server.

Add a project by adding one line to ``PROJECTS``. Its ``name`` is also the database name and the
prefix of its stack outputs (``<name>_url``, ``<name>_redis_url``, ...), so pick it once: renaming a
project means a new, empty database.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Project:
    """One project on the shared server: a database, its own login role, and optionally a Redis
    database index with a Redis user of its own."""

    name: str
    """Database name and stack output prefix: a lowercase identifier, at most 63 bytes."""

    user: str
    """The project's own login role; it owns the database and nothing else."""

    redis_db: int | None = None
    """The project's Redis database index, 1 or more; its own Redis user may select only this one.
    None: the project uses no Redis (no index, no user, no Redis URLs)."""

    connection_limit: int = 20
    """Concurrent connections the role may hold, so one project cannot starve the others."""

    statement_timeout_ms: int = 0
    """Statement timeout set on the role in milliseconds; 0 leaves queries unbounded."""

    pool_mode: str = "transaction"
    """Through the pooler (``db-server:pooler``): ``transaction`` shares a server connection
    between clients per transaction; ``session`` keeps one per client, for apps that use
    session state (``SET``, advisory locks, ``LISTEN``, prepared statements by name)."""

    pool_size: int | None = None
    """Server connections the pooler opens for the project at most; they count against
    ``connection_limit``. None: 5, or ``connection_limit`` where that is lower."""

    max_client_connections: int = 200
    """Client connections the pooler takes for the project at once; more wait to be refused."""

    @property
    def pool_connections(self) -> int:
        """``pool_size``, or its default."""
        return self.pool_size if self.pool_size is not None else min(5, self.connection_limit)


PROJECTS: list[Project] = [
    Project("crypto_ai_agent", user="crypto", redis_db=3),
    Project("project2_db", user="project2_user", redis_db=1),
    Project("project3_db", user="project3_user", redis_db=2),
]
