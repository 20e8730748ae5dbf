"""The Prometheus config and alert rules in ``monitoring/`` pass promtool's checks, and each
check can fail.

promtool runs from the Prometheus image (``DB_SERVER_TEST_PROMETHEUS_IMAGE``, the stand-in for
prom/prometheus that ``.ci/setup`` builds), with the files mounted read-only: CI has no other
promtool, so without the image these tests fail in CI like every other missing prerequisite.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import unique_name

pytestmark = pytest.mark.integration

MONITORING = ROOT / "monitoring"
RULES = "rules/db-server.rules.yml"
RULE_TESTS = "rules/db-server.rules.test.yml"
# Where the folder is mounted: the config's rule_files are relative to it, as in a deployment.
MOUNT = "/etc/prometheus"


def promtool(image: str, folder: Path, *args: str) -> tuple[int, str]:
    """Runs ``promtool ARGS`` on ``folder`` (mounted at MOUNT, no network); exit code and output."""
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--name",
            unique_name("promtool"),
            "--network",
            "none",
            "--volume",
            f"{folder}:{MOUNT}:ro",
            "--entrypoint",
            "promtool",
            image,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def monitoring_copy(tmp_path: Path) -> Path:
    """A copy of ``monitoring/`` that a test may break, readable by promtool's user (nobody)."""
    copy = tmp_path / "monitoring"
    shutil.copytree(MONITORING, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


def test_scrape_config_is_valid_and_finds_the_rules(prometheus_image: str) -> None:
    code, output = promtool(
        prometheus_image, MONITORING, "check", "config", f"{MOUNT}/prometheus.yml"
    )
    assert code == 0, output
    assert "SUCCESS: 1 rule files found" in output


def test_rules_are_valid(prometheus_image: str) -> None:
    code, output = promtool(prometheus_image, MONITORING, "check", "rules", f"{MOUNT}/{RULES}")
    assert code == 0, output
    alerts = alert_names(MONITORING / RULES)
    assert f"SUCCESS: {len(alerts)} rules found" in output


def test_rule_unit_tests_pass(prometheus_image: str) -> None:
    code, output = promtool(prometheus_image, MONITORING, "test", "rules", f"{MOUNT}/{RULE_TESTS}")
    assert code == 0, output
    assert "SUCCESS" in output


def alert_names(path: Path) -> set[str]:
    """Every alert's name in a rule file."""
    rules = yaml.safe_load(path.read_text())
    return {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


def test_every_alert_is_tested_firing_and_silent() -> None:
    alerts = alert_names(MONITORING / RULES)
    fired: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load((MONITORING / RULE_TESTS).read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    assert fired == alerts
    assert silent == alerts


@pytest.mark.parametrize(
    ("command", "old", "new", "expected"),
    [
        # A syntax error: the rule file and the config that loads it are both refused.
        (("check", "rules", f"{MOUNT}/{RULES}"), "pg_up == 0", "pg_up ==", "parse error"),
        (("check", "config", f"{MOUNT}/prometheus.yml"), "pg_up == 0", "pg_up ==", "parse error"),
        # A threshold moved: still valid, but the unit tests catch the alert that no longer fires.
        (
            ("test", "rules", f"{MOUNT}/{RULE_TESTS}"),
            "> 0.8",
            "> 0.9",
            "PostgresConnectionsNearMax",
        ),
    ],
    ids=["check-rules", "check-config", "test-rules"],
)
def test_promtool_rejects_a_broken_rule_file(
    prometheus_image: str,
    monitoring_copy: Path,
    command: tuple[str, ...],
    old: str,
    new: str,
    expected: str,
) -> None:
    rules = monitoring_copy / RULES
    text = rules.read_text()
    assert text.count(old) >= 1
    rules.write_text(text.replace(old, new, 1))
    code, output = promtool(prometheus_image, monitoring_copy, *command)
    assert code != 0, output
    assert expected in output
