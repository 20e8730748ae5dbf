"""Redis ACL rules: what a project's Redis user may do, and the server's own users.

A project's user may run data commands on its own database index only, on any key name, so apps
keep the keys they have and connect with the same index-per-project URL. What makes that a
boundary rather than a namespace:

- ``SELECT`` is allowed for the project's own index only (a first-argument rule, ``+select|N``),
  and so are the commands that reach across indexes: ``MOVE``, ``COPY`` (its ``DB`` option),
  ``SWAPDB`` and ``MIGRATE`` are denied.
- Every connection starts in database 0 before its client selects an index, and ACLs cannot
  restrict a database. So index 0 belongs to no project (validation refuses it): whatever a
  client writes there before it selects is nobody's data.
- Pub/Sub channels are global, not per index: a project publishes and subscribes only to
  channels named ``<project>:...``.
- Server-wide and dangerous commands are denied: ``FLUSHALL``, ``CONFIG``, ``ACL``, ``SHUTDOWN``,
  ``DEBUG``, ``MONITOR``, ``SAVE``/``BGSAVE``, ``REPLICAOF``, ``MODULE``, ``KEYS``, ``SLOWLOG``,
  ``CLIENT LIST``/``KILL``, ``PUBSUB`` (lists everyone's channels), ``FUNCTION`` (server-wide
  libraries), ``SCRIPT FLUSH``/``KILL``. Scripts run under the caller's ACL (Redis 7+), so a script
  cannot do what its caller may not.
- Allowed on purpose: ``FLUSHDB`` (its own index: what cache libraries' ``clear()`` sends),
  ``INFO`` (server statistics, no data; client libraries ask for it), ``SCAN`` on its own index.
"""

from __future__ import annotations

import hashlib

_DATA_CATEGORIES = (
    "@read",
    "@write",
    "@keyspace",
    "@string",
    "@hash",
    "@list",
    "@set",
    "@sortedset",
    "@stream",
    "@bitmap",
    "@hyperloglog",
    "@geo",
    "@transaction",
    "@pubsub",
    "@scripting",
    "@connection",
)
_DENIED = (
    "move",
    "copy",
    "swapdb",
    "migrate",
    "select",
    "client",
    "function",
    "script|flush",
    "script|kill",
    "pubsub",
    "memory",
)
_ALLOWED_AGAIN = (
    "flushdb",
    "info",
    "memory|usage",
    "client|id",
    "client|info",
    "client|getname",
    "client|setname",
    "client|setinfo",
    "client|reply",
    "client|tracking",
    "client|trackinginfo",
    "client|caching",
    "client|getredir",
)


def password_hash(password: str) -> str:
    """The form Redis stores a password in (``#<sha256 hex>``): the password itself never
    reaches the server, its ACL file or its logs."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def project_rules(project: str, index: int) -> list[str]:
    """ACL rules (without the password) of a project's user on database ``index``."""
    return [
        "resetkeys",
        "~*",
        "resetchannels",
        f"&{project}:*",
        "-@all",
        *(f"+{category}" for category in _DATA_CATEGORIES),
        "-@admin",
        "-@dangerous",
        *(f"-{command}" for command in _DENIED),
        *(f"+{command}" for command in _ALLOWED_AGAIN),
        f"+select|{index}",
    ]


def server_acl(admin_user: str, admin_password: str) -> str:
    """The ACL file lines the server starts with: no ``default`` user, and the admin.

    Project users are kept in the ACL file on the data volume, written by ``ACL SAVE``."""
    return (
        "user default off resetpass resetkeys resetchannels -@all\n"
        f"user {admin_user} on {password_hash(admin_password)} ~* &* +@all\n"
    )
