"""A lost host, rebuilt from object storage alone (README, "Rebuilding on a new host").

The stack keeps its Pulumi state in the object store too (an ``s3://`` backend), so once every
container and volume of the stack is gone (the data, the local repository and its drills), what
is left is the store and the state's passphrase, as after a dead disk or a deleted VPS. Then
`make rebuild`: the servers come back with their roles, passwords, databases and rows up to the
last archived WAL, and Redis's latest snapshot; the projects' URLs work unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.conftest import docker_cli
from tests.e2e.harness import E2EStack, Names, ProjectLine, connect, docker_leftovers, redis_client
from tests.e2e.test_continuous_backup import (
    ARCHIVE_TIMEOUT_S,
    BUCKET,
    archive_settings,
    set_archive_secrets,
)
from tests.e2e.writer import Writer, lose_the_host
from tests.object_store import start_object_store

pytestmark = pytest.mark.e2e

SHOP = ProjectLine("shop", user="shop_user", redis_db=3)
STATE_BUCKET = "pulumi-state"


def test_a_lost_host_is_rebuilt_from_the_object_store_alone(
    make_stack: Callable[..., E2EStack], s3_image: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    names = Names()
    docker_cli("network", "create", names.network)
    store = start_object_store(
        s3_image, names.network, f"{names.prefix}-s3", tmp_path_factory.mktemp("certs")
    )
    store.make_bucket(BUCKET)
    store.make_bucket(STATE_BUCKET)
    backend, backend_env = store.pulumi_backend(STATE_BUCKET)
    stack = make_stack(
        "lost",
        projects=(SHOP,),
        settings={
            "network": {"name": names.network, "create": False},
            "archive": archive_settings(store, backup_interval_seconds=60),
        },
        names=names,
        backend_url=backend,
        env=backend_env,
    )
    set_archive_secrets(stack)
    stack.up()
    outputs = stack.outputs()
    with redis_client(outputs["shop_host_redis_url"]) as client:
        client.set("cart:42", "three items")
    sidecar = f"{names.prefix}-pgbackrest"
    snapshot_after = time.time()

    def redis_copied() -> bool:
        marked = docker_cli(
            "exec",
            sidecar,
            "sh",
            "-c",
            "stat -c %Y /var/lib/db-server-drill/state/redis-offsite 2>/dev/null || echo 0",
        )
        return int(marked.strip()) > snapshot_after

    deadline = time.monotonic() + 300
    writer = Writer(outputs["shop_host_url"])
    writer.start()
    while not redis_copied():
        assert time.monotonic() < deadline, "no Redis snapshot in the object store within 300 s"
        time.sleep(2)
    time.sleep(3 * ARCHIVE_TIMEOUT_S)  # rows keep coming, WAL keeps being archived

    # The host is lost: every container and volume of the stack, data and local backups.
    writer.stop.set()
    writer.join(timeout=30)
    lost_at = writer.committed[-1]
    lose_the_host(names, keep=store.container)
    assert [n for k, n in docker_leftovers(names.prefix) if k == "volume"] == []

    started = time.monotonic()
    rebuilt = stack.make("rebuild", f"STACK={stack.stack_name}", "YES=1", timeout=1800)
    rto = time.monotonic() - started
    print(f"make rebuild: {rto:.1f} s (the RTO of this stack)\n{rebuilt.stderr[-2000:]}")
    assert rebuilt.returncode == 0, rebuilt.stdout[-6000:] + rebuilt.stderr

    assert stack.outputs() == outputs  # every URL as it was
    with connect(outputs["shop_host_url"]) as conn:
        ticks = [row[0] for row in conn.execute("SELECT at FROM ticks ORDER BY at").fetchall()]
    newest = ticks[-1]
    rpo = (lost_at - newest).total_seconds()
    kept = sum(1 for at in writer.committed if at <= newest)
    print(
        f"rows committed {len(writer.committed)}, back {len(ticks)}; the newest back is "
        f"{rpo:.1f} s older than the last commit before the loss (the RPO of this run)"
    )
    assert ticks == writer.committed[:kept]  # a prefix of what was committed, nothing else
    # archive_timeout, and the seconds the last segment takes to reach the store.
    cutoff = lost_at.timestamp() - ARCHIVE_TIMEOUT_S - 10
    assert all(at in ticks for at in writer.committed if at.timestamp() < cutoff)
    with redis_client(outputs["shop_host_redis_url"]) as client:
        assert client.get("cart:42") == b"three items"
    stack.preview(expect_no_changes=True)
    # The rebuilt server archives again, into both repositories.
    docker_cli("exec", "--user", "postgres", sidecar, "pgbackrest", "check", timeout=300)
