"""A real ``pulumi up`` killed the way an SSH drop or a closed laptop kills it, at a point the
engine's own events name, and what a stack must look like once ``make repair`` is done.

The kill is SIGKILL to the CLI's whole process group (the CLI, the language host, the provider
plugins), sent the moment the object a step is making shows up in the real world: after the
engine recorded the step as pending, before the provider's answer reached the state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.harness import E2EStack, connect, docker_leftovers, redis_client

KILL_TIMEOUT_S = 600.0
"""An up that never reaches its kill point fails the test after this long."""
THERE_TIMEOUT_S = 120.0
"""How long the object may take to show up once its step began."""

Step = dict[str, Any]
"""The metadata of one engine step (``op``, ``urn``, ``type``), from a resourcePreEvent."""


@dataclass
class Killed:
    """Where a killed up was when it died."""

    step: Step
    seconds: float
    log: str
    pending: list[dict[str, Any]] = field(default_factory=list)
    """The pending operations the kill left in the state."""


def _steps(events: Path, offset: int) -> tuple[list[Step], int]:
    """The steps begun in the event log since ``offset``; the offset after the last full line."""
    if not events.exists():
        return [], offset
    with events.open("rb") as log:
        log.seek(offset)
        data = log.read()
    end = data.rfind(b"\n") + 1
    steps = []
    for line in data[:end].splitlines():
        pre = json.loads(line).get("resourcePreEvent")
        if pre and pre.get("metadata"):
            steps.append(pre["metadata"])
    return steps, offset + end


def up_killed_at(
    stack: E2EStack,
    pulumi_cli: str,
    step: Callable[[Step], bool],
    there: Callable[[Step], bool],
) -> Killed:
    """Runs ``pulumi up`` on the stack and SIGKILLs it once a step ``step`` accepts has begun
    and ``there`` sees its object in the real world."""
    events = stack.workdir / f"killed-up-{time.monotonic_ns()}.events"
    output = stack.workdir / f"{events.name}.log"
    start = time.monotonic()
    with output.open("w") as out:
        up = subprocess.Popen(
            [
                *(pulumi_cli, "up", "--yes", "--skip-preview", "--non-interactive"),
                *("--event-log", str(events), "--stack", stack.stack_name),
            ],
            cwd=stack.workdir,
            # --event-log is one of the CLI's debug flags (the Automation API's event stream).
            env={**os.environ, **stack.stack.workspace.env_vars, "PULUMI_DEBUG_COMMANDS": "true"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        hit = _wait_for_step(up, events, output, step, start)
        deadline = time.monotonic() + THERE_TIMEOUT_S
        while not there(hit):
            _still_running(up, output, "its object showed up")
            assert time.monotonic() < deadline, f"{hit['urn']} never showed up"
            time.sleep(0.002)
    finally:
        with_kill(up)
    killed = Killed(hit, time.monotonic() - start, output.read_text())
    state = json.loads(stack.pulumi("stack", "export"))["deployment"]
    killed.pending = list(state.get("pending_operations") or [])
    return killed


def _wait_for_step(
    up: subprocess.Popen[bytes],
    events: Path,
    output: Path,
    step: Callable[[Step], bool],
    start: float,
) -> Step:
    offset = 0
    while True:
        steps, offset = _steps(events, offset)
        for begun in steps:
            if step(begun):
                return begun
        _still_running(up, output, "the step began")
        assert time.monotonic() - start < KILL_TIMEOUT_S, "the step never began"
        time.sleep(0.01)


def _still_running(up: subprocess.Popen[bytes], output: Path | None, before: str) -> None:
    if up.poll() is not None:
        log = output.read_text() if output else ""
        raise AssertionError(f"pulumi up ended (exit {up.returncode}) before {before}\n{log}")


def with_kill(up: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the CLI's process group, as a dropped session's end of everything."""
    if up.poll() is None:
        os.killpg(up.pid, signal.SIGKILL)
    up.wait(timeout=60)


class DockerWatch:
    """Sees containers being created as the engine reports it (Docker's event stream), with
    no polling delay: the kill comes a few milliseconds after Docker made the container."""

    def __init__(self) -> None:
        import docker

        self._client = docker.from_env()
        self.created: set[str] = set()
        self._stream = self._client.events(decode=True, filters={"event": "create"})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                name = (event.get("Actor") or {}).get("Attributes", {}).get("name")
                if name:
                    self.created.add(str(name))
        except Exception:  # closed by close(): the stream ends with an error
            return

    def close(self) -> None:
        self._stream.close()
        self._client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def unknown_objects(stack: E2EStack, kept: frozenset[str] = frozenset()) -> list[str]:
    """What exists in Docker, PostgreSQL or Redis under the stack and its state does not hold
    (and what the state holds that does not exist); ``kept`` are names retained on purpose."""
    state = json.loads(stack.state_file())["checkpoint"]["latest"]
    names: dict[str, set[str]] = {}
    for resource in state.get("resources") or []:
        kind = str(resource.get("type")).split("/")[-1].split(":")[0]
        inputs = resource.get("inputs") or {}
        name = inputs.get("name")
        if {"username", "rules"} <= set(inputs):  # a RedisUser (a dynamic resource)
            kind, name = "redis user", inputs["username"]
        if isinstance(name, str):
            names.setdefault(kind, set()).add(name)
    found: list[str] = []

    def compare(kind: str, real: set[str]) -> None:
        known = names.get(kind, set())
        found.extend(f"{kind} {n}: not in the state" for n in sorted(real - known - kept))
        found.extend(f"{kind} {n}: in the state, not there" for n in sorted(known - real))

    docker = docker_leftovers(stack.names.prefix)
    for kind in ("container", "volume", "network"):
        compare(kind, {n for k, n in docker if k == kind})
    outputs = stack.outputs()
    with connect(outputs["admin_host_url"]) as admin:
        roles = admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND NOT rolsuper"
        ).fetchall()
        databases = admin.execute(
            "SELECT datname FROM pg_database WHERE datname NOT IN "
            "('postgres', 'template0', 'template1')"
        ).fetchall()
    compare("role", {r for (r,) in roles})
    compare("database", {d for (d,) in databases})
    with redis_client(outputs["redis_admin_host_url"]) as admin:
        admin_user = _text(admin.acl_whoami())
        users = {_text(u) for u in admin.acl_users()} - {"default", admin_user}
    compare("redis user", users)
    return found
