"""A connection storm through the pooler, and the same storm straight at PostgreSQL.

    make bench-load                 # 1,000 clients across 5 projects
    make bench-load CLIENTS=200     # fewer

The program is deployed for real (real providers, test images) with 5 projects, PgBouncer on and
PostgreSQL's ``max_connections`` at 100. Then, through 127.0.0.1 only, CLIENTS clients (spread
evenly over the projects, each with its own project's URL) all connect at once, hold their
connection until every client has tried, run one short transaction, and close. Once through the
pooled URLs, once through the direct ones. Printed: clients served and refused (with the first
reasons), and p50/p99 of the connect and of the transaction. Bounded: at most CLIENTS clients,
and every phase gives up after DEADLINE_S seconds. A benchmark that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from projects import Project  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    E2EStack,
    Names,
    ProjectLine,
    libpq_url,
    missing_plugins,
)

PROJECTS = [ProjectLine(f"load{i}", user=f"load{i}_user", redis_db=None) for i in range(1, 6)]
POOL_SIZE = Project("any", user="any").pool_connections
"""Server connections each project's pool opens at most: projects.py's default."""
MAX_CONNECTIONS = 100
DEADLINE_S = 120.0
TRANSACTION = "SELECT pg_sleep(0.02)"
"""What each client does once connected: a transaction that holds a server connection 20 ms."""


@dataclass
class Storm:
    """What one storm measured."""

    connect_s: list[float] = field(default_factory=list)
    transaction_s: list[float] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0


async def _client(url: str, storm: Storm, all_tried: asyncio.Barrier) -> None:
    started = time.monotonic()
    conn = None
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=60)
        storm.connect_s.append(time.monotonic() - started)
    except psycopg.OperationalError as error:
        storm.refused[str(error).rsplit("FATAL:", 1)[-1].strip()[:80]] += 1
    # Every client holds its connection until all have tried: the storm is simultaneous.
    await all_tried.wait()
    if conn is None:
        return
    try:
        began = time.monotonic()
        await conn.execute(TRANSACTION)
        storm.transaction_s.append(time.monotonic() - began)
    except psycopg.Error as error:
        storm.refused[f"transaction: {error}"[:80]] += 1
    finally:
        await conn.close()


async def storm(urls: list[str]) -> Storm:
    result = Storm()
    all_tried = asyncio.Barrier(len(urls))
    started = time.monotonic()
    clients = [asyncio.create_task(_client(url, result, all_tried)) for url in urls]
    try:
        await asyncio.wait_for(asyncio.gather(*clients), DEADLINE_S)
    except TimeoutError:
        for client in clients:
            client.cancel()
        result.refused[f"gave up after {DEADLINE_S:.0f} s"] += sum(not c.done() for c in clients)
    result.wall_s = time.monotonic() - started
    return result


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"{cuts[49] * 1000:.0f} / {cuts[98] * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="clients in each storm")
    clients = parser.parse_args().clients
    if not 1 <= clients <= 5000:
        print("bench-load: --clients must be in 1-5000")
        return 2

    pulumi_cli = shutil.which("pulumi")
    images = [
        os.environ.get(f"DB_SERVER_TEST_{name}_IMAGE", "")
        for name in ("POSTGRES", "REDIS", "PGBOUNCER")
    ]
    if pulumi_cli is None or shutil.which("docker") is None or not all(images):
        print('bench-load: needs the Pulumi CLI, Docker and the test images: eval "$(.ci/setup)"')
        return 2
    missing = missing_plugins(pulumi_cli)
    if missing:
        print(f"bench-load: the real provider plugins are not installed ({', '.join(missing)})")
        return 2

    with tempfile.TemporaryDirectory(prefix="db-server-load-") as tmp:
        names = Names(prefix="dbs-bench-load")
        stack = E2EStack(
            Path(tmp),
            pulumi_cli,
            stack_name="load",
            names=names,
            images=(images[0], images[1]),
            projects=PROJECTS,
            settings={
                "postgres": {"parameters": {"max_connections": str(MAX_CONNECTIONS)}},
                "pooler": {
                    "enabled": True,
                    "image": images[2],
                    "container_name": f"{names.prefix}-pgbouncer",
                    "host_port": free_port(),
                },
            },
        )
        try:
            stack.up()
            outputs = stack.outputs()
            results = {}
            for kind in ("host_pooled_url", "host_url"):
                urls = [
                    libpq_url(outputs[f"{PROJECTS[i % len(PROJECTS)].name}_{kind}"])
                    for i in range(clients)
                ]
                results[kind] = asyncio.run(storm(urls))
                time.sleep(2)  # the first storm's connections are gone from the server
        finally:
            stack.cleanup()

    print(
        f"\n{clients} clients across {len(PROJECTS)} projects, PostgreSQL max_connections="
        f"{MAX_CONNECTIONS}, each project's pool {POOL_SIZE} server connections, "
        f"one `{TRANSACTION}` per client\n"
    )
    print("| path | served | refused | connect p50 / p99 | transaction p50 / p99 | wall |")
    print("|---|---|---|---|---|---|")
    for kind, label in (("host_pooled_url", "through PgBouncer"), ("host_url", "direct")):
        r = results[kind]
        print(
            f"| {label} | {len(r.transaction_s)} | {sum(r.refused.values())} | "
            f"{percentiles(r.connect_s)} | {percentiles(r.transaction_s)} | {r.wall_s:.1f} s |"
        )
    for kind, r in results.items():
        for reason, count in r.refused.most_common(3):
            print(f"  {kind}: {count} x {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
