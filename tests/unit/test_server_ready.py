"""The readiness check's decisions: when a server is new, and what a user reads when it never
comes up. (That it lets the provider in only after the first-start init is the e2e suite's.)"""

import socket
import time
from typing import Any

import pytest

from providers.server_ready import ServerNotReadyError, _ServerReadyProvider, wait_until_ready

OLD: dict[str, Any] = {
    "kind": "postgres",
    "container_id": "c0ffee",
    "container_name": "db-server-postgres",
    "host": "127.0.0.1",
    "port": 5432,
    "user": "dbadmin",
    "password": "old-password",
    "timeout_seconds": 180,
    "__provider": "serialized",
}


@pytest.mark.parametrize(
    ("change", "replaces"),
    [
        ({"container_id": "d00d"}, ["container_id"]),  # a new container is a new server
        ({"port": 15432}, ["port"]),
        ({"password": "new-password"}, []),  # the same server, logged in to with the new one
    ],
)
def test_a_new_container_or_address_is_waited_for_again(
    change: dict[str, Any], replaces: list[str]
) -> None:
    diff = _ServerReadyProvider().diff("c0ffee", OLD, {**OLD, **change})

    assert diff.changes is True
    assert diff.replaces == replaces


def test_nothing_changed_means_no_step_even_when_the_provider_code_did() -> None:
    diff = _ServerReadyProvider().diff("c0ffee", OLD, {**OLD, "__provider": "newer code"})

    assert diff.changes is False


def test_a_refresh_of_a_server_that_does_not_answer_finds_it_not_ready() -> None:
    """Gone from the state, so the next update waits for the server before the provider dials
    it: what `make repair` relies on after a container was stopped or removed."""
    props = {**OLD, "port": _closed_port()}

    read = _ServerReadyProvider().read("c0ffee", props)

    assert read.id == ""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_a_server_that_never_answers_fails_up_naming_its_container(kind: str) -> None:
    props = {**OLD, "kind": kind, "port": _closed_port(), "timeout_seconds": 0.5}
    started = time.monotonic()

    with pytest.raises(ServerNotReadyError) as raised:
        wait_until_ready(props)

    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert f"{kind} in container db-server-postgres at 127.0.0.1:{props['port']}" in message
    assert "did not accept a login within 0.5 s" in message
    assert "docker logs db-server-postgres" in message
    assert "old-password" not in message
