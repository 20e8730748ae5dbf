"""The state with its pending operations resolved, as ``pulumi stack import`` takes it back.

Pulumi's own ``refresh --import-pending-creates`` only relabels a pending create as a pending
import, which the refresh then drops like any other pending operation: the object stays out of
the state, and the next ``up`` fails on its name. So the import is done the way Pulumi's
maintainers document for pending creates (export, edit, import): the resource goes into the
state with the real id looked up, its recorded inputs standing in for its outputs until the
refresh that follows reads the object itself. Everything here works on the export as written,
secrets still encrypted.
"""

from __future__ import annotations

import copy
from typing import Any

from repair.plan import Action


class EditError(Exception):
    """The state is not as a killed deploy leaves it; nothing is changed."""


def resolved(raw: dict[str, Any], actions: list[Action]) -> dict[str, Any]:
    """A copy of an exported state with every pending operation taken off, and the imported
    resources added with their real ids."""
    state = copy.deepcopy(raw)
    body = state["deployment"]
    by_urn = {action.urn: action for action in actions}
    resources: list[dict[str, Any]] = list(body.get("resources") or [])
    for operation in body.get("pending_operations") or []:
        resource = operation["resource"]
        action = by_urn.get(resource["urn"])
        if action is None:
            raise EditError(f"no decision for the pending operation on {resource['urn']}")
        if action.do != "import":
            continue
        # A replacement under way leaves the old resource marked as pending replacement: its
        # object was deleted before the create began, so the import takes its place.
        same = [r for r in resources if r.get("urn") == resource["urn"]]
        if any(not (r.get("pendingReplacement") or r.get("delete")) for r in same):
            raise EditError(f"{resource['urn']} is in the state already and pending a create")
        outputs = dict(resource.get("outputs") or resource.get("inputs") or {})
        imported = {**resource, "id": action.id, "outputs": outputs}
        if action.replace:
            # Tainted: replaced by the next `up` that succeeds, even if this repair's is cut short.
            imported["taint"] = True
        # In the old one's place, so what depends on it still comes after it; else last.
        place = next((i for i, r in enumerate(resources) if r.get("urn") == resource["urn"]), None)
        resources = [r for r in resources if r.get("urn") != resource["urn"]]
        resources.insert(len(resources) if place is None else place, imported)
    body["resources"] = resources
    body["pending_operations"] = []
    return state
