"""The cluster's hosts and their heartbeats: one sorted set, host name -> the server's
time of its last beat.

A host is alive while its last beat is at most `lease_s` old, on the server's clock: a
beat is written by a Lua script that reads `TIME` on the server, and `now` defaults to the
server's time, so no host's clock ever decides whether another host is dead.

The server's own start counts as a beat of every host (`is_alive`'s `up_since`). A server
restored from a snapshot (Dragonfly keeps no append-only file; a Redis restart from an RDB
of minutes ago) holds beats as old as the snapshot, while the hosts beat on until the
crash and were cut off only for the restart's seconds, less than their lease, so their
fail-closed did not stop their sessions. Judged on the restored beats alone, the first
host to reclaim would take over every other host's items at once: two executions. Counted
from the server's start instead, every host has a whole lease on the restored server to
beat again, and one that stays silent is taken over one lease after the restart. The
start is the server's uptime (`Server.up_since`), which no snapshot can carry: a key the
cluster wrote would come back from the snapshot with its old value.
"""

from __future__ import annotations

from torchsm.cluster.server import Server

HOSTS_KEY = "torch.cluster.hosts"

# KEYS: the hosts set; ARGV: host. Returns the server's TIME (seconds, microseconds).
BEAT_SCRIPT = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
return t
"""


def is_alive(last_beat: float | None, now: float, lease_s: float,
             up_since: float | None = None) -> bool:
    """A host that beat within the lease is alive, the server's start (`up_since`)
    counting as a beat; one that never beat is not, once the server has been up a lease.
    (The Lua twin of this rule is work_scripts.RECLAIM's `dead`.)"""
    seen = max((t for t in (last_beat, up_since) if t is not None), default=None)
    return seen is not None and now - seen <= lease_s


class Hosts:
    def __init__(self, server: Server, lease_s: float):
        self.server = server
        self.lease_s = lease_s
        self._beat = server.script(BEAT_SCRIPT)

    def beat(self, host: str) -> float:
        """Tell the cluster `host` is alive; returns the server's time of the beat."""
        seconds, microseconds = self.server.run(self._beat, [HOSTS_KEY], [host])
        return int(seconds) + int(microseconds) / 1e6

    def last_beats(self) -> dict[str, float]:
        """Every host the cluster has heard of -> the server's time of its last beat."""
        with self.server.answers():
            pairs = self.server.client.zrange(HOSTS_KEY, 0, -1, withscores=True)
        return {name.decode(): score for name, score in pairs}

    def alive_hosts(self, now: float | None = None) -> list[str]:
        now, up_since = self._clock(now)
        return sorted(h for h, beat in self.last_beats().items()
                      if is_alive(beat, now, self.lease_s, up_since))

    def dead_hosts(self, now: float | None = None) -> list[str]:
        """Hosts heard of once and silent for longer than the lease (and than the
        server has been up)."""
        now, up_since = self._clock(now)
        return sorted(h for h, beat in self.last_beats().items()
                      if not is_alive(beat, now, self.lease_s, up_since))

    def _clock(self, now: float | None) -> tuple[float, float]:
        server_now, up_since = self.server.clock()
        return server_now if now is None else now, up_since
