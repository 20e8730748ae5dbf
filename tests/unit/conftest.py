"""Runs ``__main__.py`` under Pulumi mocks, fresh per test, with a stack's real settings.

The stack's config is what the Pulumi CLI would give the program: ``Pulumi.yaml``'s defaults
overlaid by ``Pulumi.<stack>.yaml``, each structured value set as a JSON string.
"""

import json
import runpy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import mocks, rpc, settings, stack
from pulumi.runtime.sync_await import _sync_await

import projects
from providers.server_ready import _ready as server_ready_outputs
from tests.conftest import ROOT

MOCK_PASSWORD = "pw#%^+=~!*.-_x"
"""What every mocked RandomPassword returns: characters a URL must encode included."""

MOCK_SALT_SEED_B64 = "c2VlZHNlZWRzZWVkc2VlZHNlZWRzZWVkc2VlZHNlZWQ="
"""What every mocked RandomBytes returns as ``base64`` (32 bytes)."""

MOCK_REDIS_PASSWORD = "RedisUserPassword0123456789abcdefghijklmn"
"""What every mocked RedisUser's create makes as its password."""


@dataclass(frozen=True)
class Registration:
    """One resource the program registered, with the options that matter to data safety."""

    type: str
    name: str
    inputs: dict[str, Any]
    parent: str
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    dependencies: tuple[str, ...]
    additional_secret_outputs: tuple[str, ...]
    provider: str
    deleted_with: str
    before_create: tuple[str, ...]
    """Names of the resource hooks the engine calls before it creates the resource."""
    secret_inputs: frozenset[str]
    """Top-level inputs that are, or contain, a secret."""


@dataclass(frozen=True)
class Deployment:
    """What one run of the program registered and exported."""

    resources: list[Registration]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registration:
        (match,) = [r for r in self.resources if r.name == name]
        return match


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = MOCK_PASSWORD
        if args.typ == "random:index/randomBytes:RandomBytes":
            outputs["base64"] = MOCK_SALT_SEED_B64
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = f"sha256:{args.name}"
        # What the dynamic providers' creates return.
        if args.name.endswith("-network-ready"):
            outputs["ready_name"] = args.inputs["name"]
        elif args.name.endswith("-ready"):
            outputs = server_ready_outputs(outputs, [])
        if args.name.endswith("-redis-user"):  # a RedisUser's id is its name
            return args.inputs["username"], outputs | {"password": MOCK_REDIS_PASSWORD}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


class _RecordingCallbacks:
    """Stands in for the engine's callback server: keeps the resource hooks registered."""

    def __init__(self) -> None:
        self.hooks: dict[str, pulumi.ResourceHook] = {}

    def register_resource_hook(self, hook: pulumi.ResourceHook) -> None:
        # As the engine does: a hook's name is registered once per stack.
        if hook.name in self.hooks:
            raise ValueError(f"resource hook already registered for name {hook.name!r}")
        self.hooks[hook.name] = hook


class _RecordingMonitor(mocks.MockMonitor):
    """Keeps each registration request so tests can see resource options too."""

    def __init__(self, mocks_: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks_)
        self.requests: list[Any] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        if request.type != "pulumi:pulumi:Stack":
            self.requests.append(request)
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


def stack_config(stack_name: str) -> dict[str, Any]:
    """The config a stack's program sees: project defaults overlaid by the stack file."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    config = {
        f"db-server:{key}": declared["default"]
        for key, declared in project.get("config", {}).items()
        if "default" in declared
    }
    stack_file = ROOT / f"Pulumi.{stack_name}.yaml"
    config.update(yaml.safe_load(stack_file.read_text()).get("config") or {})
    return config


def _config_strings(config: dict[str, Any]) -> dict[str, str]:
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()
    }


def _registration(request: Any) -> Registration:
    return Registration(
        type=request.type,
        name=request.name,
        inputs=rpc.deserialize_properties_unwrap_secrets(request.object)[0],
        parent=request.parent,
        protect=request.protect,
        retain_on_delete=request.retainOnDelete,
        delete_before_replace=request.deleteBeforeReplace,
        dependencies=tuple(request.dependencies),
        additional_secret_outputs=tuple(request.additionalSecretOutputs),
        provider=request.provider,
        deleted_with=request.deletedWith,
        before_create=tuple(request.hooks.before_create),
        secret_inputs=frozenset(
            key for key, value in request.object.fields.items() if _contains_secret(value)
        ),
    )


def _contains_secret(value: Any) -> bool:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        fields = value.struct_value.fields
        signature = fields.get(rpc._special_sig_key)
        if signature is not None and signature.string_value == rpc._special_secret_sig:
            return True
        return any(_contains_secret(v) for v in fields.values())
    if kind == "list_value":
        return any(_contains_secret(v) for v in value.list_value.values)
    return False


class ProgramRunner:
    """Runs ``__main__.py`` under fresh mocks; remembers what the last run registered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.registered: list[Registration] = []

    def __call__(
        self,
        stack_name: str = "dev",
        overrides: dict[str, Any] | None = None,
        secret_keys: tuple[str, ...] = (),
    ) -> Deployment:
        """Run the program for a stack; ``overrides`` replace whole config keys, and
        ``secret_keys`` are set as secrets (``pulumi config set --secret``)."""
        config = stack_config(stack_name)
        config.update(overrides or {})
        monitor = _RecordingMonitor(_Mocks())
        pulumi.runtime.set_mocks(
            _Mocks(), project="db-server", stack=stack_name, preview=False, monitor=monitor
        )
        pulumi.runtime.set_all_config(_config_strings(config), list(secret_keys))
        self.callbacks = _RecordingCallbacks()
        settings.SETTINGS.callbacks = self.callbacks

        exports: dict[str, Any] = {}
        self.monkeypatch.setattr(pulumi, "export", exports.__setitem__)

        def program() -> None:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

        try:
            _sync_await(stack.run_pulumi_func(program))
        finally:
            self.registered = [_registration(r) for r in monitor.requests]

        outputs = {key: pulumi.Output.from_input(value) for key, value in exports.items()}
        return Deployment(
            resources=self.registered,
            outputs={key: _sync_await(out.future()) for key, out in outputs.items()},
            secret_outputs=frozenset(
                key for key, out in outputs.items() if _sync_await(out.is_secret())
            ),
        )


DESIGN_PROJECTS = [
    projects.Project("crypto_ai_agent", user="crypto", redis_db=3),
    projects.Project("project2_db", user="project2_user", redis_db=1),
    projects.Project("project3_db", user="project3_user", redis_db=2),
]
"""The design's three projects: what the unit tests run with, whatever projects.py holds."""


@pytest.fixture(autouse=True)
def design_projects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests state their expectations for a known list, so adding a project breaks none."""
    monkeypatch.setattr(projects, "PROJECTS", list(DESIGN_PROJECTS))


@pytest.fixture
def run_program(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProgramRunner]:
    """A fresh ``ProgramRunner`` per test, importing the program from the project root."""
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(ROOT)
    yield ProgramRunner(monkeypatch)
    settings.reset_options()
