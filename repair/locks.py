"""The stack's update locks, and whether the process that holds one is still there.

A ``file://`` backend keeps one lock file per running update (``.pulumi/locks/.../<stack>/
<id>.json``, written by the CLI: its pid, user, host and start time). A killed ``pulumi up``
leaves its file behind, and every later command stops on it. Such a lock is stale only when it
was taken on this host by this user and its process is gone (or the pid now belongs to
something that is not Pulumi): then its file, and only that file, is removed, which is what
``pulumi cancel`` does on a ``file://`` backend. A lock from another host or user, or whose
process runs, is never touched.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote


@dataclass(frozen=True)
class Lock:
    """One lock file of the stack."""

    path: Path
    pid: int
    user: str
    host: str
    since: str

    def holder(self) -> str:
        return f"pid {self.pid} of {self.user}@{self.host}, since {self.since}"


def backend_folder(url: str) -> Path | None:
    """The folder of a ``file://`` backend URL (``~`` is the home folder), else None."""
    if not url.startswith("file://"):
        return None
    return Path(unquote(url[len("file://") :].split("?", 1)[0])).expanduser()


def stack_locks(folder: Path, project: str, stack: str) -> list[Lock]:
    """The lock files of ``stack`` in a ``file://`` backend folder (project-scoped and legacy
    layouts both)."""
    locks_dir = folder / ".pulumi" / "locks"
    candidates = [
        *locks_dir.glob(f"*/{project}/{stack}/*.json"),
        *locks_dir.glob(f"{stack}/*.json"),
    ]
    found = []
    for path in sorted(set(candidates)):
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            # Half-written or unreadable: say so rather than guess whose it is.
            content = {}
        found.append(
            Lock(
                path=path,
                pid=int(content.get("pid") or 0),
                user=str(content.get("username") or "?"),
                host=str(content.get("hostname") or "?"),
                since=str(content.get("timestamp") or "?"),
            )
        )
    return found


def _runs_pulumi(pid: int) -> bool:
    """Whether a process of that pid runs on this host and is a Pulumi CLI. In any doubt (a
    process this user may not see into) it counts as running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    program = cmdline.split(b"\0", 1)[0]
    return os.path.basename(program).startswith(b"pulumi")


def is_stale(lock: Lock) -> bool:
    """Taken on this host, by this user, by a process that is gone. Anything else counts as
    held: another user's process may be hidden from this one (``hidepid``), and a deploy in a
    container has pids of its own."""
    if lock.host != socket.gethostname() or lock.pid <= 0 or lock.user != getpass.getuser():
        return False
    return not _runs_pulumi(lock.pid)
