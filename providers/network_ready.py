"""The Docker network's name, once Docker knows the network: what the containers wait for.

The docker provider creates a network in a few milliseconds, then waits two seconds before it
reads it back; containers that took the network's name from that resource would wait too, on
every cold `up`. This resource polls the Docker engine (the one ``DOCKER_HOST`` names, as the
docker provider does) for the name instead, every 20 ms, alongside the network's own create.

Deletion order is the docker provider's: it retries removing a network while containers are
still attached to it, so a destroy that stops the containers at the same time still succeeds.
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

from providers import diff_fields

POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 60.0


class NetworkNotFoundError(Exception):
    """The network did not appear in time."""


def wait_for_network(name: str, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
    """Returns once Docker lists a network of that name; raises after ``timeout_seconds``."""
    import docker  # here: the provider process needs it, the program does not

    client = docker.from_env()
    try:
        deadline = time.monotonic() + timeout_seconds
        # The engine's name filter matches parts of names too.
        while not any(n.name == name for n in client.networks.list(names=[name])):
            if time.monotonic() > deadline:
                raise NetworkNotFoundError(
                    f"Docker network {name!r} did not appear within {timeout_seconds:.0f} s"
                )
            time.sleep(POLL_SECONDS)
    finally:
        client.close()


class _NetworkReadyProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wait_for_network(props["name"])
        return CreateResult(id_=props["name"], outs={**props, "ready_name": props["name"]})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_fields(olds, news, ("name",), ("name",))


class NetworkReady(pulumi.dynamic.Resource):
    """Exists once Docker knows the network ``name``."""

    ready_name: pulumi.Output[str]
    """``name``, known once the network exists (unknown in the preview of a new network)."""

    def __init__(self, name: str, network_name: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__(
            _NetworkReadyProvider(), name, {"name": network_name, "ready_name": None}, opts
        )
