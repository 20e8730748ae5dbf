"""Each project's Redis user: what its ACL allows and denies, and how it comes and goes."""

import hashlib
import socket
from typing import Any

import pytest
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

import projects
from components.redis_acl import password_hash, project_rules, server_acl
from projects import Project
from providers import redis_user
from providers.redis_user import _RedisUserProvider
from tests.unit.conftest import MOCK_PASSWORD, ProgramRunner

DYNAMIC = "pulumi-python:dynamic:Resource"


def _position(rules: list[str], rule: str) -> int:
    return rules.index(rule)


def test_a_project_may_select_only_its_own_index() -> None:
    rules = project_rules("shop", 7)

    # Rules apply left to right: SELECT is taken away, then allowed for index 7 alone.
    assert _position(rules, "-select") < _position(rules, "+select|7")
    assert [r for r in rules if "select" in r] == ["-select", "+select|7"]


@pytest.mark.parametrize(
    "denied",
    # Reaching across indexes, and the server-wide or dangerous commands.
    [
        *("move", "copy", "swapdb", "migrate", "client", "function", "pubsub", "memory"),
        *("script|flush", "script|kill"),
    ],
)
def test_commands_that_reach_other_projects_are_denied(denied: str) -> None:
    rules = project_rules("shop", 7)

    assert f"-{denied}" in rules
    assert f"+{denied}" not in rules


def test_admin_and_dangerous_categories_go_after_the_data_categories() -> None:
    rules = project_rules("shop", 7)

    assert rules.index("-@all") < rules.index("+@read") < rules.index("-@admin")
    assert rules.index("+@write") < rules.index("-@dangerous")
    # FLUSHDB (own index) and INFO (statistics) come back on purpose; FLUSHALL, KEYS, CONFIG do
    # not: they are in @dangerous and never allowed again.
    assert rules.index("-@dangerous") < rules.index("+flushdb")
    for command in ("flushall", "keys", "config", "acl", "shutdown", "debug", "monitor"):
        assert f"+{command}" not in rules


def test_keys_are_any_name_and_channels_the_projects_own() -> None:
    rules = project_rules("shop", 7)

    assert rules[:4] == ["resetkeys", "~*", "resetchannels", "&shop:*"]


def test_redis_receives_only_a_hash_of_a_password() -> None:
    assert password_hash("s3cret") == "#" + hashlib.sha256(b"s3cret").hexdigest()
    lines = server_acl("dbadmin", "s3cret").splitlines()
    assert lines == [
        "user default off resetpass resetkeys resetchannels -@all",
        f"user dbadmin on {password_hash('s3cret')} ~* &* +@all",
    ]


@pytest.mark.parametrize(("stack_name", "on_delete"), [("dev", "delete"), ("prod", "disable")])
def test_every_redis_project_gets_its_own_user(
    run_program: ProgramRunner, stack_name: str, on_delete: str
) -> None:
    deployment = run_program(stack_name)

    for project in projects.PROJECTS:
        user = deployment.named(f"{project.name}-redis-user")
        assert user.type == DYNAMIC
        assert user.inputs["username"] == project.user
        assert user.inputs["rules"] == project_rules(project.name, project.redis_db or 0)
        # Removed from projects.py: gone in dev; in prod switched off, to come back later.
        assert user.inputs["on_delete"] == on_delete
        assert user.protect is (stack_name == "prod")
        # The password is made by the provider and comes back as a secret output only.
        assert "password" not in user.inputs
        assert "admin_password" in user.secret_inputs
        assert {"password", "admin_password"} <= set(user.additional_secret_outputs)
        assert user.delete_before_replace
        assert user.inputs["admin_user"] == "dbadmin"
        assert user.inputs["admin_password"] == MOCK_PASSWORD
        # Managed through the published port, once Redis takes logins.
        assert user.inputs["host"] == "127.0.0.1"
        assert any(dep.endswith("::db-server-redis-ready") for dep in user.dependencies)


def test_a_project_without_redis_gets_no_user_index_or_url(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        projects, "PROJECTS", [*projects.PROJECTS, Project("reports", user="reports_user")]
    )

    deployment = run_program("dev")

    names = {r.name for r in deployment.resources}
    assert "reports-role" in names
    assert not {"reports-redis-user", "reports-redis-password"} & names
    assert {k for k in deployment.outputs if k.startswith("reports_")} == {
        "reports_url",
        "reports_host_url",
    }
    assert deployment.outputs["summary"]["projects"]["reports"]["redis_db"] is None


def test_a_hundred_projects_some_with_redis_deploy_under_mocks(
    run_program: ProgramRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = [
        Project(
            f"app{i:03}",
            user=f"app{i:03}_user",
            redis_db=i if i % 3 == 0 else None,
            connection_limit=1,
        )
        for i in range(1, 101)
    ]
    monkeypatch.setattr(projects, "PROJECTS", many)

    # 100 projects at 1 connection, the pooler's and exporters' 10: prod's 200 hold them.
    deployment = run_program("prod")

    project_users = [
        r
        for r in deployment.of_type(DYNAMIC)
        if r.name.endswith("-redis-user") and "ProjectDatabase" in r.parent
    ]
    assert len(project_users) == 33
    roles = deployment.of_type("postgresql:index/role:Role")
    assert len([r for r in roles if "ProjectDatabase" in r.parent]) == 100
    assert deployment.outputs["app099_redis_url"].endswith("@db-server-redis:6379/99")
    assert "app100_redis_url" not in deployment.outputs


def test_a_refresh_while_redis_is_down_keeps_the_user_as_it_is() -> None:
    """`make repair` previews with Redis gone, and reads again once Redis is back."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])
    props = {"host": "127.0.0.1", "port": closed, "admin_user": "dbadmin"}
    props |= {"admin_password": "x", "username": "shop_user"}

    read = _RedisUserProvider().read("shop_user", props)

    assert (read.id, read.outs) == ("shop_user", props)


class _FakeAdmin:
    """Stands in for the Redis admin connection: knows which users exist."""

    def __init__(self, users: set[str]) -> None:
        self.users = users

    def __enter__(self) -> "_FakeAdmin":
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def acl_getuser(self, name: str) -> dict[str, str] | None:
        return {"name": name} if name in self.users else None


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What the provider sent to Redis, one entry per ACL SETUSER."""
    sent: list[dict[str, object]] = []
    monkeypatch.setattr(redis_user, "_apply", lambda props: sent.append(dict(props)))
    return sent


def _outs(result: CreateResult | UpdateResult | ReadResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


USER = {"username": "shop_user", "rules": ["~*"], "on_delete": "delete", "host": "127.0.0.1"}


def test_a_new_user_gets_a_long_random_password_of_its_own(
    applied: list[dict[str, object]],
) -> None:
    first = _RedisUserProvider().create(dict(USER))
    second = _RedisUserProvider().create(dict(USER))

    password = _outs(first)["password"]
    assert len(password) == 40
    assert password.isascii()
    assert password.isalnum()
    assert password != _outs(second)["password"]
    assert [sent["password"] for sent in applied] == [password, _outs(second)["password"]]
    assert first.id == "shop_user"


def test_an_update_keeps_the_password_the_projects_url_carries(
    applied: list[dict[str, object]],
) -> None:
    olds = {**USER, "password": "InStateSince2025"}
    news = {**USER, "rules": ["~*", "+get"]}

    updated = _RedisUserProvider().update("shop_user", olds, news)

    assert updated.outs == {**news, "password": "InStateSince2025"}
    assert applied == [updated.outs]


def test_the_password_alone_is_never_a_change() -> None:
    # Users created while the password was an input have it in state; now it is not one.
    olds = {**USER, "password": "InStateSince2025"}

    assert not _RedisUserProvider().diff("shop_user", olds, dict(USER)).changes
    assert _RedisUserProvider().diff("shop_user", olds, {**USER, "rules": []}).changes
    renamed = _RedisUserProvider().diff("shop_user", olds, {**USER, "username": "store_user"})
    assert renamed.replaces == ["username"]


def test_a_user_a_refresh_finds_missing_is_made_again_with_the_same_password(
    monkeypatch: pytest.MonkeyPatch, applied: list[dict[str, object]]
) -> None:
    provider = _RedisUserProvider()
    state = {**USER, "password": "InStateSince2025"}
    monkeypatch.setattr(redis_user, "_admin", lambda _props: _FakeAdmin(users={"other"}))

    read = provider.read("shop_user", state)
    diff = provider.diff("shop_user", _outs(read), dict(USER))
    updated = provider.update("shop_user", _outs(read), dict(USER))

    # Kept in state, marked: not dropped, which would make a new password on the next create.
    assert read.id == "shop_user"
    assert _outs(read)["password"] == "InStateSince2025"
    assert diff.changes
    assert not diff.replaces
    assert applied == [{**USER, "password": "InStateSince2025"}]
    assert updated.outs == {**USER, "password": "InStateSince2025"}


def test_a_refresh_that_finds_the_user_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    state = {**USER, "password": "InStateSince2025"}
    monkeypatch.setattr(redis_user, "_admin", lambda _props: _FakeAdmin(users={"shop_user"}))

    read = _RedisUserProvider().read("shop_user", state)

    assert (read.id, read.outs) == ("shop_user", state)
    assert not _RedisUserProvider().diff("shop_user", _outs(read), dict(USER)).changes


def test_a_user_imported_after_a_cut_short_create_gets_a_new_password(
    monkeypatch: pytest.MonkeyPatch, applied: list[dict[str, object]]
) -> None:
    # `make repair` imports a user whose create was killed: its state has no password.
    provider = _RedisUserProvider()
    imported = {**USER, "password": None}
    monkeypatch.setattr(redis_user, "_admin", lambda _props: _FakeAdmin(users={"shop_user"}))

    read = provider.read("shop_user", imported)
    diff = provider.diff("shop_user", _outs(read), dict(USER))
    updated = provider.update("shop_user", _outs(read), dict(USER))

    assert diff.changes
    assert not diff.replaces
    password = _outs(updated)["password"]
    assert isinstance(password, str)
    assert len(password) == 40
    assert applied == [updated.outs]
    assert "missing" not in _outs(updated)
