"""The container of a service beside the servers (the pooler, the exporters): no data of its
own, its port published on 127.0.0.1 only, on the servers' network."""

from collections.abc import Sequence

import pulumi
import pulumi_docker as docker


def service_container(
    resource_name: str,
    parent: pulumi.Resource,
    *,
    image_resource_name: str,
    image: str,
    container_name: str,
    port: int,
    host_port: int,
    network_name: pulumi.Input[str],
    uploads: Sequence[docker.ContainerUploadArgs],
    envs: Sequence[pulumi.Input[str]] | None = None,
    aliases: Sequence[str] | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> docker.Container:
    """``image_resource_name`` (the image, kept locally) and ``resource_name`` (the container),
    restarted unless stopped, its logs rotated. Uploads carry its passwords, so they are secret,
    and a replacement removes the old container first: its name and port are taken until then."""
    image_id = docker.RemoteImage(
        image_resource_name,
        name=image,
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=parent),
    ).image_id
    return docker.Container(
        resource_name,
        name=container_name,
        image=image_id,
        envs=list(envs) if envs is not None else None,
        uploads=list(uploads),
        restart="unless-stopped",
        must_run=True,
        ports=[
            docker.ContainerPortArgs(
                internal=port, external=host_port, ip="127.0.0.1", protocol="tcp"
            )
        ],
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(
                name=network_name, aliases=list(aliases) if aliases is not None else None
            )
        ],
        log_driver="json-file",
        log_opts={"max-size": "10m", "max-file": "5"},
        opts=pulumi.ResourceOptions(
            parent=parent,
            delete_before_replace=True,
            additional_secret_outputs=["uploads"],
            depends_on=list(depends_on),
        ),
    )
