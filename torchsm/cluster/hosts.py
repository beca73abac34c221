"""The cluster's hosts and their heartbeats: one sorted set, host name -> the server's
time of its last beat.

A host is alive while its last beat is at most `lease_s` old, on the server's clock: a
beat is written by a Lua script that reads `TIME` on the server, and `now` defaults to the
server's time, so no host's clock ever decides whether another host is dead.
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


def is_alive(last_beat: float | None, now: float, lease_s: float) -> bool:
    """A host that beat within the lease is alive; one that never beat is not. (The Lua
    twin of this rule is work.RECLAIM_SCRIPT's `dead`.)"""
    return last_beat is not None and now - last_beat <= lease_s


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
        now = self.server.time() if now is None else now
        return sorted(h for h, beat in self.last_beats().items()
                      if is_alive(beat, now, self.lease_s))

    def dead_hosts(self, now: float | None = None) -> list[str]:
        """Hosts heard of once and silent for longer than the lease."""
        now = self.server.time() if now is None else now
        return sorted(h for h, beat in self.last_beats().items()
                      if not is_alive(beat, now, self.lease_s))
