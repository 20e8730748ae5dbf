"""``make repair``: a stack made whole again after a deploy that was cut short, or servers that
were lost, without deleting anything to make way.

    python -m repair STACK [--yes] [-- PULUMI_UP_FLAGS...]

1. A lock left by a ``pulumi`` that is gone is removed; a live one stops the repair, naming its
   holder, with nothing changed (exit 3).
2. Every pending operation is looked up in the real world and resolved (``repair/plan.py``):
   imported with its real id, cleared, or left to the refresh.
3. The usual repair: ``pulumi up --refresh --run-program``, which reads every resource again in
   program order (a container is made again before anything dials the server it holds) and
   replaces the containers an import brought in.

Every step prints one line. Exit codes: 0 repaired, 1 failed, 2 wrong use, 3 locked by a deploy
that runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from repair import locks
from repair.edit import EditError, resolved
from repair.plan import Action, decide
from repair.stack import PulumiError, Stack
from repair.world import UnreachableError, World

LOCKED = 3


def say(line: str) -> None:
    print(f"repair: {line}", flush=True)


def release_stale_locks(stack: Stack) -> bool:
    """Removes the locks of processes that are gone; False where a live one holds the stack."""
    url = stack.backend_url()
    folder = locks.backend_folder(url)
    if folder is None:
        say(
            f"backend {url.split('://', 1)[0]}://: its locks are not read here; a deploy that "
            "runs stops the up below, naming its holder"
        )
        return True
    held = True
    for lock in locks.stack_locks(folder, stack.project, stack.name):
        if locks.is_stale(lock):
            lock.path.unlink(missing_ok=True)
            say(f"lock of {lock.holder()}: that process is gone, lock removed")
        else:
            say(
                f"stack {stack.name} is locked by {lock.holder()}: a deploy is running (or runs "
                "on another host, where this repair cannot see it); nothing was changed"
            )
            held = False
    return held


def resolve_pending(stack: Stack, confirm: bool) -> list[Action] | None:
    """Looks up and resolves the pending operations; the actions taken, None if declined."""
    baseline = stack.export()
    revealed = stack.export(show_secrets=True)
    if not revealed.pending:
        say("no pending operations")
        return []
    world = World(revealed)
    try:
        actions = [decide(operation, world) for operation in revealed.pending]
    finally:
        world.close()
    for action in actions:
        say(action.line)
    if confirm and input("repair: apply these to the state? [y/N] ").strip().lower() != "y":
        return None
    current = stack.export()
    if (current.resources, current.pending) != (baseline.resources, baseline.pending):
        raise EditError("the state changed while the repair looked (a deploy ran): run it again")
    edited = resolved(current.raw, actions)
    with tempfile.TemporaryDirectory(prefix="db-server-repair-") as folder:
        path = Path(folder) / "state.json"
        path.write_text(json.dumps(edited))  # secrets as the export wrote them: encrypted
        path.chmod(0o600)
        stack.run("stack", "import", "--file", str(path))
    counts = {do: sum(a.do == do for a in actions) for do in ("import", "clear", "refresh")}
    say(
        f"state: {counts['import']} imported, {counts['clear']} cleared, "
        f"{counts['refresh']} left to the refresh"
    )
    return actions


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="make repair", description=__doc__.split("\n")[0])
    parser.add_argument("stack")
    parser.add_argument("--yes", action="store_true", help="no questions (scripts, cron, CI)")
    parser.add_argument("up_flags", nargs="*", help="more flags for the final pulumi up")
    args = parser.parse_args(argv)
    interactive = sys.stdin.isatty()
    if not args.yes and not interactive:
        say("no terminal to ask on: run it as `make repair YES=1` (or --yes); nothing changed")
        return 2
    stack = Stack(args.stack)
    try:
        if not release_stale_locks(stack):
            return LOCKED
        actions = resolve_pending(stack, confirm=not args.yes)
    except (PulumiError, UnreachableError, EditError, ValueError) as error:
        say(f"stopped, nothing more changed: {error}")
        return 1
    if actions is None:
        say("declined; the state is as it was")
        return 1
    replace = [flag for a in actions if a.replace for flag in ("--replace", a.urn)]
    up = ["up", "--refresh", "--run-program", *replace, *(["--yes"] if args.yes else [])]
    say("pulumi " + " ".join([*up, *args.up_flags]))
    code = stack.stream(*up, *args.up_flags)
    say("done" if code == 0 else f"pulumi up failed (exit {code}); run `make repair` again")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
