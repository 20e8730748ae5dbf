"""Settings a stack cannot keep its promises with: connection limits that overflow the server,
and config keys the program never reads. Each is refused before anything is registered."""

import re
from typing import Any

import pytest

import projects
from projects import Project
from tests.conftest import ROOT
from tests.unit.conftest import ProgramRunner
from tests.unit.test_bad_input import _fails_before_registering
from validation import SCRATCH_PREFIX


def _projects(monkeypatch: pytest.MonkeyPatch, count: int, limit: int) -> None:
    monkeypatch.setattr(
        projects,
        "PROJECTS",
        [
            Project(f"app{i:02}", user=f"app{i:02}_user", connection_limit=limit)
            for i in range(count)
        ],
    )


def test_connection_limits_that_overflow_max_connections_are_refused_with_the_numbers(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 33 projects at the default 20: 660 connections on a server of 100.
    _projects(monkeypatch, 33, 20)

    error = _fails_before_registering(run_program)

    assert str(error).startswith("Connections do not fit the server:\n  - ")
    (problem,) = error.problems
    assert problem.startswith(
        "db-server:postgres.parameters.max_connections: 100, of which 3 are reserved for the "
        "admin (superuser_reserved_connections + reserved_connections), leaves 97 for the "
        "logins' connection_limit, which add up to 660 over 33 logins (largest: "
        "project 'app00' 20, project 'app01' 20, project 'app02' 20). "
        "Raise max_connections to at least 663, or lower connection_limit in projects.py."
    )


def test_the_pooler_and_exporters_logins_count_against_the_budget(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prod: max_connections 200, pooler and exporters on (5 each): 19 * 10 + 10 = 200 > 197.
    _projects(monkeypatch, 19, 10)
    with pytest.raises(Exception, match="add up to 200 over 21 logins") as raised:
        run_program("prod")
    assert "Raise max_connections to at least 203" in str(raised.value)
    assert run_program.registered == []

    # One connection less fits exactly: 18 * 10 + 1 * 7 + 10 = 197.
    monkeypatch.setattr(
        projects,
        "PROJECTS",
        [*projects.PROJECTS[:18], Project("app18", user="app18_user", connection_limit=7)],
    )
    assert "app18_url" in run_program("prod").outputs


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"max_connections": "many"},
            "db-server:postgres.parameters.max_connections: must be an integer, got 'many'",
        ),
        (
            {"superuser_reserved_connections": "3x"},
            "db-server:postgres.parameters.superuser_reserved_connections: must be an integer, "
            "got '3x'",
        ),
    ],
)
def test_a_connection_setting_that_is_no_number_is_named(
    run_program: ProgramRunner, parameters: dict[str, str], message: str
) -> None:
    error = _fails_before_registering(
        run_program, {"db-server:postgres": {"parameters": parameters}}
    )

    assert error.problems == [message]


def test_reserved_connections_shrink_what_the_projects_may_take(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _projects(monkeypatch, 4, 20)  # 80 of 97: fits by default
    assert "app03_url" in run_program("dev").outputs

    parameters = {"max_connections": "100", "reserved_connections": "20"}
    error = _fails_before_registering(
        run_program, {"db-server:postgres": {"parameters": parameters}}
    )
    assert "of which 23 are reserved for the admin" in error.problems[0]
    assert "leaves 77 for the logins' connection_limit, which add up to 80" in error.problems[0]


KNOWN = (
    "(known: admin_password, archive, archive_passphrase, backup, metrics, network, pooler, "
    "postgres, protection, redis, redis_admin_password, s3_access_key_id, s3_secret_access_key)"
)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "db-server:backups",
            {"enabled": True},
            f"db-server:backups: unknown setting {KNOWN}; did you mean db-server:backup?",
        ),
        (
            "db-server:protections",
            {"protect": True},
            f"db-server:protections: unknown setting {KNOWN}; did you mean db-server:protection?",
        ),
        (
            "db-server:grafana",
            {"enabled": True},
            f"db-server:grafana: unknown setting {KNOWN}",
        ),
    ],
)
def test_an_unknown_top_level_key_is_refused_with_the_known_ones_listed(
    run_program: ProgramRunner, key: str, value: Any, message: str
) -> None:
    error = _fails_before_registering(run_program, {key: value})

    assert error.problems == [message]


def test_other_namespaces_keys_are_not_the_programs_to_judge(run_program: ProgramRunner) -> None:
    deployment = run_program("dev", {"docker:host": "unix:///var/run/docker.sock"})
    assert "crypto_ai_agent_url" in deployment.outputs


def test_no_project_may_take_the_scripts_scratch_names(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"{SCRATCH_PREFIX}1764633600_0123456789abcdef"
    monkeypatch.setattr(projects, "PROJECTS", [Project(name, user="sneaky")])

    error = _fails_before_registering(run_program)

    assert error.problems == [
        f"project {name!r}: field 'name': {name!r} is reserved by PostgreSQL or this server"
    ]
    # The scripts name their scratch databases with the same prefix.
    common = (ROOT / "scripts" / "lib" / "common.sh").read_text()
    assert re.search(rf'^SCRATCH_PREFIX="{SCRATCH_PREFIX}"$', common, re.MULTILINE)
