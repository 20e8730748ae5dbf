"""What every settings section shares: the program's constants, the error a user gets, and the
parser that builds a section from its structured config value, checking each field's type."""

import re
import types
import typing
from dataclasses import fields
from typing import Any, TypeVar

import pulumi

PROJECT_NAME = "db-server"

ADMIN_ROLE = "dbadmin"
"""The role that owns the server. It is the image's superuser and manages every project."""

POSTGRES_PORT = 5432
"""The port PostgreSQL listens on inside its container and on the Docker network."""

REDIS_PORT = 6379
"""The port Redis listens on inside its container and on the Docker network."""

PASSWORD_SPECIALS = "-_.~!#%^*+="
"""Special characters in generated passwords: safe in shells and config files, and some of them
need URL-encoding, which the URLs do."""

MAX_REDIS_DATABASES = 4096
"""Most numbered Redis databases a stack may ask for; each costs the server a little memory."""

MIN_ADMIN_PASSWORD_LENGTH = 16
"""Shortest ``admin_password`` accepted from config; the generated one has 40 characters."""


class InvalidInputError(pulumi.RunError, ValueError):
    """Bad settings or a bad project list, found before any resource is registered.

    A ``RunError`` so Pulumi prints the message alone instead of a stack trace.
    """

    def __init__(self, heading: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join([heading, *(f"  - {p}" for p in problems)]))


CONTAINER = "container"
"""Service mode: the stack runs the server in a container of its own, on a volume of its own."""

EXTERNAL = "external"
"""Service mode: an existing server or a managed service; the stack manages only the projects'
roles, databases and users on it, and creates no container, volume or network for it."""

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


_Section = TypeVar("_Section")

DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
"""What Docker takes as a container, volume or network name."""


def sibling_name(name: str, suffix: str, replacement: str) -> str:
    """``name`` with ``suffix`` replaced, or with ``replacement`` appended where it has none."""
    return name.removesuffix(suffix) + replacement


def parse_section(
    config: pulumi.Config, key: str, cls: type[_Section], problems: list[str]
) -> _Section:
    """Build one section from its structured config value, checking each field's type."""
    default = cls()
    try:
        raw = config.get_object(key)
    except pulumi.ConfigTypeError:
        problems.append(f"{PROJECT_NAME}:{key}: must be an object")
        return default
    if raw is None:
        return default
    if not isinstance(raw, dict):
        problems.append(f"{PROJECT_NAME}:{key}: must be an object, got {raw!r}")
        return default

    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for unknown in sorted(set(raw) - known):
        problems.append(
            f"{PROJECT_NAME}:{key}.{unknown}: unknown setting (known: {', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {}
    for name in known & set(raw):
        value = raw[name]
        if _has_type(value, hints[name]):
            values[name] = value
        else:
            problems.append(
                f"{PROJECT_NAME}:{key}.{name}: must be {_describe(hints[name])}, got {value!r}"
            )
    return cls(**values)


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a config value (parsed JSON) matches a field's annotation."""
    if isinstance(hint, types.UnionType):
        return any(_has_type(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        # JSON has no separate integer type, and True is an int to Python: reject both.
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    raise TypeError(f"no config check for {hint!r}")


def _describe(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is dict:
        return "an object of strings"
    return {bool: "a boolean", int: "an integer", str: "a string"}[hint]
