"""Dynamic providers: what the program manages that no provider package does."""

from collections.abc import Sequence
from typing import Any

from pulumi.dynamic import DiffResult


def diff_fields(
    olds: dict[str, Any], news: dict[str, Any], compared: Sequence[str], replace_on: Sequence[str]
) -> DiffResult:
    """A diff over ``compared`` fields only: the pickled provider code (``__provider``) is left
    out, so a new version of the program changes nothing that is not different. A change to a
    ``replace_on`` field replaces the resource, the old one first."""
    changed = [key for key in compared if olds.get(key) != news.get(key)]
    return DiffResult(
        changes=bool(changed),
        replaces=[key for key in changed if key in replace_on],
        delete_before_replace=True,
    )
