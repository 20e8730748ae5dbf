"""The readiness check `pulumi up` waits on, against real servers: it lets the PostgreSQL
provider in only after the first-start init, and says at once when a login can never work."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from providers.server_ready import ServerNotReadyError, _ServerReadyProvider, wait_until_ready
from tests.integration.conftest import Container, DockerResources

pytestmark = pytest.mark.integration

PASSWORD = "ready-check-password"
INIT_SECONDS = 4


def _props(container: Container, kind: str, port: int, **overrides: object) -> dict[str, object]:
    return {
        "kind": kind,
        "container_id": container.name,
        "container_name": container.name,
        "host": "127.0.0.1",
        "port": container.host_port(port),
        "user": "dbadmin" if kind == "postgres" else "default",
        "password": PASSWORD,
        "timeout_seconds": 60,
        **overrides,
    }


@pytest.fixture
def initialising_postgres(
    resources: DockerResources, postgres_image: str, tmp_path: Path
) -> Container:
    """A server just started on an empty volume, whose first-start init takes a few seconds."""
    initdb = tmp_path / "initdb"
    initdb.mkdir(mode=0o755)
    (initdb / "10-slow.sh").write_text(
        f"sleep {INIT_SECONDS}\n"
        'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres '
        '-c "CREATE TABLE init_finished (at timestamptz DEFAULT now())"\n'
    )
    (initdb / "10-slow.sh").chmod(0o644)
    return resources.run(
        postgres_image,
        purpose="pg-ready",
        env={"POSTGRES_USER": "dbadmin", "POSTGRES_PASSWORD": PASSWORD},
        mounts=[f"{initdb}:/docker-entrypoint-initdb.d:ro"],
        publish=[5432],
    )


def test_postgres_is_ready_only_after_its_first_start_init(
    initialising_postgres: Container,
) -> None:
    started = time.monotonic()

    wait_until_ready(_props(initialising_postgres, "postgres", 5432))

    assert time.monotonic() - started >= INIT_SECONDS
    # The init's last step ran, and the real server (not the init's) took the login.
    assert "PostgreSQL init process complete; ready for start up." in (initialising_postgres.logs())
    with initialising_postgres.postgres_connect(
        user="dbadmin", password=PASSWORD, dbname="postgres"
    ) as conn:
        assert conn.execute("SELECT count(*) FROM init_finished").fetchone() == (0,)


def test_a_wrong_admin_password_fails_at_once_with_the_reason(
    initialising_postgres: Container,
) -> None:
    wait_until_ready(_props(initialising_postgres, "postgres", 5432))
    started = time.monotonic()

    with pytest.raises(ServerNotReadyError) as raised:
        wait_until_ready(_props(initialising_postgres, "postgres", 5432, password="wrong"))

    assert time.monotonic() - started < 5  # not the 60 s timeout
    assert "refuses dbadmin's login" in str(raised.value)
    assert "another admin password" in str(raised.value)


def test_redis_is_ready_once_it_takes_the_password(
    resources: DockerResources, redis_image: str
) -> None:
    container = resources.run(
        redis_image,
        "redis-server",
        "--requirepass",
        PASSWORD,
        purpose="redis-ready",
        publish=[6379],
    )

    wait_until_ready(_props(container, "redis", 6379))
    # A refresh of a server that takes logins keeps the resource as it is.
    props = _props(container, "redis", 6379)
    read = _ServerReadyProvider().read(container.name, props)
    assert (read.id, read.outs) == (container.name, props)

    with pytest.raises(ServerNotReadyError, match="refuses default's login"):
        wait_until_ready(_props(container, "redis", 6379, password="wrong"))
