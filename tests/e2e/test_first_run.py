"""A first run is one command: a fresh clone, on a machine where Pulumi was never logged in and
no passphrase is set, deploys dev with `make up YES=1`; a second run changes nothing.

The clone's stack file gets the test's own names, ports and images (what a user edits there);
its Pulumi home is a new one that shares only the installed plugins.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.e2e.harness import Names, connect, remove_docker_leftovers

pytestmark = pytest.mark.e2e


@pytest.fixture
def clone(
    real_plugins: str, postgres_image: str, redis_image: str, tmp_path: Path
) -> Iterator[tuple[Path, dict[str, str], Names]]:
    repo = tmp_path / "db-server"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True, timeout=120)
    # The test's environment stands in for the one `make install` makes (same requirements).
    (repo / "venv").symlink_to(Path(sys.prefix))
    made = (repo / "venv" / ".installed").stat().st_mtime
    os.utime(repo / "requirements.txt", (made - 1, made - 1))  # make sees the venv as made
    names = Names()
    stack_file = repo / "Pulumi.dev.yaml"
    config = yaml.safe_load(stack_file.read_text())
    config["config"]["db-server:network"]["name"] = names.network
    config["config"]["db-server:postgres"] |= {
        "image": postgres_image,
        "container_name": names.postgres,
        "host_port": names.postgres_port,
        "volume": names.pg_volume,
    }
    config["config"]["db-server:redis"] |= {
        "image": redis_image,
        "container_name": names.redis,
        "host_port": names.redis_port,
        "volume": names.redis_volume,
    }
    stack_file.write_text(yaml.safe_dump(config))
    home = tmp_path / "home"
    pulumi_home = home / ".pulumi"
    pulumi_home.mkdir(parents=True)
    (pulumi_home / "plugins").symlink_to(Path(os.environ["PULUMI_HOME"]) / "plugins")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS"))
    }
    env |= {"HOME": str(home), "PULUMI_HOME": str(pulumi_home), "PULUMI_SKIP_UPDATE_CHECK": "true"}
    env.pop("XDG_DATA_HOME", None)
    env.pop("DB_SERVER_HOME", None)
    yield repo, env, names
    _make(repo, env, "destroy", "YES=1")
    remove_docker_leftovers(names.prefix)


def _make(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_make_up_alone_deploys_dev_on_a_fresh_machine_and_a_second_run_changes_nothing(
    clone: tuple[Path, dict[str, str], Names],
) -> None:
    repo, env, _names = clone

    first = _make(repo, env, "up", "YES=1")

    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    state_home = Path(env["HOME"]) / ".local" / "share" / "db-server"
    assert f"logged in to the local backend file://{state_home}/state" in first.stderr
    passphrase = state_home / "dev.passphrase"
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    assert str(passphrase) in first.stderr
    assert passphrase.read_text().strip() not in first.stdout + first.stderr
    # The URLs are there for the project's own deploy, through the same wrapper.
    outputs = _make(repo, env, "outputs", "PROJECT=crypto_ai_agent")
    url = re.search(r"crypto_ai_agent_host_url = (\S+)", outputs.stdout)
    assert url, outputs.stdout + outputs.stderr
    with connect(url.group(1)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("crypto_ai_agent",)

    second = _make(repo, env, "up", "YES=1")

    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    summary = second.stdout[second.stdout.rindex("Resources:") :]
    assert re.search(r"\d+ unchanged", summary), summary
    assert not re.search(r"\d+ (created|updated|replaced|deleted)", summary), summary
    assert "logged in" not in second.stderr  # the first run's login and passphrase were reused
