"""A lost host, as tests/e2e/test_host_loss.py and bench/archive.py make one: a project's app
writing a row a moment (each with its commit time, for the measured RPO), then every container
and volume of the stack gone."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import psycopg

from tests.conftest import docker_cli
from tests.e2e.harness import Names, docker_leftovers, libpq_url


class Writer(threading.Thread):
    """Commits a row every 200 ms, each with its commit time, until stopped (bounded: 10 min)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.committed: list[datetime] = []

    def run(self) -> None:
        deadline = time.monotonic() + 600
        with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
            conn.execute("CREATE TABLE ticks (at timestamptz PRIMARY KEY)")
            while not self.stop.is_set() and time.monotonic() < deadline:
                row = conn.execute(
                    "INSERT INTO ticks VALUES (clock_timestamp()) RETURNING at"
                ).fetchone()
                assert row is not None
                self.committed.append(row[0])
                time.sleep(0.2)


def lose_the_host(names: Names, keep: str) -> None:
    """Removes every container (but ``keep``, the object store) and every volume of the stack:
    its data, its local repository and backups, its drills."""
    for kind, name in docker_leftovers(names.prefix):
        if kind == "container" and name != keep:
            docker_cli("rm", "--force", "--volumes", name)
    for kind, name in docker_leftovers(names.prefix):
        if kind == "volume":
            docker_cli("volume", "rm", name)
