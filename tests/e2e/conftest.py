"""Fixtures of the end-to-end suite: the real program on the real engine and providers.

It needs the Docker engine, the test images and the Pulumi CLI (a failure in CI when missing,
like the integration tests) and the three real provider plugins, which no script here can build:
where ``pulumi plugin ls`` does not list them, every e2e test skips with one reason naming them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.harness import PLUGINS, E2EStack, Names, ProjectLine, missing_plugins

pytestmark = pytest.mark.e2e

LONG_NAME = "p" * 56 + "_63byte"
"""A project name of exactly 63 bytes, PostgreSQL's longest identifier."""
assert len(LONG_NAME.encode()) == 63

PROJECTS = (
    ProjectLine("shop", user="shop_user", redis_db=2, connection_limit=3),
    ProjectLine("blog", user="blog_user", redis_db=1, statement_timeout_ms=500),
    ProjectLine(LONG_NAME, user="long_user", redis_db=255),
    ProjectLine("reports", user="reports_user", redis_db=None),
)
"""Four projects: one with a tight connection limit, one with a statement timeout, one with the
longest name PostgreSQL allows on the last Redis index, and one that uses no Redis."""

REDIS_PROJECTS = tuple(p for p in PROJECTS if p.redis_db is not None)


@pytest.fixture(scope="session")
def real_plugins(pulumi_cli: str, docker: None) -> str:
    """The Pulumi CLI, once the real provider plugins are known to be installed."""
    missing = missing_plugins(pulumi_cli)
    if missing:
        reason = (
            "the real provider plugins are not installed (missing: "
            + ", ".join(missing)
            + "; `pulumi plugin ls` must list "
            + ", ".join(f"{n} {v}" for n, v in PLUGINS.items())
            + ")"
        )
        # Where Pulumi can download them (GitHub's runners), their absence is a failure.
        if os.environ.get("DB_SERVER_E2E_REQUIRED", "").lower() == "true":
            pytest.fail(f"{reason} (DB_SERVER_E2E_REQUIRED=true)", pytrace=False)
        pytest.skip(f"{reason}. The Go module proxy refuses them, so CI machines here lack them.")
    return pulumi_cli


@pytest.fixture(scope="module")
def make_stack(
    real_plugins: str,
    postgres_image: str,
    redis_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., E2EStack]]:
    """Makes stacks of the program for one test module; destroys every one of them after it,
    and removes what a stack retains on purpose (prod keeps its volumes)."""
    made: list[E2EStack] = []

    def make(
        stack_name: str,
        projects: tuple[ProjectLine, ...] = PROJECTS,
        settings: dict[str, dict[str, object]] | None = None,
        names: Names | None = None,
        **options: Any,
    ) -> E2EStack:
        stack = E2EStack(
            tmp_path_factory.mktemp(f"e2e-{stack_name}"),
            real_plugins,
            stack_name=stack_name,
            names=names or Names(),
            images=(postgres_image, redis_image),
            projects=projects,
            settings=settings,
            **options,
        )
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.cleanup()
