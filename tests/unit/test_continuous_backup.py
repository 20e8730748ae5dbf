"""Continuous backup as the program asks for it: the derived image, archive_command, the
repositories' configuration, the pgBackRest container, and the settings' checks."""

from pathlib import Path
from typing import Any

import pytest

from components.pgbackrest import render_config
from settings import ArchiveSettings
from tests.conftest import ROOT
from tests.unit.conftest import ProgramRunner
from tests.unit.test_bad_input import _fails_before_registering

CONTAINER = "docker:index/container:Container"
SECRETS = {
    "db-server:s3_access_key_id": "AKIAEXAMPLEKEY",
    "db-server:s3_secret_access_key": "s3-secret-example-0123456789",
    "db-server:archive_passphrase": "a long and random passphrase",
}
S3: dict[str, Any] = {
    "enabled": True,
    "s3_endpoint": "objects.example.net:9000",
    "s3_bucket": "db-backups",
    "s3_uri_style": "path",
}


def _archive(run_program: ProgramRunner, archive: dict[str, Any], stack: str = "dev") -> Any:
    return run_program(stack, {"db-server:archive": archive, **SECRETS}, secret_keys=tuple(SECRETS))


def _envs(container: Any) -> dict[str, str]:
    return dict(env.split("=", 1) for env in container.inputs["envs"])


def _mounts(container: Any) -> set[tuple[str, str, bool]]:
    return {
        (v["volumeName"], v["containerPath"], v.get("readOnly", False))
        for v in container.inputs["volumes"]
    }


def test_the_server_archives_its_wal_with_pgbackrest_from_a_derived_image(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program("dev", {"db-server:archive": {"enabled": True}})

    image = deployment.named("db-server-archive-image")
    assert image.inputs["name"].startswith("db-server/postgres-archive:")
    assert image.inputs["build"]["context"] == str(ROOT / "images" / "postgres-archive")
    # Built from the stack's own image, and again whenever that image is pulled anew.
    assert image.inputs["build"]["buildArgs"] == {"BASE_IMAGE": "postgres:17"}
    assert image.inputs["triggers"] == {"base_image": "sha256:db-server-postgres-image"}
    server = deployment.named("db-server-postgres")
    assert server.inputs["image"] == "sha256:db-server-archive-image"
    command = server.inputs["command"]
    assert "archive_mode=on" in command
    assert "archive_command=pgbackrest --stanza=db archive-push %p" in command
    assert "archive_timeout=60s" in command
    assert _envs(server)["PGBACKREST_CONFIG"] == "/etc/db-server/pgbackrest.conf"
    assert ("db_server_dev_pgbackrest", "/var/lib/pgbackrest", False) in _mounts(server)
    # An init as PID 1 reaps archive-push's background processes, not the postmaster.
    assert server.inputs["init"] is True
    repository = deployment.named("db-server-archive-volume")
    assert repository.inputs["name"] == "db_server_dev_pgbackrest"


def test_without_the_archive_the_server_runs_its_own_image_as_before(
    run_program: ProgramRunner,
) -> None:
    deployment = run_program("dev")

    server = deployment.named("db-server-postgres")
    assert server.inputs["image"] == "sha256:db-server-postgres-image"
    assert not any("archive" in part for part in server.inputs["command"])
    assert "init" not in server.inputs  # the container as before: no replacement on upgrade
    assert not [r for r in deployment.resources if "archive" in r.name or "pgbackrest" in r.name]


def test_the_pgbackrest_container_reads_the_data_and_never_writes_it(
    run_program: ProgramRunner,
) -> None:
    deployment = _archive(run_program, S3)

    sidecar = deployment.named("db-server-pgbackrest-container")
    assert sidecar.inputs["name"] == "db-server-dev-pgbackrest"
    assert sidecar.inputs["image"] == "sha256:db-server-archive-image"
    assert sidecar.delete_before_replace
    assert _mounts(sidecar) == {
        ("db_server_dev_pgdata", "/var/lib/postgresql/data", True),
        ("db_server_dev_pgsocket", "/var/run/postgresql", False),
        ("db_server_dev_pgbackrest", "/var/lib/pgbackrest", False),
        ("db_server_dev_pgbackrest_drill", "/var/lib/db-server-drill", False),
        ("db_server_dev_redisdata", "/redis-data", True),
        ("db_server_dev_metrics", "/var/lib/db-server-metrics", False),
    }
    env = _envs(sidecar)
    assert (env["ARCHIVE_REPOS"], env["ARCHIVE_OFFSITE_REPO"]) == ("1 2", "2")
    assert env["ARCHIVE_BACKUP_INTERVAL_SECONDS"] == "86400"
    # No secret in what `docker inspect` shows; they are in the uploads, kept secret.
    visible = " ".join(sidecar.inputs["envs"] + sidecar.inputs["entrypoints"])
    for value in SECRETS.values():
        assert value not in visible
    assert "uploads" in sidecar.secret_inputs
    assert "uploads" in sidecar.additional_secret_outputs
    # It starts once the repositories took the cluster's WAL.
    ready = deployment.named("db-server-pgbackrest-check")
    assert ready.inputs["container_name"] == "db-server-dev-postgres"
    assert "config" in ready.secret_inputs


def test_the_configuration_holds_both_repositories_and_encrypts_the_object_store_only() -> None:
    settings = ArchiveSettings(**S3, s3_path="/db-server/dev", s3_ca_file=None)

    text = render_config(settings, "/var/lib/postgresql/data", "KEY", "SECRET", "PASSPHRASE")

    lines = set(text.splitlines())
    assert {
        "repo1-type=posix",
        "repo1-path=/var/lib/pgbackrest",
        "repo1-retention-full=2",
        "repo2-type=s3",
        "repo2-s3-endpoint=objects.example.net",
        "repo2-storage-port=9000",
        "repo2-s3-bucket=db-backups",
        "repo2-path=/db-server/dev",
        "repo2-s3-uri-style=path",
        "repo2-s3-key=KEY",
        "repo2-s3-key-secret=SECRET",
        "repo2-cipher-type=aes-256-cbc",
        "repo2-cipher-pass=PASSPHRASE",
        "archive-async=y",
        "archive-push-queue-max=4096MiB",
        "pg1-path=/var/lib/postgresql/data",
        "pg1-user=dbadmin",
    } <= lines
    assert "repo1-cipher-type=aes-256-cbc" not in lines  # on-host, unencrypted by default


def test_an_object_store_alone_is_repository_1() -> None:
    settings = ArchiveSettings(**S3, local=False, s3_path="/p")

    text = render_config(settings, "/data", "K", "S", "P")

    assert "repo1-type=s3" in text.splitlines()
    assert "repo2-" not in text


def test_a_line_break_in_a_secret_never_reaches_the_configuration() -> None:
    with pytest.raises(ValueError, match="repo2-s3-key-secret may not contain a line break"):
        render_config(ArchiveSettings(**S3, s3_path="/p"), "/d", "K", "S\nrepo1-path=/x", "P")


def test_the_s3_path_is_the_stacks_own_by_default(run_program: ProgramRunner) -> None:
    for stack in ("dev", "prod"):
        deployment = _archive(run_program, S3, stack)
        server = deployment.named("db-server-postgres")
        config = next(
            u["content"]
            for u in server.inputs["uploads"]
            if u["file"] == "/etc/db-server/pgbackrest.conf"
        )
        assert f"repo2-path=/db-server/{stack}" in config.splitlines()


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (
            {"enabled": True, "local": False},
            "db-server:archive: no repository: keep local true, or set s3_endpoint and s3_bucket",
        ),
        (
            {"enabled": True, "s3_endpoint": "https://s3.example.net", "s3_bucket": "b-1"},
            "db-server:archive.s3_endpoint: must be host or host:port (TLS is always used), "
            "got 'https://s3.example.net'",
        ),
        (
            {"enabled": True, "s3_endpoint": "s3.example.net"},
            "db-server:archive.s3_bucket: must be set with s3_endpoint",
        ),
        (
            {**S3, "s3_uri_style": "virtual"},
            "db-server:archive.s3_uri_style: must be host or path, got 'virtual'",
        ),
        (
            {**S3, "s3_ca_file": "no/such/ca.pem"},
            "db-server:archive.s3_ca_file: no such file: 'no/such/ca.pem'",
        ),
        (
            {"enabled": True, "archive_timeout_seconds": 1},
            "db-server:archive.archive_timeout_seconds: must be at least 10, got 1",
        ),
        (
            {"enabled": True, "full_interval_seconds": 3600, "backup_interval_seconds": 7200},
            "db-server:archive.full_interval_seconds: 3600 is shorter than "
            "backup_interval_seconds 7200",
        ),
        (
            {"enabled": True, "volume": "db_server_dev_pgdata"},
            "db-server:archive.volume: 'db_server_dev_pgdata' is already db-server:postgres.volume",
        ),
    ],
)
def test_bad_archive_settings_are_named(
    run_program: ProgramRunner, archive: dict[str, Any], message: str
) -> None:
    error = _fails_before_registering(run_program, {"db-server:archive": archive, **SECRETS})

    assert message in error.problems, error.problems


def test_an_object_store_needs_its_keys_and_the_passphrase_as_secrets(
    run_program: ProgramRunner,
) -> None:
    error = _fails_before_registering(run_program, {"db-server:archive": S3})

    assert error.problems == [
        "db-server:s3_access_key_id: must be set with db-server:archive.s3_endpoint: "
        "pulumi config set --secret s3_access_key_id ...",
        "db-server:s3_secret_access_key: must be set with db-server:archive.s3_endpoint: "
        "pulumi config set --secret s3_secret_access_key ...",
        "db-server:archive_passphrase: must be set to encrypt the archive's repositories: "
        "pulumi config set --secret archive_passphrase ...",
    ]

    with pytest.raises(Exception, match="archive_passphrase: must be set as a secret") as raised:
        run_program(
            "dev",
            {"db-server:archive": S3, **SECRETS},
            secret_keys=("db-server:s3_access_key_id", "db-server:s3_secret_access_key"),
        )
    assert "in clear in the stack's config file" in str(raised.value)


def test_a_short_passphrase_is_refused(run_program: ProgramRunner) -> None:
    secrets = {**SECRETS, "db-server:archive_passphrase": "short"}
    with pytest.raises(Exception, match="archive_passphrase: must be at least 20 characters"):
        run_program("dev", {"db-server:archive": S3, **secrets}, secret_keys=tuple(secrets))


def test_continuous_backup_needs_the_stacks_own_postgresql(
    run_program: ProgramRunner, tmp_path: Path
) -> None:
    external = {"mode": "external", "admin_host": "db.internal", "sslmode": "require"}
    error = _fails_before_registering(
        run_program,
        {
            "db-server:archive": {"enabled": True},
            "db-server:postgres": external,
            "db-server:admin_password": "x" * 20,
        },
    )

    assert any(
        p.startswith("db-server:archive.enabled: continuous backup runs beside PostgreSQL in mode")
        for p in error.problems
    ), error.problems
