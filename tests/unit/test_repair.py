"""`make repair` after an interrupted deploy: what it decides for each pending operation, the
state it writes back, and which locks it lifts (repair/). The real runs are in
tests/e2e/test_interrupted_deploy.py."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from repair import locks
from repair.edit import EditError, resolved
from repair.plan import Action, decide
from repair.stack import Resource

STACK = "urn:pulumi:dev::db-server::"
REDIS = f"{STACK}db-server:index:DatabaseServer$docker:index/container:Container::db-server-redis"
VOLUME = f"{STACK}db-server:index:DatabaseServer$docker:index/volume:Volume::db-server-pg-volume"
ROLE = f"{STACK}db-server:index:ProjectDatabase$postgresql:index/role:Role::shop-role"
USER = f"{STACK}db-server:index:ProjectDatabase$pulumi-python:dynamic:Resource::shop-redis-user"
PASSWORD = f"{STACK}db-server:index:ProjectDatabase$random:index/randomPassword:RandomPassword::pw"
MYSTERY = f"{STACK}aws:s3/bucket:Bucket::b"


def _res(urn: str, **inputs: Any) -> Resource:
    kind = urn.split("::")[-2].rsplit("$", 1)[-1]
    return {"urn": urn, "type": kind, "custom": True, "inputs": inputs}


def _creating(resource: Resource) -> dict[str, Any]:
    return {"resource": resource, "type": "creating"}


class _World:
    """Stands in for the Docker engine and the servers: knows which objects exist."""

    def __init__(self, **ids: str) -> None:
        self.ids = ids
        self.asked: list[str] = []

    def real_id(self, resource: Resource) -> str | None:
        self.asked.append(resource["urn"])
        return self.ids.get(resource["urn"].rsplit("::", 1)[-1])


def test_a_container_that_is_there_is_imported_and_replaced_by_the_same_repair() -> None:
    world = _World(**{"db-server-redis": "c0ffee" * 10})

    action = decide(_creating(_res(REDIS, name="db-server-dev-redis")), world)

    assert (action.do, action.id, action.replace) == ("import", "c0ffee" * 10, True)
    assert "replaced by this repair" in action.line


def test_what_is_not_there_is_cleared_only_after_it_was_looked_up() -> None:
    world = _World()

    user = _res(USER, username="shop_user", rules=[], on_delete="delete")
    actions = [decide(_creating(r), world) for r in (_res(VOLUME, name="v"), _res(ROLE), user)]

    assert [a.do for a in actions] == ["clear", "clear", "clear"]
    assert world.asked == [VOLUME, ROLE, USER]


def test_a_role_and_a_volume_that_are_there_are_imported_under_their_names() -> None:
    world = _World(**{"shop-role": "shop_user", "db-server-pg-volume": "db_server_pgdata"})

    role = decide(_creating(_res(ROLE, name="shop_user")), world)
    volume = decide(_creating(_res(VOLUME, name="db_server_pgdata")), world)

    assert (role.do, role.id, role.replace) == ("import", "shop_user", False)
    assert (volume.do, volume.id) == ("import", "db_server_pgdata")


def test_a_redis_user_that_is_there_is_imported_and_told_it_gets_a_new_password() -> None:
    user = _res(USER, username="shop_user", rules=["~shop:*"], on_delete="delete")

    action = decide(_creating(user), _World(**{"shop-redis-user": "shop_user"}))

    assert (action.do, action.id) == ("import", "shop_user")
    assert "new password" in action.line


def test_what_holds_nothing_is_cleared_without_a_lookup() -> None:
    world = _World()

    action = decide(_creating(_res(PASSWORD, length=32)), world)

    assert action.do == "clear"
    assert world.asked == []


def test_an_unknown_kind_of_pending_create_stops_the_repair() -> None:
    with pytest.raises(ValueError, match="no way to look it up"):
        decide(_creating(_res(MYSTERY)), _World())


def test_pending_deletes_and_updates_are_left_to_the_refresh() -> None:
    world = _World()

    deleting = decide({"resource": _res(ROLE), "type": "deleting"}, world)
    updating = decide({"resource": _res(REDIS), "type": "updating"}, world)

    assert (deleting.do, updating.do) == ("refresh", "refresh")
    assert "pending delete of Role shop-role" in deleting.line


def _state(resources: list[Resource], pending: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": 3, "deployment": {"resources": resources, "pending_operations": pending}}


def test_the_state_gets_the_imports_with_their_ids_and_no_pending_operation() -> None:
    stack = {"urn": f"{STACK}pulumi:pulumi:Stack::db-server-dev", "type": "pulumi:pulumi:Stack"}
    role = _res(ROLE, name="shop_user", password={"ciphertext": "v1:abc"})
    pending = [_creating(role), _creating(_res(PASSWORD)), {"resource": stack, "type": "updating"}]
    actions = [
        Action(ROLE, "import", "", id="shop_user"),
        Action(PASSWORD, "clear", ""),
        Action(stack["urn"], "refresh", ""),
    ]

    state = resolved(_state([stack], pending), actions)

    body = state["deployment"]
    assert body["pending_operations"] == []
    assert [r["urn"] for r in body["resources"]] == [stack["urn"], ROLE]
    imported = body["resources"][1]
    assert imported["id"] == "shop_user"
    # Still encrypted: the edit never sees a secret.
    assert imported["outputs"]["password"] == {"ciphertext": "v1:abc"}


def test_an_import_takes_the_place_of_the_old_one_a_replacement_deleted() -> None:
    # What depends on the container must still come after it in the state.
    old = {**_res(REDIS, name="r"), "id": "old", "pendingReplacement": True}
    ready = {**_res(USER), "id": "ready", "dependencies": [REDIS]}
    state = resolved(
        _state([old, ready], [_creating(_res(REDIS, name="r"))]),
        [Action(REDIS, "import", "", id="new", replace=True)],
    )

    resources = state["deployment"]["resources"]
    assert [(r["urn"], r["id"]) for r in resources] == [(REDIS, "new"), (USER, "ready")]
    assert resources[0]["taint"] is True  # replaced by the next up that succeeds


def test_a_pending_create_of_what_the_state_holds_already_is_refused() -> None:
    live = {**_res(REDIS, name="r"), "id": "live"}

    with pytest.raises(EditError, match="in the state already"):
        resolved(_state([live], [_creating(_res(REDIS))]), [Action(REDIS, "import", "", id="n")])


def _lock(tmp_path: Path, pid: int, host: str, user: str | None = None) -> locks.Lock:
    folder = tmp_path / ".pulumi" / "locks" / "organization" / "db-server" / "dev"
    folder.mkdir(parents=True, exist_ok=True)
    content = {"pid": pid, "username": user or getpass.getuser(), "hostname": host}
    content["timestamp"] = "2026-12-03T10:00Z"
    (folder / f"{pid}.json").write_text(json.dumps(content))
    (found,) = [lock for lock in locks.stack_locks(tmp_path, "db-server", "dev") if lock.pid == pid]
    return found


def test_a_lock_whose_process_is_gone_is_stale(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    assert locks.is_stale(_lock(tmp_path, gone.pid, socket.gethostname()))


def test_a_lock_of_a_running_pulumi_or_of_another_host_is_held(tmp_path: Path) -> None:
    # A process that runs under the name `pulumi`, as the CLI does.
    runner = subprocess.Popen(["bash", "-c", "exec -a pulumi sleep 30"])
    cmdline = Path(f"/proc/{runner.pid}/cmdline")
    deadline = time.monotonic() + 10
    while not cmdline.read_bytes().startswith(b"pulumi") and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not locks.is_stale(_lock(tmp_path, runner.pid, socket.gethostname()))
    finally:
        runner.kill()
        runner.wait()
    assert not locks.is_stale(_lock(tmp_path, 1, "another-host"))


def test_another_users_lock_is_held_even_when_its_process_cannot_be_seen(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    assert not locks.is_stale(_lock(tmp_path, gone.pid, socket.gethostname(), user="other"))


def test_a_pid_taken_over_by_another_program_is_stale(tmp_path: Path) -> None:
    # This test's own process is not a Pulumi CLI: a lock naming it was left by one that is gone.
    assert locks.is_stale(_lock(tmp_path, os.getpid(), socket.gethostname()))


def test_a_file_backend_url_gives_its_folder() -> None:
    assert locks.backend_folder("file:///var/lib/pulumi") == Path("/var/lib/pulumi")
    assert locks.backend_folder("file://~") == Path.home()
    assert locks.backend_folder("s3://bucket/prefix") is None
