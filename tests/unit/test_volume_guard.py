"""No stack takes over a Docker volume it did not create (components/volume_guard.py)."""

from typing import Any

import docker
import pulumi
import pytest
from docker.errors import NotFound

from components.volume_guard import VolumeExistsError, refuse_existing_volume
from tests.unit.conftest import ProgramRunner

VOLUME = "docker:index/volume:Volume"


class _FakeVolumes:
    def __init__(self, existing: set[str]) -> None:
        self.existing = existing

    def get(self, name: str) -> object:
        if name not in self.existing:
            raise NotFound(f"no such volume: {name}")
        return object()


class _FakeDocker:
    def __init__(self, existing: set[str]) -> None:
        self.volumes = _FakeVolumes(existing)

    def close(self) -> None:
        pass


def _hook_args(inputs: dict[str, Any]) -> pulumi.ResourceHookArgs:
    return pulumi.ResourceHookArgs(
        urn="urn", id="", name="db-server-pgdata", type=VOLUME, new_inputs=inputs
    )


@pytest.fixture
def docker_volumes(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    existing: set[str] = set()
    monkeypatch.setattr(docker, "from_env", lambda: _FakeDocker(existing))
    return existing


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_every_volume_is_checked_before_it_is_created(
    run_program: ProgramRunner, stack_name: str
) -> None:
    deployment = run_program(stack_name)

    volumes = deployment.of_type(VOLUME)
    # PostgreSQL's data and socket, Redis's data; prod's backups, pgBackRest's repository, its
    # drills and the metrics files have one too.
    assert len(volumes) == {"dev": 3, "prod": 7}[stack_name]
    for volume in volumes:
        (hook,) = volume.before_create
        registered = run_program.callbacks.hooks[hook]
        assert registered.callback is refuse_existing_volume
        assert registered.opts is not None
        assert registered.opts.on_dry_run  # so `pulumi preview` already says so


def test_adopting_existing_volumes_is_a_deliberate_setting(run_program: ProgramRunner) -> None:
    deployment = run_program("prod", {"db-server:protection": {"adopt_existing_volumes": True}})

    assert [v.before_create for v in deployment.of_type(VOLUME)] == [()] * 7


def test_an_existing_volume_of_the_name_stops_the_create(docker_volumes: set[str]) -> None:
    docker_volumes.add("db_server_pgdata")

    with pytest.raises(VolumeExistsError) as raised:
        refuse_existing_volume(_hook_args({"name": "db_server_pgdata"}))

    message = str(raised.value)
    assert "Docker volume 'db_server_pgdata' already exists" in message
    assert "db-server:protection.adopt_existing_volumes" in message


def test_a_free_name_or_one_not_known_yet_passes(docker_volumes: set[str]) -> None:
    docker_volumes.add("someone_elses")

    refuse_existing_volume(_hook_args({"name": "db_server_pgdata"}))
    refuse_existing_volume(_hook_args({}))  # an unknown name in a preview
