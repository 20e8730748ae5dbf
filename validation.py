"""Checks on the project list, run before any resource is registered.

Every problem is collected and reported at once, each naming the project and the field, so one
bad edit to ``projects.py`` is one round trip, not one per mistake.
"""

import re
from collections.abc import Sequence

from components.logins import SERVICE_CONNECTION_LIMIT
from components.metrics import MONITOR_ROLE
from components.pooler import LOOKUP_ROLE
from components.project_database import URL_NAMES
from projects import Project
from settings import ADMIN_ROLE, PROJECT_NAME, InvalidInputError, Settings

POOL_MODES = ("transaction", "session")

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_MAX_IDENTIFIER_BYTES = 63
# PostgreSQL's own databases and the role names it reserves, plus the admin role.
_RESERVED = frozenset(
    {
        "postgres",
        "template0",
        "template1",
        "public",
        "none",
        "current_role",
        "current_user",
        "session_user",
        "default",  # Redis's built-in user
        ADMIN_ROLE,
        LOOKUP_ROLE,
        MONITOR_ROLE,
    }
)

SCRATCH_PREFIX = "db_server_scratch_"
"""Names of the backup scripts' scratch databases (scripts/lib/common.sh): no project's."""

# PostgreSQL's defaults for the settings that share out its connections.
_CONNECTION_DEFAULTS = {
    "max_connections": 100,
    "superuser_reserved_connections": 3,
    "reserved_connections": 0,
}

RESERVED_OUTPUTS = frozenset(
    {"admin_url", "admin_host_url", "redis_admin_url", "redis_admin_host_url", "summary"}
)
"""Stack outputs the server itself exports; no project output may take one of these."""


def validate_projects(projects: Sequence[Project], redis_databases: int) -> None:
    """Raise ``InvalidInputError`` listing every problem in the project list; Redis indexes run
    from 1 to ``redis_databases`` minus one."""
    problems: list[str] = []
    for project in projects:
        problems.extend(_check_project(project, redis_databases))
    problems.extend(_check_unique(projects))
    if problems:
        raise InvalidInputError("Invalid project list in projects.py:", problems)


def _check_project(project: Project, redis_databases: int) -> list[str]:
    label = f"project {project.name!r}"
    problems = [
        f"{label}: field '{field}': {problem}"
        for field in ("name", "user")
        if (problem := _identifier_problem(getattr(project, field))) is not None
    ]
    redis_db = project.redis_db
    if redis_db is None:
        pass
    elif not isinstance(redis_db, int) or isinstance(redis_db, bool):
        problems.append(f"{label}: field 'redis_db': must be an integer or None, got {redis_db!r}")
    elif redis_db == 0:
        problems.append(
            f"{label}: field 'redis_db': 0 is no project's: every Redis connection starts there "
            f"before it selects its index, so every project could reach it; "
            f"use 1-{redis_databases - 1}"
        )
    elif not 1 <= redis_db < redis_databases:
        problems.append(
            f"{label}: field 'redis_db': must be in 1-{redis_databases - 1} "
            f"(db-server:redis.databases is {redis_databases}), got {redis_db}"
        )
    for field in ("connection_limit", "statement_timeout_ms", "max_client_connections"):
        value = getattr(project, field)
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{label}: field '{field}': must be an integer, got {value!r}")
    if isinstance(project.connection_limit, int) and project.connection_limit < 1:
        problems.append(
            f"{label}: field 'connection_limit': must be at least 1, got {project.connection_limit}"
        )
    if isinstance(project.statement_timeout_ms, int) and project.statement_timeout_ms < 0:
        problems.append(
            f"{label}: field 'statement_timeout_ms': must be 0 (no limit) or more, "
            f"got {project.statement_timeout_ms}"
        )
    if project.pool_mode not in POOL_MODES:
        problems.append(
            f"{label}: field 'pool_mode': must be one of {', '.join(POOL_MODES)}, "
            f"got {project.pool_mode!r}"
        )
    if project.pool_size is not None and (
        not isinstance(project.pool_size, int) or isinstance(project.pool_size, bool)
    ):
        problems.append(
            f"{label}: field 'pool_size': must be an integer or None, got {project.pool_size!r}"
        )
    elif (
        isinstance(project.pool_size, int)
        and isinstance(project.connection_limit, int)
        and not 1 <= project.pool_size <= project.connection_limit
    ):
        problems.append(
            f"{label}: field 'pool_size': must be in 1-{project.connection_limit} "
            f"(its connection_limit), got {project.pool_size}"
        )
    if isinstance(project.max_client_connections, int) and project.max_client_connections < 1:
        problems.append(
            f"{label}: field 'max_client_connections': must be at least 1, "
            f"got {project.max_client_connections}"
        )
    return problems


def _identifier_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {value!r}"
    if not _IDENTIFIER.fullmatch(value):
        return f"{value!r} is not a lowercase identifier ([a-z_][a-z0-9_]*)"
    if len(value.encode()) > _MAX_IDENTIFIER_BYTES:
        return f"{value!r} is longer than {_MAX_IDENTIFIER_BYTES} bytes"
    if value in _RESERVED or value.startswith(("pg_", SCRATCH_PREFIX)):
        return f"{value!r} is reserved by PostgreSQL or this server"
    return None


def validate_connections(projects: Sequence[Project], settings: Settings) -> None:
    """Raise ``InvalidInputError`` unless every login's ``connection_limit`` fits the server's
    ``max_connections`` together: a project at its limit must leave the others theirs, and the
    admin its reserved slots (``superuser_reserved_connections``, ``reserved_connections``).

    Only for a container, whose settings say what the server has; an external server's
    ``max_connections`` is its operator's to share out."""
    postgres = settings.postgres
    if postgres.external:
        return
    values: dict[str, int] = {}
    problems: list[str] = []
    for name, default in _CONNECTION_DEFAULTS.items():
        raw = postgres.parameters.get(name, str(default))
        try:
            values[name] = int(raw)
        except ValueError:
            problems.append(
                f"{PROJECT_NAME}:postgres.parameters.{name}: must be an integer, got {raw!r}"
            )
    if problems:
        raise InvalidInputError(f"Invalid {PROJECT_NAME} stack settings:", problems)

    demands = {f"project {p.name!r}": p.connection_limit for p in projects}
    if settings.pooler.enabled:
        demands[f"the pooler's {LOOKUP_ROLE}"] = SERVICE_CONNECTION_LIMIT
    if settings.metrics.enabled:
        demands[f"the exporters' {MONITOR_ROLE}"] = SERVICE_CONNECTION_LIMIT
    reserved = values["superuser_reserved_connections"] + values["reserved_connections"]
    available = values["max_connections"] - reserved
    needed = sum(demands.values())
    if needed <= available:
        return
    largest = sorted(demands.items(), key=lambda item: -item[1])[:3]
    raise InvalidInputError(
        "Connections do not fit the server:",
        [
            f"{PROJECT_NAME}:postgres.parameters.max_connections: {values['max_connections']}, "
            f"of which {reserved} are reserved for the admin "
            "(superuser_reserved_connections + reserved_connections), leaves "
            f"{available} for the logins' connection_limit, which add up to {needed} over "
            f"{len(demands)} logins (largest: "
            + ", ".join(f"{who} {limit}" for who, limit in largest)
            + f"). Raise max_connections to at least {needed + reserved}, or lower "
            "connection_limit in projects.py."
        ],
    )


def _check_unique(projects: Sequence[Project]) -> list[str]:
    problems: list[str] = []
    # The type is part of the key: True == 1 to Python, but a bad True is reported above.
    first_with: dict[tuple[str, type, object], str] = {}
    for project in projects:
        for field in ("name", "user", "redis_db"):
            value = getattr(project, field)
            if value is None:  # no Redis: nothing to share
                continue
            key = (field, type(value), value)
            if key in first_with:
                problems.append(
                    f"project {project.name!r}: field '{field}': {value!r} is already used "
                    f"by project {first_with[key]!r}"
                )
            else:
                first_with[key] = project.name

    # Output names are built from project names, so two different names can still collide:
    # project "a" exports "a_host_url", and so does project "a_host" through "_url".
    # Duplicate names were reported above, so each name is checked once.
    exporter: dict[str, str] = dict.fromkeys(RESERVED_OUTPUTS, "the server")
    for name in dict.fromkeys(project.name for project in projects):
        for url_name in URL_NAMES:
            output = f"{name}_{url_name}"
            owner = exporter.setdefault(output, f"project {name!r}")
            if owner != f"project {name!r}":
                problems.append(
                    f"project {name!r}: field 'name': its output {output!r} is already "
                    f"exported by {owner}"
                )
    return problems
