"""The real program under the real Pulumi engine, where that needs no provider plugin.

The docker, postgresql and random plugins cannot be built on this machine (docs/toolchain.md),
so a full `pulumi up` cannot run here. Bad input can: the program stops before it registers any
resource, so the engine never loads a plugin. These tests copy the project as a user has it,
break ``projects.py`` or the stack settings the way a user might, and run ``up`` and ``preview``
through the Automation API against a local file backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.conftest import copy_project

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "db-server")


@pytest.fixture
def stack(project: Path, pulumi_cli: str) -> Iterator[auto.Stack]:
    state = project.parent / "state"
    state.mkdir()
    created = auto.create_stack(
        "dev",
        work_dir=str(project),
        opts=auto.LocalWorkspaceOptions(
            env_vars={
                "PULUMI_BACKEND_URL": f"file://{state}",
                "PULUMI_CONFIG_PASSPHRASE": "bad-input-test",
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            },
            pulumi_command=auto.PulumiCommand(root=str(Path(pulumi_cli).parent.parent)),
        ),
    )
    yield created
    created.workspace.remove_stack("dev", force=True)


def _fails(run: object) -> str:
    """Runs ``up``/``preview`` expecting failure; returns everything the user saw."""
    printed: list[str] = []
    with pytest.raises(auto.CommandError) as raised:
        run(on_output=printed.append, color="never")  # type: ignore[operator]
    return "\n".join(printed) + str(raised.value)


def test_a_duplicate_redis_index_fails_up_with_the_programs_message(
    project: Path, stack: auto.Stack
) -> None:
    projects_py = project / "projects.py"
    projects_py.write_text(
        projects_py.read_text().replace(
            'Project("project3_db", user="project3_user", redis_db=2)',
            'Project("project3_db", user="project3_user", redis_db=1)',
        )
    )

    seen = _fails(stack.up)

    assert "Invalid project list in projects.py:" in seen
    assert (
        "project 'project3_db': field 'redis_db': 1 is already used by project 'project2_db'"
        in seen
    )
    assert "Traceback" not in seen  # the message alone, not a stack trace
    # Nothing was created: the state holds the stack itself and no resource of the program.
    resources = (stack.export_stack().deployment or {}).get("resources") or []
    assert [r["type"] for r in resources] in ([], ["pulumi:pulumi:Stack"])


def test_bad_stack_settings_fail_preview_naming_the_key_and_field(stack: auto.Stack) -> None:
    # `pulumi config set --path db-server:postgres.host_port 70000`
    stack.set_config("db-server:postgres.host_port", auto.ConfigValue("70000"), path=True)

    seen = _fails(stack.preview)

    assert "Invalid db-server stack settings:" in seen
    assert "db-server:postgres.host_port: must be in 1-65535, got 70000" in seen
    assert "Traceback" not in seen
