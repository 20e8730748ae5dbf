"""The shipped alert rules evaluated on what a live stack's containers really wrote.

The pgBackRest and backup containers write their metrics as files for node_exporter's textfile
collector; no stack here runs node_exporter and Prometheus, so promtool evaluates the rules of
``monitoring/`` on the values read from those files, held for ten minutes, as Prometheus would
see them scraped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import ROOT, docker_cli

LABELS = {"job": "node", "instance": "host:9100"}


def parse_metrics(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text file."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            key, value = line.split()
            samples[key] = float(value)
    return samples


def metrics_file(container: str, name: str) -> dict[str, float]:
    """/var/lib/db-server-metrics/NAME.prom, as ``container`` (running) wrote it."""
    return parse_metrics(
        docker_cli("exec", container, "cat", f"/var/lib/db-server-metrics/{name}.prom")
    )


def metrics_in_volume(volume: str, name: str, image: str) -> dict[str, float]:
    """NAME.prom in the metrics volume, as node_exporter would read it, whoever runs."""
    return parse_metrics(
        docker_cli(
            *("run", "--rm", "--network", "none", "--volume", f"{volume}:/metrics:ro"),
            *("--entrypoint", "cat", image, f"/metrics/{name}.prom"),
        )
    )


def alert_fires(
    image: str, folder: Path, alert: str, samples: dict[str, float], read_at: float
) -> bool:
    """Whether ``alert`` of the shipped rules fires within 10 minutes of ``read_at`` if the
    ``samples`` read then stay as they are (the file no longer rewritten), with the labels
    node_exporter's job gives them. promtool's clock starts at 0: the read is its time 0, so
    each ``*_timestamp_seconds`` is shifted by ``read_at``."""
    rules = folder / "rules"
    shutil.copytree(ROOT / "monitoring" / "rules", rules, dirs_exist_ok=True)
    labels = ", ".join(f'{key}="{value}"' for key, value in LABELS.items())
    test = {
        "rule_files": ["db-server.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f"{name}{{{labels}}}",
                        "values": f"{_shifted(name, value, read_at):.0f}x10",
                    }
                    for name, value in samples.items()
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": alert,
                        "exp_alerts": [{"exp_labels": {"severity": "critical", **LABELS}}],
                    }
                ],
            }
        ],
    }
    (rules / "live.test.yml").write_text(yaml.safe_dump(test))
    for path in [folder, rules, *rules.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    result = subprocess.run(
        [
            *("docker", "run", "--rm", "--network", "none", "--volume", f"{rules}:/rules:ro"),
            *("--entrypoint", "promtool", image, "test", "rules", "/rules/live.test.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return True
    # The test names no annotations, so a firing alert fails it on them alone: what promtool
    # got says whether it fired. Anything else is a broken check.
    assert "got:[" in output, output
    got = output.split("got:[", 1)[1]
    if got.startswith("]"):
        return False
    assert f'alertname="{alert}"' in got, output
    return True


def _shifted(name: str, value: float, read_at: float) -> float:
    return value - read_at if name.endswith("_timestamp_seconds") else value
