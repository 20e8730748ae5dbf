"""RPO, RTO and throughput of continuous backup, on a cluster of a given size, in one run.

    make bench-archive              # a 1 GB cluster
    bench/archive.py --gb 0.2       # a smaller one

It deploys a stack with both repositories (a local volume and the test's S3-compatible store,
encrypted) and its state in that store, fills one project's database to the size asked (rows
of random hex, which compress about as well as real data), then measures:

- a full base backup into each repository, by hand (`pgbackrest backup --type=full`): seconds
  and MB/s of cluster size;
- a host loss while the project writes a row every 200 ms: every container and volume of the
  stack removed, then `make rebuild` from the object store alone. Its seconds are the RTO; the
  RPO is the time between the last row committed before the loss and the newest one back;
- that every row of the big table came back.

A benchmark that prints figures, not a test: it needs what the e2e tests need (`.ci/setup`, the
real provider plugins).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import docker_cli  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    E2EStack,
    Names,
    ProjectLine,
    connect,
    missing_plugins,
)
from tests.e2e.test_continuous_backup import (  # noqa: E402
    BUCKET,
    archive_settings,
    set_archive_secrets,
)
from tests.e2e.writer import Writer, lose_the_host  # noqa: E402
from tests.object_store import start_object_store  # noqa: E402

STATE_BUCKET = "pulumi-state"
SHOP = ProjectLine("shop", user="shop_user", redis_db=3)
ROW_BYTES = 8 * 33  # eight md5 hex strings and their separators, before the row's overhead


def fill(url: str, gb: float) -> tuple[float, int]:
    """Rows of random hex into shop's database until it holds ``gb``; seconds and bytes."""
    started = time.monotonic()
    rows = int(gb * 1e9 / (ROW_BYTES + 40))
    batch = 200_000
    with connect(url) as conn:
        conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, pad text)")
        for first in range(0, rows, batch):
            conn.execute(
                "INSERT INTO big SELECT g, concat_ws(' ', md5(random()::text), md5(random()::text),"
                " md5(random()::text), md5(random()::text), md5(random()::text),"
                " md5(random()::text), md5(random()::text), md5(random()::text))"
                " FROM generate_series(%s::bigint, %s::bigint) g",
                (first + 1, min(first + batch, rows)),
            )
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return time.monotonic() - started, int(row[0])


def timed_backup(sidecar: str, repo: int) -> float:
    started = time.monotonic()
    docker_cli(
        *("exec", "--user", "postgres", sidecar, "pgbackrest", "backup", "--type=full"),
        f"--repo={repo}",
        timeout=3600,
    )
    return time.monotonic() - started


def repo_bytes(sidecar: str, repo: int) -> int:
    """What the newest backup takes in the repository (compressed, encrypted)."""
    out = docker_cli(
        *("exec", "--user", "postgres", sidecar, "pgbackrest", "info", "--output=json"),
        f"--repo={repo}",
    )
    return int(json.loads(out)[0]["backup"][-1]["info"]["repository"]["delta"])


def run(gb: float, pulumi_cli: str, images: tuple[str, str], s3_image: str, tmp: Path) -> None:
    names = Names()
    docker_cli("network", "create", names.network)
    store = start_object_store(s3_image, names.network, f"{names.prefix}-s3", tmp / "certs")
    store.make_bucket(BUCKET)
    store.make_bucket(STATE_BUCKET)
    backend, backend_env = store.pulumi_backend(STATE_BUCKET)
    stack = E2EStack(
        tmp / "stack",
        pulumi_cli,
        stack_name="bench-archive",
        names=names,
        images=images,
        projects=(SHOP,),
        settings={
            "network": {"name": names.network, "create": False},
            # No scheduled backup or drill during the measurement.
            "archive": archive_settings(
                store, backup_interval_seconds=86400, drill_interval_seconds=86400
            ),
        },
        backend_url=backend,
        env=backend_env,
    )
    figures: list[tuple[str, str]] = []
    try:
        set_archive_secrets(stack)
        started = time.monotonic()
        stack.up()
        figures.append(("cold up (both repositories)", f"{time.monotonic() - started:.1f} s"))
        url = stack.project_url("shop")
        seconds, size = fill(url, gb)
        mb = size / 1e6
        figures.append(("cluster: shop's database", f"{mb:.0f} MB, filled in {seconds:.0f} s"))
        sidecar = f"{names.prefix}-pgbackrest"
        for repo, where in ((1, "local volume"), (2, "object store, encrypted")):
            seconds = timed_backup(sidecar, repo)
            stored = repo_bytes(sidecar, repo) / 1e6
            figures.append(
                (
                    f"full backup into repo{repo} ({where})",
                    f"{seconds:.1f} s, {mb / seconds:.1f} MB/s, {stored:.0f} MB stored",
                )
            )
        writer = Writer(stack.project_url("shop"))
        writer.start()
        time.sleep(60)
        writer.stop.set()
        writer.join(timeout=30)
        lost_at = writer.committed[-1]
        lose_the_host(names, keep=store.container)
        started = time.monotonic()
        rebuilt = stack.make("rebuild", f"STACK={stack.stack_name}", "YES=1", timeout=7200)
        rto = time.monotonic() - started
        if rebuilt.returncode != 0:
            raise SystemExit(f"make rebuild failed:\n{rebuilt.stdout[-4000:]}{rebuilt.stderr}")
        with connect(stack.project_url("shop")) as conn:
            newest = conn.execute("SELECT max(at) FROM ticks").fetchone()
            rows = conn.execute("SELECT count(*) FROM big").fetchone()
        assert newest is not None
        assert rows is not None
        figures.append(
            (
                "host loss: make rebuild from the object store (RTO)",
                f"{rto:.1f} s, {mb / rto:.1f} MB/s of cluster",
            )
        )
        figures.append(("host loss: RPO", f"{(lost_at - newest[0]).total_seconds():.1f} s"))
        figures.append(("rows of big back", f"{rows[0]}"))
    finally:
        stack.cleanup()
    print()
    print("| figure | value |\n|---|---|")
    for name, value in figures:
        print(f"| {name} | {value} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the cluster to measure")
    args = parser.parse_args()
    pulumi_cli = shutil.which("pulumi")
    images = (
        os.environ.get("DB_SERVER_TEST_POSTGRES_IMAGE"),
        os.environ.get("DB_SERVER_TEST_REDIS_IMAGE"),
    )
    s3_image = os.environ.get("DB_SERVER_TEST_S3_IMAGE")
    if pulumi_cli is None or shutil.which("docker") is None or not all(images) or not s3_image:
        print('bench: needs the Pulumi CLI, Docker and the test images: eval "$(.ci/setup)" first')
        return 2
    missing = missing_plugins(pulumi_cli)
    if missing:
        print(f"bench: the real provider plugins are not installed ({', '.join(missing)})")
        return 2
    with tempfile.TemporaryDirectory(prefix="db-server-bench-archive-") as tmp:
        run(args.gb, pulumi_cli, (str(images[0]), str(images[1])), s3_image, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
