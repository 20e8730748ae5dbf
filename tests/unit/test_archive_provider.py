"""The one-shot archive resources (providers/archive.py) run once per data volume: a refresh
that finds their volume gone, or empty (made again under its name: a lost host), reports them
gone, so the update runs them again; a volume that holds files keeps them."""

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
def volumes(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Docker's volumes by name: whether each is empty."""
    known: dict[str, bool] = {}
    monkeypatch.setattr(archive, "_volume_is_empty", lambda name, _image: known.get(name))
    return known


def test_a_volume_that_holds_the_cluster_keeps_the_restore(volumes: dict[str, bool]) -> None:
    volumes["db_server_pgdata"] = False

    assert _RestoreProvider().read("db_server_pgdata", PROPS).id == "db_server_pgdata"


def test_a_volume_made_again_empty_runs_the_restore_again(volumes: dict[str, bool]) -> None:
    # The host is lost; the rebuild makes the volume again before the refresh reads this.
    volumes["db_server_pgdata"] = True

    assert _RestoreProvider().read("db_server_pgdata", PROPS).id == ""


def test_a_volume_gone_runs_the_precheck_again(volumes: dict[str, bool]) -> None:
    assert _PrecheckProvider().read("pg-archive-precheck", PROPS).id == ""
