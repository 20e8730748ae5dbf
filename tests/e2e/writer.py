"""A project's app, writing: a row a moment, each with its commit time, for the measured RPO of
a lost host (tests/e2e/test_host_loss.py, bench/archive.py)."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import psycopg

from tests.e2e.harness import libpq_url


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
