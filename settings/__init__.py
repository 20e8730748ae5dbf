"""Stack settings, parsed once from ``pulumi.Config`` into typed, validated objects.

Each section is one structured config key (``db-server:network``, ``db-server:postgres``,
``db-server:redis``, ...), with a module of its own here. A stack may set any subset of a
section's fields; the rest take the defaults, which ``Pulumi.yaml`` declares too. Unknown fields
and keys are errors, so a typo never silently falls back to a default.
"""

import difflib
from dataclasses import dataclass, replace

import pulumi

from settings.archive import ArchiveSettings
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
    "ArchiveSecrets",
    "ArchiveSettings",
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
class ArchiveSecrets:
    """The continuous backup's secrets, from config (``pulumi config set --secret ...``)."""

    s3_access_key_id: pulumi.Output[str] | None
    """``db-server:s3_access_key_id``: the object store's access key."""

    s3_secret_access_key: pulumi.Output[str] | None
    """``db-server:s3_secret_access_key``."""

    passphrase: pulumi.Output[str] | None
    """``db-server:archive_passphrase``: what the repositories are encrypted with. Without it
    no backup can be read: keep it where the host cannot lose it."""


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
    archive: ArchiveSettings
    archive_secrets: ArchiveSecrets
    admin_password: pulumi.Output[str] | None
    """``db-server:admin_password`` when set (a secret): the PostgreSQL admin's. Otherwise a
    random password is made for the container; an external server needs it set."""

    redis_admin_password: pulumi.Output[str] | None
    """``db-server:redis_admin_password`` when set (a secret), likewise for Redis."""


_SECTIONS = (
    "network",
    "postgres",
    "redis",
    "backup",
    "pooler",
    "metrics",
    "protection",
    "archive",
)
_SECRETS = (
    "admin_password",
    "redis_admin_password",
    "s3_access_key_id",
    "s3_secret_access_key",
    "archive_passphrase",
)
MIN_PASSPHRASE_LENGTH = 20
"""Shortest ``archive_passphrase``: it is all that stands between a bucket and the data."""


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
    archive = parse_section(config, "archive", ArchiveSettings, problems)
    archive = replace(
        archive,
        s3_path=archive.s3_path or f"/{PROJECT_NAME}/{pulumi.get_stack()}",
        volume=archive.volume or sibling_name(postgres.volume, "_pgdata", "_pgbackrest"),
        container_name=archive.container_name
        or sibling_name(postgres.container_name, "-postgres", "-pgbackrest"),
    )
    backup = replace(
        backup,
        volume=backup.volume or sibling_name(postgres.volume, "_pgdata", "_backups"),
        container_name=backup.container_name
        or sibling_name(postgres.container_name, "-postgres", "-backup"),
    )
    metrics = replace(
        metrics,
        textfile_volume=metrics.textfile_volume
        or sibling_name(postgres.volume, "_pgdata", "_metrics"),
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
        problems.extend(archive.problems())
        problems.extend(_check_archive_placement(archive, postgres, redis, backup))
    problems.extend(_check_secret("admin_password", external=postgres.external))
    problems.extend(
        _check_secret("redis_admin_password", external=redis.external, generated_only=True)
    )
    s3 = archive.enabled and archive.s3
    problems.extend(_required_secret("s3_access_key_id", s3, "with db-server:archive.s3_endpoint"))
    problems.extend(
        _required_secret("s3_secret_access_key", s3, "with db-server:archive.s3_endpoint")
    )
    problems.extend(
        _required_secret(
            "archive_passphrase",
            archive.enabled and archive.encrypts,
            "to encrypt the archive's repositories",
            min_length=MIN_PASSPHRASE_LENGTH,
        )
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
        archive=archive,
        archive_secrets=ArchiveSecrets(
            s3_access_key_id=config.get_secret("s3_access_key_id"),
            s3_secret_access_key=config.get_secret("s3_secret_access_key"),
            passphrase=config.get_secret("archive_passphrase"),
        ),
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


def _required_secret(name: str, needed: bool, why: str, *, min_length: int = 1) -> list[str]:
    """A secret the settings call for (``needed``): it must be set, as a secret, and long
    enough; one set where nothing uses it is a mistake too."""
    key = f"{PROJECT_NAME}:{name}"
    value = pulumi.runtime.config.get_config(key)
    if value is None:
        return (
            [f"{key}: must be set {why}: pulumi config set --secret {name} ..."] if needed else []
        )
    if not needed:
        return [f"{key}: is set, but nothing uses it (it applies {why})"]
    if not pulumi.runtime.config.is_config_secret(key):
        return [
            f"{key}: must be set as a secret (pulumi config set --secret {name} ...); "
            "it is in clear in the stack's config file now"
        ]
    if len(value) < min_length:
        return [f"{key}: must be at least {min_length} characters long"]
    return []


def _check_archive_placement(
    archive: ArchiveSettings,
    postgres: PostgresSettings,
    redis: RedisSettings,
    backup: BackupSettings,
) -> list[str]:
    """The archive runs beside a PostgreSQL container, and its names are its own."""
    if not archive.enabled:
        return []
    prefix = f"{PROJECT_NAME}:archive"
    if postgres.external:
        return [
            f"{prefix}.enabled: continuous backup runs beside PostgreSQL in mode {CONTAINER} "
            "only; an external server has its provider's (point-in-time recovery of RDS, "
            "Cloud SQL, ...)"
        ]
    problems = []
    taken = {
        "db-server:postgres.volume": postgres.volume,
        "db-server:postgres socket volume": postgres.socket_volume,
        "db-server:redis.volume": redis.volume,
        "db-server:backup.volume": backup.volume,
    }
    for what, name in taken.items():
        if archive.volume == name:
            problems.append(f"{prefix}.volume: {name!r} is already {what}")
    for what, name in {
        "db-server:postgres.container_name": postgres.container_name,
        "db-server:redis.container_name": redis.container_name,
        "db-server:backup.container_name": backup.container_name,
    }.items():
        if archive.container_name == name:
            problems.append(f"{prefix}.container_name: {name!r} is already {what}")
    return problems
