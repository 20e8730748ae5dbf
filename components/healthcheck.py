"""Docker healthchecks with durations written the way the docker provider reads them back."""

import pulumi_docker as docker


def go_duration(seconds: int) -> str:
    """Whole seconds as Go's ``time.Duration.String()`` writes them: ``2m0s``, not ``120s``.

    The provider stores what Docker reports, in that form; any other spelling of the same
    duration shows as a change on every preview.
    """
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def shell_healthcheck(
    command: str,
    *,
    interval_s: int,
    timeout_s: int,
    retries: int,
    start_period_s: int,
) -> docker.ContainerHealthcheckArgs:
    """A ``CMD-SHELL`` healthcheck.

    No ``start_interval``: Docker Engine before 25 (API 1.44) refuses to create a container that
    sets one, and Debian's and Ubuntu's own engines are older.
    """
    return docker.ContainerHealthcheckArgs(
        tests=["CMD-SHELL", command],
        interval=go_duration(interval_s),
        timeout=go_duration(timeout_s),
        retries=retries,
        start_period=go_duration(start_period_s),
    )
