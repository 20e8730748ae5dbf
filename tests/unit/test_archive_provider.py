"""The one-shot archive resources (providers/archive.py) run once per data volume: a refresh
that finds their volume gone, or made again under its name (a lost host), reports them gone."""

from typing import Any

import pytest

from providers import archive
from providers.archive import _PrecheckProvider, _RestoreProvider

PROPS = {
    "name": "pg-archive-restore",
    "image": "sha256:archive",
    "network": "nginx-network",
    "data_volume": "db_server_pgdata",
    "data_path": "/var/lib/postgresql/data",
    "socket_volume": "db_server_pgsocket",
    "config": "[global]",
    "env": {},
}


@pytest.fixture
def volumes(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Docker's volumes by name, with when each was made."""
    made: dict[str, str] = {}
    monkeypatch.setattr(archive, "_volume_created", made.get)
    return made


def _created(provider: Any, props: dict[str, Any]) -> dict[str, Any]:
    return dict(provider.create(props).outs)


def test_a_restore_remembers_the_volume_it_ran_on(volumes: dict[str, str]) -> None:
    volumes["db_server_pgdata"] = "2026-12-01T10:00:00Z"

    outs = _created(_RestoreProvider(), PROPS)

    assert outs["volume_created"] == "2026-12-01T10:00:00Z"
    assert _RestoreProvider().read("db_server_pgdata", outs).id == "db_server_pgdata"


def test_a_volume_made_again_under_its_name_runs_the_restore_again(
    volumes: dict[str, str],
) -> None:
    volumes["db_server_pgdata"] = "2026-12-01T10:00:00Z"
    outs = _created(_RestoreProvider(), PROPS)

    # The host is lost; the rebuild makes the volume again before the refresh reads this.
    volumes["db_server_pgdata"] = "2026-12-02T06:40:00Z"

    assert _RestoreProvider().read("db_server_pgdata", outs).id == ""


def test_a_volume_gone_runs_the_precheck_again(
    volumes: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "run_one_shot", lambda *_args, **_kwargs: "")
    volumes["db_server_pgdata"] = "2026-12-01T10:00:00Z"
    outs = _created(_PrecheckProvider(), PROPS)

    del volumes["db_server_pgdata"]

    assert _PrecheckProvider().read("pg-archive-precheck", outs).id == ""


def test_a_state_from_before_the_volume_was_recorded_keeps_the_resource(
    volumes: dict[str, str],
) -> None:
    volumes["db_server_pgdata"] = "2026-12-01T10:00:00Z"

    assert _RestoreProvider().read("db_server_pgdata", dict(PROPS)).id == "db_server_pgdata"


def test_a_setting_changed_later_keeps_the_volume_the_restore_ran_on(
    volumes: dict[str, str],
) -> None:
    volumes["db_server_pgdata"] = "2026-12-01T10:00:00Z"
    outs = _created(_RestoreProvider(), PROPS)

    updated = _RestoreProvider().update("db_server_pgdata", outs, {**PROPS, "network": "other"})

    assert updated.outs is not None
    assert updated.outs["volume_created"] == "2026-12-01T10:00:00Z"
