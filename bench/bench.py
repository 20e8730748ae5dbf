"""How fast the program deploys, next to doing the same by hand, in one run on this machine.

    make bench                 # N = 1, 3, 16, 100
    make bench N="1 3"         # some of them
    bench/bench.py --repeat 5  # more samples per figure

For each N it measures:

- the floor: what a careful user does by hand. ``docker run`` of both servers, wait for a
  PostgreSQL login, one psql script creating N roles (SCRAM verifiers), databases and revokes,
  and one redis-cli script creating N ACL users;
- the program, through the Automation API with the real providers: a cold ``up``, a no-op
  ``preview``, adding one project, removing it again;
- Pulumi's own floor: a bare program of as many resources as the stack has, every one a
  ``RandomId`` (nothing to dial, a real provider), and its no-op ``preview``: what the engine,
  the language host and the Python SDK cost before the program does anything;

then prints a table of medians (``--repeat``, 3 samples of each figure by default; the cold
``up`` and the floor once at N > 16) with the ratios against the goals, and where the first
cold ``up`` spent its time, per resource, from the engine's events. It is a benchmark that
prints figures, not a test: it needs Docker, the Pulumi CLI, the test images and the real
provider plugins (``.ci/setup`` and ``pulumi plugin ls``), and says so where they are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from pulumi import automation as auto  # noqa: E402

from components.redis_acl import password_hash, project_rules  # noqa: E402
from components.scram import scram_sha256_verifier  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    PASSPHRASE,
    E2EStack,
    Names,
    ProjectLine,
    missing_plugins,
)

GOALS = {
    "cold up at N=3 / floor": 2.0,
    "no-op preview at N / at N=1": 1.5,
    "add one at N / at N=1": 1.3,
}
POLL_S = 0.02
LOGIN_TIMEOUT_S = 120
PASSWORD = "bench-password-0123456789"


def projects(n: int) -> list[ProjectLine]:
    """N projects, every one with Redis (the heavier case)."""
    return [ProjectLine(f"app{i:03}", user=f"app{i:03}_user", redis_db=i) for i in range(1, n + 1)]


CONNECTION_LIMIT = 20
"""Each project's connection_limit: projects.py's default."""


def max_connections(n: int) -> int:
    """A max_connections that holds N projects at their limit, and the admin's reserve: what
    the program requires (validation.py), given to the floor's server too."""
    return max(100, CONNECTION_LIMIT * n + 3)


def run(*args: str, stdin: str | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} ... exited {done.returncode}: {done.stderr}")
    return done.stdout


# -- the floor --------------------------------------------------------------------------------


def floor_seconds(n: int, images: tuple[str, str]) -> float:
    """Seconds to a server with N projects, by hand; everything removed afterwards."""
    names = Names(prefix=f"dbs-bench-floor-{n}")
    postgres_image, redis_image = images
    sql = []
    for project in projects(n):
        verifier = scram_sha256_verifier(PASSWORD, os.urandom(16))
        sql += [
            f"CREATE ROLE {project.user} LOGIN PASSWORD '{verifier}' "
            f"CONNECTION LIMIT {CONNECTION_LIMIT};",
            f"CREATE DATABASE {project.name} OWNER {project.user} TEMPLATE template0;",
            f"REVOKE ALL ON DATABASE {project.name} FROM PUBLIC;",
        ]
    sql += [
        "REVOKE ALL ON DATABASE postgres FROM PUBLIC;",
        "REVOKE ALL ON DATABASE template1 FROM PUBLIC;",
    ]
    acl = [
        " ".join(["ACL", "SETUSER", p.user, "reset", "on", password_hash(PASSWORD)])
        + " "
        + " ".join(project_rules(p.name, p.redis_db or 0))
        for p in projects(n)
    ]
    started = time.monotonic()
    try:
        # The design's shared network, as a careful user makes it: the program makes one too.
        run("docker", "network", "create", names.network)
        run(
            "docker",
            "run",
            "-d",
            "--network",
            names.network,
            "--name",
            names.postgres,
            "-e",
            f"POSTGRES_PASSWORD={PASSWORD}",
            "-e",
            "POSTGRES_USER=dbadmin",
            "-p",
            f"127.0.0.1:{names.postgres_port}:5432",
            "-v",
            f"{names.pg_volume}:/var/lib/postgresql/data",
            postgres_image,
            *("-c", f"max_connections={max_connections(n)}"),
        )
        run(
            "docker",
            "run",
            "-d",
            "--network",
            names.network,
            "--name",
            names.redis,
            "-p",
            f"127.0.0.1:{names.redis_port}:6379",
            "-v",
            f"{names.redis_volume}:/data",
            redis_image,
            "redis-server",
            "--requirepass",
            PASSWORD,
            "--databases",
            "256",
        )
        deadline = time.monotonic() + LOGIN_TIMEOUT_S
        while True:
            try:
                psycopg.connect(
                    host="127.0.0.1",
                    port=names.postgres_port,
                    user="dbadmin",
                    password=PASSWORD,
                    dbname="postgres",
                    connect_timeout=2,
                ).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(POLL_S)
        run(
            "docker",
            "exec",
            "-i",
            names.postgres,
            "psql",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "dbadmin",
            "-d",
            "postgres",
            stdin="\n".join(sql),
        )
        run(
            "docker",
            "exec",
            "-i",
            "-e",
            f"REDISCLI_AUTH={PASSWORD}",
            names.redis,
            "redis-cli",
            stdin="\n".join(acl),
        )
        return time.monotonic() - started
    finally:
        subprocess.run(
            ["docker", "rm", "-f", names.postgres, names.redis], capture_output=True, check=False
        )
        subprocess.run(
            ["docker", "volume", "rm", "-f", names.pg_volume, names.redis_volume],
            capture_output=True,
            check=False,
        )
        subprocess.run(["docker", "network", "rm", names.network], capture_output=True, check=False)


# -- the program ------------------------------------------------------------------------------


@dataclass
class Timeline:
    """When the engine started and finished each resource step (seconds since the operation
    began, as this process received the events)."""

    started: float = field(default_factory=time.monotonic)
    begin: dict[str, float] = field(default_factory=dict)
    end: dict[str, float] = field(default_factory=dict)

    def record(self, event: auto.EngineEvent) -> None:
        now = time.monotonic() - self.started
        if event.resource_pre_event and event.resource_pre_event.metadata:
            self.begin.setdefault(event.resource_pre_event.metadata.urn, now)
        if event.res_outputs_event and event.res_outputs_event.metadata:
            self.end[event.res_outputs_event.metadata.urn] = now

    def per_resource(self) -> list[tuple[str, float, float]]:
        """``(name, start, duration)`` of each resource, in the order they started."""
        rows = []
        for urn, begin in sorted(self.begin.items(), key=lambda kv: kv[1]):
            if urn in self.end:
                type_ = urn.split("::")[-2].rsplit("$", 1)[-1]
                rows.append((f"{type_}::{urn.rsplit('::', 1)[1]}", begin, self.end[urn] - begin))
        return rows


@dataclass
class ProgramFigures:
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    """Every measurement, by figure."""
    cold_up: Timeline | None = None
    resources: int = 0
    """Resources in the stack's state after the cold ``up``, the stack itself included."""

    @property
    def seconds(self) -> dict[str, float]:
        """The median of each figure's samples."""
        return {name: statistics.median(values) for name, values in self.samples.items()}


def pulumi(stack: E2EStack, *args: str, timeline: Timeline | None = None) -> float:
    """Seconds a CLI command takes, run the way a user runs it; with ``timeline``, the engine's
    events are read as they are written."""
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{stack.state_dir}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
    }
    command = [*args, "--stack", stack.stack_name, "--non-interactive"]
    log = stack.state_dir.parent / "events.jsonl"
    log.unlink(missing_ok=True)
    if timeline is not None:
        # --event-log is one of the CLI's debug flags (the Automation API sets this too).
        env["PULUMI_DEBUG_COMMANDS"] = "true"
        command += ["--event-log", str(log)]
    output = stack.state_dir.parent / "output.txt"
    started = time.monotonic()
    # The output goes to a file: a pipe nobody reads while the events are followed would fill
    # up and stall the CLI.
    with output.open("w") as sink:
        process = subprocess.Popen(
            ["pulumi", *command], cwd=stack.workdir, env=env, stdout=sink, stderr=sink
        )
        if timeline is not None:
            timeline.started = started
            follow_events(log, process, timeline)
        process.wait(timeout=1800)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"pulumi {' '.join(args)} failed:\n{output.read_text()[-4000:]}")
    return seconds


def follow_events(log: Path, process: subprocess.Popen[bytes], timeline: Timeline) -> None:
    """Reads the event log while the command runs, noting when each event arrived."""
    deadline = time.monotonic() + 1800
    while not log.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if not log.exists():
        return
    with log.open() as events:
        pending = ""
        while time.monotonic() < deadline:
            chunk = events.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    timeline.record(auto.EngineEvent.from_json(json.loads(pending)))
                    pending = ""
            elif process.poll() is not None:
                break
            else:
                time.sleep(POLL_S)


def program_figures(
    n: int, root: Path, pulumi_cli: str, images: tuple[str, str], repeats: int
) -> ProgramFigures:
    """The program's figures at N, each the median of its samples: ``cold_repeats(n, repeats)``
    cold ups (a fresh stack each), and on the first stack ``repeats`` no-op previews and
    add-one/remove-one pairs."""
    figures = ProgramFigures()
    up = ("up", "--yes", "--skip-preview")
    for attempt in range(cold_repeats(n, repeats)):
        stack = E2EStack(
            root / f"n{n}-{attempt}",
            pulumi_cli,
            stack_name=f"bench{n}",
            names=Names(prefix=f"dbs-bench-{n}-{attempt}"),
            images=images,
            projects=projects(n),
            settings={"postgres": {"parameters": {"max_connections": str(max_connections(n))}}},
        )
        try:
            timeline = Timeline()
            figures.samples["cold up"].append(pulumi(stack, *up, timeline=timeline))
            if attempt > 0:
                continue
            figures.cold_up = timeline
            state = json.loads(stack.state_file())
            figures.resources = len(state["checkpoint"]["latest"]["resources"])
            for _ in range(repeats):
                figures.samples["no-op preview"].append(
                    pulumi(stack, "preview", "--expect-no-changes")
                )
                stack.write_projects(projects(n + 1))
                figures.samples["add one"].append(pulumi(stack, *up))
                stack.write_projects(projects(n))
                figures.samples["remove one"].append(pulumi(stack, *up))
        finally:
            stack.cleanup()
    return figures


def cold_repeats(n: int, repeats: int) -> int:
    """Cold ups (and floors) measured at N: one at 100 projects, where each takes minutes."""
    return repeats if n <= 16 else 1


BARE_PROGRAM = """\
import os

import pulumi_random as random

for i in range(int(os.environ["BENCH_RESOURCES"])):
    random.RandomId(f"r{i}", byte_length=8)
"""


def bare_preview_seconds(resources: int, root: Path, repeats: int) -> list[float]:
    """``repeats`` no-op previews of a bare program with ``resources`` resources (the stack
    and the random provider among them), after its own ``up``: Pulumi's floor for that many."""
    workdir = root / f"bare{resources}"
    workdir.mkdir()
    (workdir / "Pulumi.yaml").write_text(
        "name: bench-bare\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n"
    )
    (workdir / "__main__.py").write_text(BARE_PROGRAM)
    (workdir / "venv").symlink_to(sys.prefix)
    (workdir / "state").mkdir()
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "BENCH_RESOURCES": str(max(resources - 2, 1)),
    }

    def cli(*args: str) -> float:
        started = time.monotonic()
        done = subprocess.run(
            ["pulumi", *args, "--stack", "bare", "--non-interactive"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bare program: pulumi {args[0]} failed:\n{done.stdout[-2000:]}")
        return time.monotonic() - started

    cli("stack", "init")
    cli("up", "--yes", "--skip-preview")
    return [cli("preview", "--expect-no-changes") for _ in range(repeats)]


# -- report -----------------------------------------------------------------------------------


def breakdown(timeline: Timeline, top: int = 12) -> str:
    rows = timeline.per_resource()
    unfinished = len(timeline.begin) - len(rows)
    by_type: dict[str, list[float]] = defaultdict(list)
    for name, _, duration in rows:
        by_type[name.split("::")[0]].append(duration)
    lines = ["  slowest steps (start s, duration s):"]
    if os.environ.get("BENCH_ALL_STEPS"):
        top, rows_shown = len(rows), rows
    else:
        rows_shown = sorted(rows, key=lambda r: -r[2])
    for name, begin, duration in rows_shown[:top]:
        lines.append(f"    {begin:6.2f} {duration:6.2f}  {name}")
    lines.append("  per type (count, total s, longest s):")
    for type_, durations in sorted(by_type.items(), key=lambda kv: -max(kv[1])):
        lines.append(
            f"    {len(durations):4d} {sum(durations):7.2f} {max(durations):6.2f}  {type_}"
        )
    first = min((begin for _, begin, _ in rows), default=0.0)
    last = max((begin + duration for _, begin, duration in rows), default=0.0)
    lines.append(f"  before the first step: {first:.2f} s (CLI, language host, program start)")
    lines.append(f"  last step finished at {last:.2f} s")
    if unfinished:
        lines.append(f"  ({unfinished} steps started without a finish event seen; not listed)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="1 3 16 100", help="project counts, space-separated")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="samples per figure, the median reported (cold ups and floors: once at N > 16)",
    )
    args = parser.parse_args()
    ns, repeats = [int(n) for n in args.n.split()], max(args.repeat, 1)

    pulumi_cli = shutil.which("pulumi")
    images = (
        os.environ.get("DB_SERVER_TEST_POSTGRES_IMAGE"),
        os.environ.get("DB_SERVER_TEST_REDIS_IMAGE"),
    )
    if pulumi_cli is None or shutil.which("docker") is None or not all(images):
        print('bench: needs the Pulumi CLI, Docker and the test images: eval "$(.ci/setup)" first')
        return 2
    missing = missing_plugins(pulumi_cli)
    if missing:
        print(
            f"bench: the real provider plugins are not installed ({', '.join(missing)}); "
            "`pulumi plugin ls` must list them. Nothing measured."
        )
        return 2
    images_ok = (str(images[0]), str(images[1]))

    floors: dict[int, float] = {}
    programs: dict[int, ProgramFigures] = {}
    with tempfile.TemporaryDirectory(prefix="db-server-bench-") as tmp:
        floor_seconds(1, images_ok)  # warm the page cache and Docker once
        for n in ns:
            floors[n] = statistics.median(
                floor_seconds(n, images_ok) for _ in range(cold_repeats(n, repeats))
            )
            programs[n] = program_figures(n, Path(tmp), pulumi_cli, images_ok, repeats)
            programs[n].samples["bare preview"] = bare_preview_seconds(
                programs[n].resources, Path(tmp), repeats
            )
            samples = {
                name: " ".join(f"{v:.2f}" for v in values)
                for name, values in programs[n].samples.items()
            }
            print(f"N={n}: floor {floors[n]:.2f} s (median), samples {samples}", flush=True)

    print()
    header = [
        "N",
        "floor",
        "cold up",
        "ratio",
        "no-op preview",
        "add one",
        "remove one",
        "resources",
        "bare preview",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for n in ns:
        s = programs[n].seconds
        print(
            f"| {n} | {floors[n]:.1f} s | {s['cold up']:.1f} s | {s['cold up'] / floors[n]:.1f}x | "
            f"{s['no-op preview']:.1f} s | {s['add one']:.1f} s | {s['remove one']:.1f} s | "
            f"{programs[n].resources} | {s['bare preview']:.1f} s |"
        )
    print(
        "\n(bare preview: a program of as many RandomId resources and nothing else, "
        "Pulumi's own floor for that many resources)"
    )
    print()
    if 3 in ns:
        ratio = programs[3].seconds["cold up"] / floors[3]
        print(f"cold up at N=3 / floor: {ratio:.2f}x (goal <= {GOALS['cold up at N=3 / floor']}x)")
    if 1 in ns:
        base = programs[1].seconds
        for n in [n for n in ns if n > 1]:
            s = programs[n].seconds
            print(
                f"no-op preview at N={n} / N=1: {s['no-op preview'] / base['no-op preview']:.2f}x "
                f"(goal <= 1.5x; the bare program of the same sizes: "
                f"{s['bare preview'] / base['bare preview']:.2f}x); "
                f"add one at N={n} / N=1: {s['add one'] / base['add one']:.2f}x (goal <= 1.3x)"
            )
    for n in ns:
        timeline = programs[n].cold_up
        if timeline is not None:
            print(f"\nwhere the cold up of N={n} went ({programs[n].seconds['cold up']:.1f} s):")
            print(breakdown(timeline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
