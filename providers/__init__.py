"""Dynamic providers: what the program manages that no provider package does."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pulumi.dynamic import DiffResult

if TYPE_CHECKING:
    from redis import Redis


def diff_fields(
    olds: dict[str, Any], news: dict[str, Any], compared: Sequence[str], replace_on: Sequence[str]
) -> DiffResult:
    """A diff over ``compared`` fields only: the pickled provider code (``__provider``) is left
    out, so a new version of the program changes nothing that is not different. A change to a
    ``replace_on`` field replaces the resource, the old one first."""
    changed = [key for key in compared if olds.get(key) != news.get(key)]
    return DiffResult(
        changes=bool(changed),
        replaces=[key for key in changed if key in replace_on],
        delete_before_replace=True,
    )


def redis_client(
    host: str,
    port: int,
    user: str,
    password: str,
    timeout_s: float,
    *,
    tls: bool = False,
    ca_file: str | None = None,
) -> "Redis":
    """A Redis client that tries each command once: the callers decide what a failure means,
    and a refused login must not be retried for seconds by the client itself. With ``tls``,
    the server's certificate must be signed by ``ca_file`` (or a system CA) and name ``host``."""
    # Imported here: the provider process needs redis, the program does not.
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Redis(
        host=host,
        port=port,
        username=user,
        password=password,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries=0),
        ssl=tls,
        ssl_ca_certs=ca_file,
        ssl_cert_reqs="required",
    )
