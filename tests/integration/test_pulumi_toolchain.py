"""End-to-end check of the Pulumi toolchain built by .ci/lib/pulumi-toolchain.sh.

A throwaway Python Pulumi project in a temp dir (its own venv with the pinned Python SDK from
PyPI, a local file:// backend, a passphrase secrets provider) creates a ``pulumi.dynamic``
resource and exports a secret. It is driven through ``pulumi.automation`` with a local program,
so the CLI starts the real language host (``pulumi-language-python``) and the dynamic-provider
plugin (``pulumi-resource-pulumi-python``) found on PATH: the same path ``pulumi up`` takes.

Put the toolchain on PATH first, e.g.::

    env_lines="$(bash .ci/lib/pulumi-toolchain.sh --core-only)" && eval "$env_lines"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

PULUMI_VERSION = "3.259.0"
STACK = "toolchain-check"
SECRET = "not-in-state-in-clear-7f3a"

pytestmark = pytest.mark.integration

PROJECT_YAML = """\
name: toolchain-check
description: throwaway project that exercises the Pulumi toolchain
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
"""

PROGRAM = """\
import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider


class EchoProvider(ResourceProvider):
    def create(self, props):
        word = props["word"]
        return CreateResult(id_="echo-" + word, outs={**props, "length": len(word)})


class Echo(Resource):
    length: pulumi.Output[int]

    def __init__(self, name, word, opts=None):
        super().__init__(EchoProvider(), name, {"word": word, "length": None}, opts)


config = pulumi.Config()
echo = Echo("echo", "hello")
pulumi.export("echo_id", echo.id)
pulumi.export("echo_length", echo.length)
pulumi.export("token", config.require_secret("token"))
pulumi.export("derived", pulumi.Output.secret("derived-secret"))
"""


@pytest.fixture(scope="module")
def pulumi_exe(pulumi_cli: str) -> str:
    """The CLI on PATH: a skip outside CI, a failure in CI (CI=true) when it is missing."""
    return pulumi_cli


@pytest.fixture(scope="module")
def project(pulumi_exe: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pulumi-toolchain")
    proj = root / "project"
    proj.mkdir()
    (proj / "Pulumi.yaml").write_text(PROJECT_YAML)
    (proj / "__main__.py").write_text(PROGRAM)
    (proj / "requirements.txt").write_text(f"pulumi=={PULUMI_VERSION}\n")
    venv.EnvBuilder(with_pip=True).create(proj / "venv")
    subprocess.run(
        [
            str(proj / "venv" / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(proj / "requirements.txt"),
        ],
        check=True,
        timeout=300,
    )
    (root / "state").mkdir()
    return proj


def test_pulumi_up_output_destroy_with_dynamic_resource_and_secrets(
    pulumi_exe: str, project: Path
) -> None:
    from pulumi import automation as auto

    version = subprocess.run(
        [pulumi_exe, "version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert version == f"v{PULUMI_VERSION}", f"{pulumi_exe} is {version}"

    state_dir = project.parent / "state"
    env = {
        "PULUMI_BACKEND_URL": f"file://{state_dir}",
        "PULUMI_CONFIG_PASSPHRASE": "toolchain-test-passphrase",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    stack = auto.create_or_select_stack(
        stack_name=STACK,
        work_dir=str(project),
        opts=auto.LocalWorkspaceOptions(
            env_vars=env,
            pulumi_command=auto.PulumiCommand(root=str(Path(pulumi_exe).parent.parent)),
        ),
    )
    try:
        stack.set_config("token", auto.ConfigValue(value=SECRET, secret=True))

        up = stack.up(on_output=lambda line: print(line, file=sys.stderr))
        assert up.summary.result == "succeeded"
        assert up.summary.resource_changes == {"create": 2}
        assert up.outputs["echo_id"].value == "echo-hello"
        assert up.outputs["echo_length"].value == 5
        assert up.outputs["token"].secret

        # `pulumi stack output --show-secrets`, straight from the CLI.
        shown = subprocess.run(
            [pulumi_exe, "stack", "output", "--show-secrets", "--json", "--stack", STACK],
            cwd=project,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
        )
        outputs = json.loads(shown.stdout)
        assert outputs == {
            "echo_id": "echo-hello",
            "echo_length": 5,
            "token": SECRET,
            "derived": "derived-secret",
        }

        # Without --show-secrets the CLI masks them, and the state holds them encrypted only.
        masked = subprocess.run(
            [pulumi_exe, "stack", "output", "token", "--stack", STACK],
            cwd=project,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
        )
        assert SECRET not in masked.stdout
        state_text = "".join(p.read_text() for p in state_dir.rglob("*.json"))
        assert "echo-hello" in state_text
        assert SECRET not in state_text
        assert "derived-secret" not in state_text

        destroy = stack.destroy(on_output=lambda line: print(line, file=sys.stderr))
        assert destroy.summary.result == "succeeded"
        assert destroy.summary.resource_changes == {"delete": 2}
    finally:
        stack.workspace.remove_stack(STACK, force=True)
