"""Stack settings, parsed once from ``pulumi.Config`` into typed, validated objects.

Each section is one structured config key (``db-server:network``, ``db-server:postgres``,
``db-server:redis``, ...), with a module of its own here. A stack may set any subset of a
section's fields; the rest take the defaults, which ``Pulumi.yaml`` declares too. Unknown fields
and keys are errors, so a typo never silently falls back to a default.
"""

import difflib
from dataclasses import dataclass, replace

import pulumi

from settings.base import (
    ADMIN_ROLE,
    CONTAINER,
    EXTERNAL,
    MAX_REDIS_DATABASES,
    MIN_ADMIN_PASSWORD_LENGTH,
    PASSWORD_SPECIALS,
    POSTGRES_PORT,
    PROJECT_NAME,
    REDIS_PORT,
    SSL_MODES,
    InvalidInputError,
    parse_section,
    sibling_name,
)
from settings.extras import (
    BackupSettings,
    MetricsSettings,
    NetworkSettings,
    PoolerSettings,
    ProtectionSettings,
    check_extras,
    check_network_and_backup,
)
from settings.postgres import PostgresSettings
from settings.redis import RedisSettings, redis_size_bytes
from settings.service import Endpoint, check_pair

__all__ = [
    "ADMIN_ROLE",
    "CONTAINER",
    "EXTERNAL",
    "MAX_REDIS_DATABASES",
    "PASSWORD_SPECIALS",
    "POSTGRES_PORT",
    "PROJECT_NAME",
    "REDIS_PORT",
    "SSL_MODES",
    "BackupSettings",
    "Endpoint",
    "InvalidInputError",
    "MetricsSettings",
    "NetworkSettings",
    "PoolerSettings",
    "PostgresSettings",
    "ProtectionSettings",
    "RedisSettings",
    "Settings",
    "load_settings",
    "redis_size_bytes",
]


@dataclass(frozen=True)
class Settings:
    """Everything the stack's config says, validated."""

    network: NetworkSettings
    postgres: PostgresSettings
    redis: RedisSettings
    backup: BackupSettings
    pooler: PoolerSettings
    metrics: MetricsSettings
    protection: ProtectionSettings
    admin_password: pulumi.Output[str] | None
    """``db-server:admin_password`` when set (a secret): the PostgreSQL admin's. Otherwise a
    random password is made for the container; an external server needs it set."""

    redis_admin_password: pulumi.Output[str] | None
    """``db-server:redis_admin_password`` when set (a secret), likewise for Redis."""


_SECTIONS = ("network", "postgres", "redis", "backup", "pooler", "metrics", "protection")
_SECRETS = ("admin_password", "redis_admin_password")


def _unknown_keys() -> list[str]:
    """Every ``db-server:*`` key the stack sets that the program does not read: a typo for a
    real section (``db-server:backups``) must not leave a stack silently unprotected."""
    known = sorted((*_SECTIONS, *_SECRETS))
    given = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    problems = []
    for key in sorted(k for k in given if k.startswith(f"{PROJECT_NAME}:")):
        name = key.removeprefix(f"{PROJECT_NAME}:")
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {PROJECT_NAME}:{close[0]}?" if close else ""
        problems.append(f"{key}: unknown setting (known: {', '.join(known)}){hint}")
    return problems


def load_settings(config: pulumi.Config) -> Settings:
    """Read and validate every setting; raise ``InvalidInputError`` listing all problems."""
    problems: list[str] = _unknown_keys()
    network = parse_section(config, "network", NetworkSettings, problems)
    postgres = parse_section(config, "postgres", PostgresSettings, problems)
    redis = parse_section(config, "redis", RedisSettings, problems)
    backup = parse_section(config, "backup", BackupSettings, problems)
    pooler = parse_section(config, "pooler", PoolerSettings, problems)
    metrics = parse_section(config, "metrics", MetricsSettings, problems)
    protection = parse_section(config, "protection", ProtectionSettings, problems)
    backup = replace(
        backup,
        volume=backup.volume or sibling_name(postgres.volume, "_pgdata", "_backups"),
        container_name=backup.container_name
        or sibling_name(postgres.container_name, "-postgres", "-backup"),
    )
    pooler = replace(
        pooler,
        container_name=pooler.container_name
        or sibling_name(postgres.container_name, "-postgres", "-pgbouncer"),
    )
    if not problems:
        problems.extend(check_network_and_backup(network, postgres, redis, backup))
        problems.extend(postgres.problems())
        problems.extend(redis.problems())
        problems.extend(check_pair(postgres, redis))
        problems.extend(check_extras(postgres, redis, pooler, metrics))
    problems.extend(_check_secret("admin_password", external=postgres.external))
    problems.extend(
        _check_secret("redis_admin_password", external=redis.external, generated_only=True)
    )
    if problems:
        raise InvalidInputError(f"Invalid {PROJECT_NAME} stack settings:", problems)
    return Settings(
        network=network,
        postgres=postgres,
        redis=redis,
        backup=backup,
        pooler=pooler,
        metrics=metrics,
        protection=protection,
        admin_password=config.get_secret("admin_password"),
        redis_admin_password=config.get_secret("redis_admin_password"),
    )


def _check_secret(name: str, *, external: bool, generated_only: bool = False) -> list[str]:
    """An admin password from config must be a secret, or it sits in clear in the stack file.
    An external server's admin password cannot be made up: it must be given, as it is. A
    container's is generated where ``generated_only``, so that it is safe in its scripts."""
    key = f"{PROJECT_NAME}:{name}"
    value = pulumi.runtime.config.get_config(key)
    if value is None:
        if external:
            return [
                f"{key}: must be set for an external server: pulumi config set --secret {name} ..."
            ]
        return []
    if generated_only and not external:
        return [f"{key}: applies to an external server only; the container's is generated"]
    if not pulumi.runtime.config.is_config_secret(key):
        return [
            f"{key}: must be set as a secret (pulumi config set --secret {name} ...); "
            "it is in clear in the stack's config file now"
        ]
    if not external and len(value) < MIN_ADMIN_PASSWORD_LENGTH:
        return [f"{key}: must be at least {MIN_ADMIN_PASSWORD_LENGTH} characters long"]
    return []
