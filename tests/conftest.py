"""What every test layer above the unit tests needs: a Docker engine, the test images and the
Pulumi CLI, each found or reported in one place.

Without them a test is skipped on a developer's machine and fails in CI (``CI=true``), where a
skip would hide a broken setup. ``.ci/setup`` provides all three.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
"""The project's root: the program, its stack files and scripts."""

PROGRAM_PATHS = (
    "Pulumi.yaml",
    "__main__.py",
    "projects.py",
    "settings",
    "validation.py",
    "requirements.txt",
    "components",
    "providers",
    "repair",
    "scripts",
    "images",
    "Makefile",
)
"""What a user's checkout holds that `pulumi up` reads, the scripts its containers run included."""

_PORTS_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now, for a container to publish.

    Taken below the kernel's ephemeral range: a port from that range (what binding port 0
    gives) can become the local end of any outgoing connection before the container binds it.
    Never the same port twice in one test run."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(1000):
        port = random.randrange(20000, max(ephemeral_low, 20001))
        if port in _PORTS_HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range after 1000 tries")


def copy_project(dest: Path) -> Path:
    """The program as a user has it, in ``dest``, with the stack files; its ``venv`` is the
    environment running the tests, so no run spends time making one."""
    dest.mkdir(parents=True)
    for name in PROGRAM_PATHS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)  # its time too: make sees the venv as made
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        shutil.copy(stack_file, dest / stack_file.name)
    (dest / "venv").symlink_to(sys.prefix)
    return dest


def unavailable(reason: str) -> NoReturn:
    """Skips the test outside CI; in CI a missing prerequisite is a failure, not a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


class DockerError(AssertionError):
    """A docker CLI command failed; the message carries its stderr."""


def docker_cli(*args: str, timeout: float = 120) -> str:
    """Runs ``docker ARGS`` and returns its stdout; raises DockerError when it fails."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise DockerError(
            f"`docker {' '.join(args)}` exited {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


@pytest.fixture(scope="session")
def docker() -> None:
    """A Docker engine that answers ``docker info``."""
    try:
        docker_cli("info", "--format", "{{.ServerVersion}}", timeout=30)
    except FileNotFoundError:
        unavailable("no `docker` CLI on PATH; run .ci/lib/docker-engine.sh")
    except (DockerError, subprocess.TimeoutExpired) as error:
        unavailable(
            f"no Docker engine answers `docker info` ({error}); run .ci/lib/docker-engine.sh"
        )


def _image(variable: str) -> str:
    image = os.environ.get(variable, "")
    if not image:
        unavailable(f'{variable} is not set; run `eval "$(bash .ci/lib/images.sh)"`')
    try:
        docker_cli("image", "inspect", "--format", "{{.Id}}", image)
    except DockerError:
        unavailable(f"{variable}={image} is not an image the engine has; run .ci/lib/images.sh")
    return image


@pytest.fixture(scope="session")
def postgres_image(docker: None) -> str:
    """The image that stands in for postgres:17 (DB_SERVER_TEST_POSTGRES_IMAGE)."""
    return _image("DB_SERVER_TEST_POSTGRES_IMAGE")


@pytest.fixture(scope="session")
def redis_image(docker: None) -> str:
    """The image that stands in for redis:8 (DB_SERVER_TEST_REDIS_IMAGE)."""
    return _image("DB_SERVER_TEST_REDIS_IMAGE")


@pytest.fixture(scope="session")
def pgbouncer_image(docker: None) -> str:
    """The image that stands in for edoburu/pgbouncer (DB_SERVER_TEST_PGBOUNCER_IMAGE)."""
    return _image("DB_SERVER_TEST_PGBOUNCER_IMAGE")


@pytest.fixture(scope="session")
def postgres_exporter_image(docker: None) -> str:
    """The stand-in for quay.io/prometheuscommunity/postgres-exporter."""
    return _image("DB_SERVER_TEST_POSTGRES_EXPORTER_IMAGE")


@pytest.fixture(scope="session")
def redis_exporter_image(docker: None) -> str:
    """The stand-in for oliver006/redis_exporter (DB_SERVER_TEST_REDIS_EXPORTER_IMAGE)."""
    return _image("DB_SERVER_TEST_REDIS_EXPORTER_IMAGE")


@pytest.fixture(scope="session")
def s3_image(docker: None) -> str:
    """The S3-compatible object store of the tests (DB_SERVER_TEST_S3_IMAGE)."""
    return _image("DB_SERVER_TEST_S3_IMAGE")


@pytest.fixture(scope="session")
def prometheus_image(docker: None) -> str:
    """The image that stands in for prom/prometheus (DB_SERVER_TEST_PROMETHEUS_IMAGE)."""
    return _image("DB_SERVER_TEST_PROMETHEUS_IMAGE")


@pytest.fixture(scope="session")
def pulumi_cli() -> str:
    """The ``pulumi`` CLI on PATH (from .ci/setup), as an absolute path."""
    exe = shutil.which("pulumi")
    if exe is None:
        unavailable(
            "pulumi is not on PATH: build and load the toolchain first with "
            '`env_lines="$(bash .ci/lib/pulumi-toolchain.sh --core-only)" && eval "$env_lines"`'
        )
    return exe


SUITES = ("unit", "scripts", "integration", "e2e")
"""The test layers, by folder under tests/."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Says per suite whether it ran, and why not where it skipped; ``.ci/run`` repeats it last
    (from ``DB_SERVER_SUITE_SUMMARY``) so a skipped suite cannot pass unnoticed."""
    counts: dict[str, dict[str, int]] = {suite: {} for suite in SUITES}
    reasons: dict[str, set[str]] = {suite: set() for suite in SUITES}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            parts = getattr(report, "nodeid", "").split("/")
            if len(parts) < 3 or parts[0] != "tests" or parts[1] not in counts:
                continue
            suite = parts[1]
            counts[suite][outcome] = counts[suite].get(outcome, 0) + 1
            if outcome == "skipped" and isinstance(report.longrepr, tuple):
                reasons[suite].add(str(report.longrepr[2]).removeprefix("Skipped: "))
    lines = []
    for suite in SUITES:
        tally = counts[suite]
        if not tally:
            lines.append(f"{suite}: not run")
            continue
        ran = tally.get("passed", 0) + tally.get("failed", 0) + tally.get("error", 0)
        verdict = "RAN" if ran else "SKIPPED"
        summary = ", ".join(f"{n} {outcome}" for outcome, n in tally.items())
        lines.append(f"{suite}: {verdict} ({summary})")
        lines += [f"    skipped because: {reason}" for reason in sorted(reasons[suite])]
    terminalreporter.write_sep("=", "suites")
    for line in lines:
        terminalreporter.write_line(line)
    target = os.environ.get("DB_SERVER_SUITE_SUMMARY")
    if target:
        Path(target).write_text("\n".join(lines) + "\n")
