"""A hundred projects on one server, a third of them with Redis: more than Redis's sixteen
default indexes ever allowed, deployed for real."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests.e2e.harness import E2EStack, ProjectLine, connect, login_refused, redis_client

pytestmark = pytest.mark.e2e

MANY = tuple(
    ProjectLine(
        f"app{i:03}", user=f"app{i:03}_user", redis_db=i if i % 3 == 0 else None, connection_limit=2
    )
    for i in range(1, 101)
)
MAX_CONNECTIONS = 2 * len(MANY) + 3
"""Room for every project at its limit, and the admin's reserve: the least `up` accepts."""


def test_a_hundred_projects_deploy_and_each_reaches_only_its_own(
    make_stack: Callable[..., E2EStack],
) -> None:
    stack = make_stack(
        "many",
        projects=MANY,
        settings={"postgres": {"parameters": {"max_connections": str(MAX_CONNECTIONS)}}},
    )

    stack.up()
    outputs = stack.outputs()

    assert sum(1 for key in outputs if key.startswith("app") and key.endswith("_host_url")) == 100
    assert sum(1 for key in outputs if key.startswith("app") and key.endswith("_redis_url")) == 66
    picked = random.Random(7).sample(MANY, 10)
    for project, neighbour in zip(picked, picked[1:] + picked[:1], strict=True):
        url = outputs[f"{project.name}_host_url"]
        with connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (project.name,)
        with login_refused(f'permission denied for database "{neighbour.name}"'):
            connect(url, dbname=neighbour.name).close()
        if project.redis_db is not None:
            with redis_client(outputs[f"{project.name}_host_redis_url"]) as client:
                assert client.client_info()["db"] == project.redis_db
    stack.preview(expect_no_changes=True)
