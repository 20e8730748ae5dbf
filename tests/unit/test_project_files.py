"""The files users and tools rely on say what the design promises."""

import dataclasses
import re
import runpy

import pytest
import yaml

from projects import Project
from settings import PostgresSettings, RedisSettings
from tests.conftest import ROOT
from tests.unit.conftest import ProgramRunner
from validation import validate_projects


def test_pulumi_yaml_runs_python_from_the_projects_venv_with_pip() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())

    assert project["name"] == "db-server"
    assert project["description"]
    assert project["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": "venv"},
    }
    for key in ("network", "postgres", "redis", "protection"):
        assert project["config"][key]["type"] == "object"
        assert project["config"][key]["description"]


def test_requirements_pin_the_sdks_to_the_plugins_ci_builds() -> None:
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )

    assert pins["pulumi"] == "3.259.0"
    assert pins["pulumi-docker"] == "5.1.0"
    assert pins["pulumi-postgresql"] == "3.18.0"
    assert pins["pulumi-random"] == "4.21.1"
    assert {"redis", "psycopg[binary]", "pytest"} <= set(pins)


def test_projects_py_lists_the_design_projects_and_runs() -> None:
    listed = _real_projects()
    assert [(p.name, p.user, p.redis_db) for p in listed[:3]] == [
        ("crypto_ai_agent", "crypto", 3),
        ("project2_db", "project2_user", 1),
        ("project3_db", "project3_user", 2),
    ]
    validate_projects(listed, RedisSettings().databases)  # whatever a user added must pass too
    with pytest.raises(dataclasses.FrozenInstanceError):
        listed[0].redis_db = 9  # type: ignore[misc]
    assert Project("x", user="y", redis_db=3).connection_limit == 20


def _real_projects() -> list[Project]:
    """PROJECTS as projects.py defines it (the unit tests' fixture replaces the module's)."""
    return list(runpy.run_path(str(ROOT / "projects.py"))["PROJECTS"])


def test_default_images_are_the_official_ones_pinned_to_a_major_version() -> None:
    postgres, redis = PostgresSettings(), RedisSettings()

    assert postgres.image == "postgres:17"
    assert postgres.data_path == "/var/lib/postgresql/data"  # where the 17 image keeps PGDATA
    assert redis.image == "redis:8"
    assert redis.data_path == "/data"


def test_the_admin_password_is_random_and_long(run_program: ProgramRunner) -> None:
    deployment = run_program("prod")

    password = deployment.named("db-server-admin-password").inputs
    assert password["length"] >= 32
    assert password["special"] is True


def test_ci_runs_the_test_command_the_readme_shows() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_run = (ROOT / ".ci" / "run").read_text()

    assert "make test" in readme
    assert re.search(r"^make test$", ci_run, re.MULTILINE)
    assert re.search(r"^make lint$", ci_run, re.MULTILINE)


def test_pull_requests_get_a_preview_diff_comment() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pulumi.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True

    assert "pull_request" in triggers
    (preview,) = [
        step
        for step in workflow["jobs"]["preview"]["steps"]
        if step.get("uses", "").startswith("pulumi/actions@")
    ]
    job = workflow["jobs"]["preview"]
    # Pull-request code runs on the Docker host with the passphrase: never from forks, only
    # after approval, and never refreshing the live server.
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    assert job["environment"] == "db-server-preview"
    assert preview["with"]["refresh"] is False
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["comment-on-pr"] is True
    assert preview["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert set(preview["env"]) == {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_BACKEND_URL"}
    unit_steps = [step.get("run", "") for step in workflow["jobs"]["unit"]["steps"]]
    assert "make unit" in unit_steps
