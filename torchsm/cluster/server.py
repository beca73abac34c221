"""The cluster's one connection to its server, and the server's clock.

redis-py, not the mirror's small wire client: the cluster is never on the hook path, so
its ~105 ms import is paid only by the commands and supervisors that use the cluster, and
it brings connection pools, scripts (EVALSHA with a fallback to EVAL) and retries with
exponential backoff. Its defaults (FIELD-NOTES: 10 retries of 5 s timeouts, ~4 s for a
refused connection) are replaced by short timeouts and two retries, exponential with full
jitter (so that hosts that lost the server together do not come back in step), and a host
cut off from the server knows within a second or so.

Leases and heartbeats use the server's `TIME`, never a host's clock: hosts' clocks drift,
and one clock read in one place cannot disagree with itself.
"""

from __future__ import annotations

from contextlib import contextmanager

from torchsm.errors import ClusterRefused, ClusterUnreachable, ConfigError
from torchsm.mirror.redis_wire import mask_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

CONNECT_TIMEOUT_S = 0.5
REPLY_TIMEOUT_S = 2.0
RETRIES = 2  # after the first try: three in all
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.05, 0.5


class Server:
    """A redis-py client on the cluster's server. Every call goes through `answers()`, so
    a failure is one TorchsmError line naming the server (its password masked)."""

    def __init__(self, url: str):
        self.url = mask_url(url)
        try:
            self.client = _client(url)
        except ValueError as exc:  # not a redis URL
            raise ConfigError(f"redis_url: {_one_line(exc)}") from None

    def time(self) -> float:
        """The server's clock, in seconds since the epoch."""
        with self.answers():
            seconds, microseconds = self.client.time()
        return seconds + microseconds / 1e6

    def up_since(self) -> float:
        """When the server (re)started, on its clock."""
        return self.clock()[1]

    def clock(self) -> tuple[float, float]:
        """The server's time and when it (re)started, in one round trip: TIME, and TIME
        less `INFO server`'s `uptime_in_seconds` (Dragonfly reports it too). Whole
        seconds, rounded down, so the start reads later than it was: the safe side for a
        grace counted from it."""
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        pipe.info("server")
        with self.answers():
            (seconds, microseconds), info = pipe.execute()
        now = seconds + microseconds / 1e6
        return now, now - float(info["uptime_in_seconds"])

    def script(self, lua: str):
        """A Lua script, run atomically on the server (EVALSHA, loaded on first use)."""
        return self.client.register_script(lua)

    def run(self, script, keys: list[str], args: list[Any]) -> Any:
        with self.answers():
            return script(keys=keys, args=args)

    @contextmanager
    def answers(self) -> Iterator[None]:
        """Translate redis-py's failures into the cluster's errors."""
        from redis import exceptions

        try:
            yield
        except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
            raise ClusterUnreachable(self.url, _one_line(exc)) from None
        except exceptions.RedisError as exc:
            raise ClusterRefused(self.url, _one_line(exc)) from None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(url: str) -> Server:
    return Server(url)


def _client(url: str):
    import redis
    from redis.backoff import FullJitterBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=REPLY_TIMEOUT_S,
        retry=Retry(FullJitterBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES),
        health_check_interval=30)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
