"""An interrupted deploy, repaired by one command: a real `pulumi up` SIGKILLed at points the
engine's events name (during the containers, the roles and databases, the Redis users, a
container's replacement), then `make repair YES=1`. After each repair every project logs in
with its URLs, the rows and keys written before the kill are there, nothing exists that the
state does not know, and a second preview is empty. A live lock is never touched.

One dev stack, its tests in the order written, each kill point on top of the last repair.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import E2EStack, ProjectLine, connect, redis_client
from tests.e2e.interrupt import DockerWatch, Killed, Step, unknown_objects, up_killed_at

pytestmark = pytest.mark.e2e

FIRST = (
    ProjectLine("shop", user="shop_user", redis_db=2, connection_limit=5),
    ProjectLine("blog", user="blog_user", redis_db=1, connection_limit=5),
)
WITH_DATABASES = (
    ProjectLine("crm", user="crm_user", redis_db=None, connection_limit=5),
    ProjectLine("wiki", user="wiki_user", redis_db=None, connection_limit=5),
    ProjectLine("forum", user="forum_user", redis_db=None, connection_limit=5),
)
WITH_REDIS = (
    ProjectLine("chat", user="chat_user", redis_db=6, connection_limit=5),
    ProjectLine("maps", user="maps_user", redis_db=7, connection_limit=5),
)
# Seven projects at 5 connections each fit max_connections (the default limit is 20).
CONTAINER = "docker:index/container:Container"
REPORT: list[str] = []
"""What each repair printed, for the session's note (printed at the end of the module)."""


@pytest.fixture(scope="module")
def dev(make_stack: Callable[..., E2EStack]) -> Any:
    stack = make_stack("dev", projects=FIRST)
    yield stack
    print("\n".join(REPORT))


def _repair(stack: E2EStack, killed: Killed, point: str) -> str:
    """`make repair YES=1`, which must succeed; what it printed."""
    repaired = stack.make("repair", f"STACK={stack.stack_name}", "YES=1")
    lines = [line for line in repaired.stdout.splitlines() if line.startswith("repair: ")]
    REPORT.append(
        f"== {point}: killed {killed.seconds:.1f} s in, at the {killed.step['op']} of "
        f"{killed.step['urn'].rsplit('::', 1)[-1]}, {len(killed.pending)} pending operation(s)"
    )
    REPORT.extend(line for line in lines if not line.startswith("repair: pulumi up"))
    assert repaired.returncode == 0, repaired.stdout[-4000:] + repaired.stderr[-4000:]
    return repaired.stdout


def _write(stack: E2EStack, projects: tuple[ProjectLine, ...], tag: str) -> None:
    for project in projects:
        with connect(stack.project_url(project.name)) as conn:
            conn.execute(f"CREATE TABLE rows_{tag} AS SELECT g AS id FROM generate_series(1, 50) g")
        if project.redis_db is not None:
            with redis_client(stack.project_url(project.name, "host_redis_url")) as client:
                client.set(f"{project.name}:{tag}", "kept")


def _assert_whole(stack: E2EStack, written: dict[str, tuple[ProjectLine, ...]]) -> None:
    """Every project logs in with its URLs; what was written is there; nothing unknown exists;
    a second preview is empty."""
    for project in stack.projects:
        with connect(stack.project_url(project.name)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (project.name,)
        if project.redis_db is not None:
            with redis_client(stack.project_url(project.name, "host_redis_url")) as client:
                client.set(f"{project.name}:after-repair", "1")
    for tag, projects in written.items():
        for project in projects:
            with connect(stack.project_url(project.name)) as conn:
                assert conn.execute(f"SELECT count(*) FROM rows_{tag}").fetchone() == (50,)
            if project.redis_db is not None:
                with redis_client(stack.project_url(project.name, "host_redis_url")) as client:
                    assert client.get(f"{project.name}:{tag}") == b"kept"
    assert unknown_objects(stack) == []
    _, events = stack.preview()
    assert events.changed() == {}


def _of(projects: tuple[ProjectLine, ...], suffix: str) -> Callable[[Step], bool]:
    """A create step of one of these projects' ``<name>-<suffix>`` resources."""
    names = {f"::{p.name}-{suffix}" for p in projects}
    return lambda step: step["op"] == "create" and any(step["urn"].endswith(n) for n in names)


def test_a_first_up_killed_while_it_makes_the_containers(dev: E2EStack, real_plugins: str) -> None:
    watch = DockerWatch()
    containers = {dev.names.postgres, dev.names.redis}
    try:
        killed = up_killed_at(
            dev,
            real_plugins,
            step=lambda step: step["op"] == "create" and step["type"] == CONTAINER,
            there=lambda _step: bool(containers & watch.created),
        )
    finally:
        watch.close()
    assert any(op["resource"]["type"] == CONTAINER for op in killed.pending), killed.pending

    printed = _repair(dev, killed, "first up, during the containers")

    assert "imported; replaced by this repair" in printed
    _assert_whole(dev, {})
    _write(dev, FIRST, "first")


def test_an_up_killed_while_it_makes_roles_and_databases(dev: E2EStack, real_plugins: str) -> None:
    dev.write_projects([*FIRST, *WITH_DATABASES])
    wanted = tuple(p.name for p in WITH_DATABASES)
    with connect(dev.outputs()["admin_host_url"]) as admin:

        def created(_step: Step) -> bool:
            row = admin.execute(
                "SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (list(wanted),)
            ).fetchone()
            return bool(row and row[0])

        killed = up_killed_at(dev, real_plugins, _of(WITH_DATABASES, "database"), created)
    assert killed.pending

    printed = _repair(dev, killed, "new projects, during the roles and databases")

    assert "Database" in printed
    _assert_whole(dev, {"first": FIRST})
    _write(dev, WITH_DATABASES, "second")


def test_an_up_killed_while_it_makes_redis_users(dev: E2EStack, real_plugins: str) -> None:
    dev.write_projects([*FIRST, *WITH_DATABASES, *WITH_REDIS])
    with redis_client(dev.outputs()["redis_admin_host_url"]) as admin:

        def created(_step: Step) -> bool:
            return any(admin.acl_getuser(p.user) for p in WITH_REDIS)

        killed = up_killed_at(dev, real_plugins, _of(WITH_REDIS, "redis-user"), created)
    assert any("redis-user" in op["resource"]["urn"] for op in killed.pending), killed.pending

    printed = _repair(dev, killed, "new projects, during the Redis users")

    assert "it gets a new password" in printed
    _assert_whole(dev, {"first": FIRST, "second": WITH_DATABASES})


def test_an_up_killed_while_it_replaces_the_redis_container(
    dev: E2EStack, real_plugins: str
) -> None:
    # maxmemory is in the uploaded config file: a change replaces the container, old one first.
    dev.set("redis", maxmemory="200mb")
    watch = DockerWatch()
    try:
        killed = up_killed_at(
            dev,
            real_plugins,
            step=lambda step: step["op"] == "create-replacement" and step["type"] == CONTAINER,
            there=lambda _step: dev.names.redis in watch.created,
        )
    finally:
        watch.close()

    printed = _repair(dev, killed, "a replacement of the Redis container (its data on the volume)")

    assert "Container" in printed
    _assert_whole(dev, {"first": FIRST, "second": WITH_DATABASES})


def test_a_live_lock_stops_the_repair_and_changes_nothing(dev: E2EStack, real_plugins: str) -> None:
    locks = dev.state_dir / ".pulumi" / "locks"
    running = subprocess.Popen(
        [real_plugins, "up", "--yes", "--skip-preview", "--refresh", "--stack", dev.stack_name],
        cwd=dev.workdir,
        env={**os.environ, **dev.stack.workspace.env_vars},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(locks.rglob("*.json")):
            assert running.poll() is None, running.communicate()[0]
            assert time.monotonic() < deadline, "the up took no lock"
            time.sleep(0.05)
        refused = dev.make("repair", f"STACK={dev.stack_name}", "YES=1")

        # make reports the repair's own exit code, 3: locked by a deploy that runs.
        assert refused.returncode != 0, refused.stdout + refused.stderr
        assert "Error 3" in refused.stderr
        assert f"is locked by pid {running.pid} of " in refused.stdout
        assert "nothing was changed" in refused.stdout
        assert list(locks.rglob("*.json")), "the running up's lock was removed"
    finally:
        output, _ = running.communicate(timeout=600)
    assert running.returncode == 0, output


def test_without_a_terminal_and_without_yes_repair_asks_nothing_and_fails(dev: E2EStack) -> None:
    state_before = dev.state_file()

    refused = dev.make("repair", f"STACK={dev.stack_name}")

    assert refused.returncode != 0
    assert "Error 2" in refused.stderr  # the repair's exit code for a wrong use
    assert "YES=1" in refused.stdout
    assert dev.state_file() == state_before
