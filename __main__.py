"""db-server: one shared PostgreSQL and Redis server for many small projects.

Deploys the PostgreSQL and Redis servers (``DatabaseServer``: a Docker network, named volumes
and containers, or external servers), then for every project in ``projects.py`` a database, its
own login role and a Redis index (``ProjectDatabase``). Exports each project's connection URLs
as secrets.
"""

import pulumi

import projects
from components.database_server import DatabaseServer, DatabaseServerArgs
from components.metrics import Metrics, MetricsArgs
from components.pooler import POOLER_PORT, Pooler, PoolerArgs
from components.project_database import ProjectDatabase, ProjectDatabaseArgs
from settings import Endpoint, load_settings
from validation import validate_connections, validate_projects

settings = load_settings(pulumi.Config())
validate_projects(projects.PROJECTS, settings.redis.databases)
validate_connections(projects.PROJECTS, settings)

server = DatabaseServer(
    "db-server",
    DatabaseServerArgs(
        network=settings.network,
        postgres=settings.postgres,
        redis=settings.redis,
        backup=settings.backup,
        protection=settings.protection,
        archive=settings.archive,
        archive_secrets=settings.archive_secrets,
        admin_password=settings.admin_password,
        redis_admin_password=settings.redis_admin_password,
        metrics_volume=settings.metrics.textfile_volume,
    ),
)

pooler = None
if settings.pooler.enabled:
    assert server.network_name is not None  # a container server: settings refuse otherwise
    Pooler(
        "db-server-pooler",
        PoolerArgs(
            settings=settings.pooler,
            projects=projects.PROJECTS,
            postgres=server.postgres,
            network_name=server.network_name,
        ),
    )
    pooler = Endpoint(
        "127.0.0.1", settings.pooler.host_port, settings.pooler.container_name or "", POOLER_PORT
    )
if settings.metrics.enabled:
    assert server.network_name is not None  # container servers: settings refuse otherwise
    Metrics(
        "db-server-metrics",
        MetricsArgs(
            settings=settings.metrics,
            postgres=server.postgres,
            redis=server.redis,
            network_name=server.network_name,
        ),
    )

for project in projects.PROJECTS:
    database = ProjectDatabase(
        project.name,
        ProjectDatabaseArgs(
            project=project,
            postgres=server.postgres,
            redis=server.redis,
            pooler=pooler,
            protect=settings.protection.protect,
            retain_on_delete=settings.protection.retain_on_delete,
        ),
    )
    for suffix, url in database.urls.items():
        pulumi.export(f"{project.name}_{suffix}", url)

for name in ("admin_url", "admin_host_url", "redis_admin_url", "redis_admin_host_url"):
    pulumi.export(name, getattr(server, name))
pulumi.export(
    "summary",
    {
        **server.summary,
        "projects": {
            p.name: {"database": p.name, "user": p.user, "redis_db": p.redis_db}
            for p in projects.PROJECTS
        },
    },
)
