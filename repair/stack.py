"""The Pulumi CLI as the repair drives it, and the parts of an exported state it reads."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]
"""One resource of an exported state (``urn``, ``type``, ``id``, ``inputs``, ``provider`` ...)."""


class PulumiError(Exception):
    """A Pulumi command failed; its message is the command's own error output."""


@dataclass
class Stack:
    """One stack of the project in ``cwd``, driven through the CLI."""

    name: str
    cwd: Path = field(default_factory=Path.cwd)

    @property
    def project(self) -> str:
        return str(yaml.safe_load((self.cwd / "Pulumi.yaml").read_text())["name"])

    def run(self, *args: str, timeout: float = 3600) -> str:
        """A CLI command on the stack; its standard output, or PulumiError with its errors."""
        done = subprocess.run(
            ["pulumi", *args, "--stack", self.name, "--non-interactive"],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            # Never its standard output: a failed `export --show-secrets` may hold the state.
            raise PulumiError(done.stderr.strip() or f"pulumi {args[0]} failed")
        return done.stdout

    def stream(self, *args: str, timeout: float = 3600) -> int:
        """A CLI command whose output goes to the user as it comes, on the user's terminal where
        there is one (Pulumi asks there without --yes); its exit code."""
        return subprocess.run(
            ["pulumi", *args, "--stack", self.name], cwd=self.cwd, timeout=timeout, check=False
        ).returncode

    def backend_url(self) -> str:
        # whoami knows no --stack: run it bare.
        done = subprocess.run(
            ["pulumi", "whoami", "--verbose", "--json", "--non-interactive"],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise PulumiError(done.stderr.strip())
        return str(json.loads(done.stdout)["url"])

    def export(self, *, show_secrets: bool = False) -> Deployment:
        """The stack's state. With ``show_secrets`` the values are decrypted: kept in memory
        only, to log in where the state says its servers are."""
        args = ["stack", "export", *(["--show-secrets"] if show_secrets else [])]
        return Deployment(json.loads(self.run(*args)))


@dataclass
class Deployment:
    """An exported state (``pulumi stack export``)."""

    raw: dict[str, Any]

    @property
    def body(self) -> dict[str, Any]:
        return dict(self.raw.get("deployment") or {})

    @property
    def resources(self) -> list[Resource]:
        return list(self.body.get("resources") or [])

    @property
    def pending(self) -> list[dict[str, Any]]:
        """The pending operations: ``{"resource": {...}, "type": "creating" | ...}``."""
        return list(self.body.get("pending_operations") or [])

    def by_urn(self, urn: str) -> Resource | None:
        return next((r for r in self.resources if r.get("urn") == urn), None)

    def provider_of(self, resource: Resource) -> Resource | None:
        """The provider resource a resource's ``provider`` reference (``URN::ID``) names."""
        reference = str(resource.get("provider") or "")
        return self.by_urn(reference.rsplit("::", 1)[0]) if reference else None


def plain(value: Any) -> Any:
    """A value of a ``--show-secrets`` export with its secret wrapper taken off."""
    if isinstance(value, dict) and "plaintext" in value:
        return json.loads(value["plaintext"])
    return value
