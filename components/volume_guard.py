"""A stack never takes over a Docker volume it did not create.

Docker answers "create volume X" with the existing volume when one has that name, so a stack
configured with another stack's volume names would silently mount, back up, and on destroy
delete that stack's data. Before the stack creates a volume, in preview and in `up`, this checks
with the Docker engine (the one ``DOCKER_HOST`` names, as the docker provider does) that no
volume has the name yet. It never runs for a volume the stack already holds.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker


class VolumeExistsError(Exception):
    """A volume of the name the stack was about to create is already there."""


def refuse_existing_volume(args: pulumi.ResourceHookArgs) -> None:
    """Fails the create of a volume whose name Docker already knows."""
    # Imported here: only a volume's create needs it, and the program starts faster without.
    import docker
    from docker.errors import NotFound

    name = (args.new_inputs or {}).get("name")
    if not isinstance(name, str) or not name:  # unknown in preview: nothing to check yet
        return
    client = docker.from_env()
    try:
        client.volumes.get(name)
    except NotFound:
        return
    finally:
        client.close()
    raise VolumeExistsError(
        f"Docker volume {name!r} already exists, and this stack did not create it: it may hold "
        "another stack's data, so it is not taken over. Give this stack its own volume names, "
        "or, to take over this volume on purpose (a lost Pulumi state, a server set up by hand), "
        "set db-server:protection.adopt_existing_volumes to true for that `pulumi up`."
    )


def volume_guard(name: str, adopt_existing: bool) -> pulumi.ResourceHookBinding | None:
    """Hooks for a component's volumes; ``name`` makes the hook's name unique in the stack."""
    if adopt_existing:
        return None
    hook = pulumi.ResourceHook(
        f"{name}-refuse-existing-volume",
        refuse_existing_volume,
        opts=pulumi.ResourceHookOptions(on_dry_run=True),
    )
    return pulumi.ResourceHookBinding(before_create=[hook])


def guarded_volume(
    name: str,
    volume_name: str | None,
    parent: pulumi.Resource,
    *,
    protect: bool,
    retain_on_delete: bool,
    adopt_existing: bool,
) -> docker.Volume:
    """A component's volume ``<name>-volume`` holding data: guarded, and protected and retained
    as the stack says."""
    return docker.Volume(
        f"{name}-volume",
        name=volume_name,
        opts=pulumi.ResourceOptions(
            parent=parent,
            protect=protect,
            retain_on_delete=retain_on_delete,
            hooks=volume_guard(name, adopt_existing),
        ),
    )
