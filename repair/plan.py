"""What to do with each pending operation an interrupted deploy left in the state.

Pulumi records an operation before it asks the provider, and takes it off once the provider has
answered. A deploy killed in between leaves it behind, and nobody knows whether the object was
made (or removed). The real world decides:

- a pending *create* whose object is there is imported into the state with its real id; one
  whose object is not there is cleared, and the next ``up`` makes it. What an import cannot
  bring back is made good in the same repair: a container imported lacks the files the provider
  uploads into it, so it is replaced (on its volumes: nothing in it is data); a Redis user made
  halfway has a password nobody knows, so it gets a new one.
- a pending *delete* or *update* is resolved by the refresh that follows: it reads the object
  again (gone: dropped from the state; still there: the ``up`` finishes the delete, or keeps what
  the stack retains).
- what only computes or checks (random values, images, the program's own checks) holds nothing:
  cleared, and done again by the next ``up``.

Nothing is deleted to make way, and a volume or a database is never cleared without having been
looked up by its name first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from repair.stack import Resource
from repair.world import (
    CONTAINER,
    DATABASE,
    DYNAMIC,
    GRANT,
    GRANT_ROLE,
    NETWORK,
    ROLE,
    VOLUME,
    is_redis_user,
)


class Lookup(Protocol):
    """Finds an object in the real world (``repair.world.World``)."""

    def real_id(self, resource: Resource) -> str | None: ...


LOOKED_UP = (CONTAINER, VOLUME, NETWORK, ROLE, DATABASE, GRANT, GRANT_ROLE)
"""Types whose pending create is looked up in the real world (and Redis users)."""

REMADE = ("random:", "docker:index/remoteImage:RemoteImage", "pulumi:providers:")
"""Type prefixes of what holds nothing outside the state: made again by the next ``up``."""


_VERBS = {"updating": "update", "deleting": "delete", "reading": "read", "importing": "import"}


@dataclass(frozen=True)
class Action:
    """What the repair does about one pending operation, and the line it prints."""

    urn: str
    do: Literal["import", "clear", "refresh"]
    line: str
    id: str | None = None
    replace: bool = False
    """Follow-up: the next ``up`` replaces the imported resource (``--replace``)."""


def name_of(urn: str) -> str:
    """``<type> <name>`` as a person reads it, from a URN."""
    parts = urn.split("::")
    kind = parts[-2].rsplit("$", 1)[-1] if len(parts) >= 2 else "?"
    return f"{kind.split(':')[-1]} {parts[-1]}"


def decide(operation: dict[str, object], world: Lookup) -> Action:
    """The action for one pending operation of an exported state."""
    resource = operation["resource"]
    assert isinstance(resource, dict)
    urn, kind, op = str(resource["urn"]), str(resource.get("type")), str(operation["type"])
    what = name_of(urn)
    if op != "creating":
        verb = _VERBS.get(op, op)
        return Action(urn, "refresh", f"pending {verb} of {what}: read again by the refresh")
    if kind in LOOKED_UP or is_redis_user(resource):
        return _looked_up(urn, kind, what, resource, world)
    if kind.startswith(REMADE) or kind == DYNAMIC:
        return Action(urn, "clear", f"pending create of {what}: holds nothing, made again by up")
    raise ValueError(
        f"pending create of {what} ({kind}): no way to look it up, so it is left for a person "
        "(see README, Recovering an interrupted deploy)"
    )


def _looked_up(urn: str, kind: str, what: str, resource: Resource, world: Lookup) -> Action:
    real = world.real_id(resource)
    if real is None:
        return Action(urn, "clear", f"pending create of {what}: not there, cleared (up makes it)")
    if kind == CONTAINER:
        return Action(
            urn,
            "import",
            f"pending create of {what}: there ({real[:12]}), imported; replaced by this repair "
            "(an import lacks the files uploaded into it; its volumes stay)",
            id=real,
            replace=True,
        )
    if is_redis_user(resource):
        return Action(
            urn,
            "import",
            f"pending create of {what}: there, imported; it gets a new password (the one it "
            "was made with was never recorded)",
            id=real,
        )
    return Action(urn, "import", f"pending create of {what}: there, imported as {real}", id=real)
