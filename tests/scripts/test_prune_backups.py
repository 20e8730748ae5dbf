"""Retention: what scripts/prune-backups.sh keeps and deletes, on a made-up backup history."""

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT

PRUNE = ROOT / "scripts" / "prune-backups.sh"


def _backup(
    root: Path,
    name: str,
    *,
    complete: bool = True,
    verified: bool = False,
    databases: tuple[str, ...] = ("shop", "blog"),
) -> None:
    (root / name).mkdir(parents=True)
    manifest = "kind\tfile\tbytes\tsha256\tserver_version\towner\n" + "".join(
        f"database:{db}\t{db}.sql.gz\t1\tx\t17.6\t{db}_user\n" for db in databases
    )
    (root / name / "manifest.tsv").write_text(manifest)
    if complete:
        (root / name / "COMPLETE").write_text("done\n")
    if verified:
        (root / name / "VERIFIED").write_text("ok\n")


def _prune(root: Path, daily: int, weekly: int) -> set[str]:
    subprocess.run(
        [str(PRUNE), "--daily", str(daily), "--weekly", str(weekly)],
        env={**os.environ, "DB_SERVER_BACKUP_DIR": str(root)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return {p.name for p in root.iterdir()}


def test_keeps_the_newest_of_each_recent_day_and_week(tmp_path: Path) -> None:
    # Mondays start ISO weeks: 2026-11-16 (week 47) and 2026-11-23 (week 48).
    for name in [
        "20261125T020000Z",
        "20261125T140000Z",  # newest of Wed 25
        "20261124T020000Z",  # newest of Tue 24
        "20261123T020000Z",  # newest of Mon 23
        "20261122T020000Z",  # newest of week 47
        "20261118T020000Z",
        "20261109T020000Z",  # newest of week 45
        "20261101T020000Z",  # newest of week 44: beyond 3 weeks
    ]:
        _backup(tmp_path, name)
    (tmp_path / "latest").symlink_to("20261125T140000Z")

    kept = _prune(tmp_path, daily=3, weekly=3)

    assert kept == {
        "latest",
        "20261125T140000Z",
        "20261124T020000Z",
        "20261123T020000Z",
        "20261122T020000Z",
        "20261109T020000Z",
    }


def test_the_newest_verified_backup_is_never_deleted(tmp_path: Path) -> None:
    _backup(tmp_path, "20261101T020000Z", verified=True)
    for day in range(20, 26):
        _backup(tmp_path, f"202611{day}T020000Z")  # newer, none verified

    kept = _prune(tmp_path, daily=2, weekly=0)

    assert kept == {"20261101T020000Z", "20261125T020000Z", "20261124T020000Z"}


def test_partial_backups_go_only_once_they_are_stale(tmp_path: Path) -> None:
    _backup(tmp_path, "20261125T020000Z")
    _backup(tmp_path, "20261125T030000Z.partial", complete=False)
    _backup(tmp_path, "20261120T030000Z.partial", complete=False)
    day_old = time.time() - 2 * 86400
    os.utime(tmp_path / "20261120T030000Z.partial", (day_old, day_old))

    kept = _prune(tmp_path, daily=1, weekly=1)

    assert kept == {"20261125T020000Z", "20261125T030000Z.partial"}


def test_an_incomplete_backup_never_counts_as_the_days_backup(tmp_path: Path) -> None:
    _backup(tmp_path, "20261125T020000Z")
    _backup(tmp_path, "20261125T030000Z", complete=False)  # no COMPLETE marker: not a backup

    kept = _prune(tmp_path, daily=1, weekly=0)

    assert "20261125T020000Z" in kept


def test_the_newest_backup_of_a_database_left_out_since_is_kept(tmp_path: Path) -> None:
    """A project whose dumps started failing (FAILED) keeps its last good backup."""
    _backup(tmp_path, "20261101T020000Z", verified=True)  # shop and blog
    for day in range(20, 26):  # newer, verified, without shop
        _backup(tmp_path, f"202611{day}T020000Z", verified=True, databases=("blog",))

    kept = _prune(tmp_path, daily=2, weekly=0)

    assert kept == {"20261101T020000Z", "20261125T020000Z", "20261124T020000Z"}
