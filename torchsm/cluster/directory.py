"""Which host each Nova of the cluster lives on: one hash on the server, Nova -> host.

Each host publishes its own Novas with every intake pass (a supervisor's beat, `cluster
intake`), and drops the ones it no longer has, so `message send FROM TO` on one host can
tell a Nova of another host from a typo. A Nova's name is meant to be unique across the
cluster; when two hosts publish the same name, the latest pass wins.
"""

from __future__ import annotations

from typing import Callable

from torchsm.cluster.server import Server, connect
from torchsm.cluster.settings import enabled, server_url
from torchsm.config import Config
from torchsm.errors import ClusterRefused, ClusterUnreachable

NOVAS_KEY = "torch.cluster.novas"


def publish(server: Server, host: str, names: set[str]) -> None:
    """This host's Novas are `names`: add them, drop the ones it had and has no more."""
    with server.answers():
        known = server.client.hgetall(NOVAS_KEY)
        gone = [nova for nova, owner in known.items()
                if owner.decode() == host and nova.decode() not in names]
        pipe = server.client.pipeline(transaction=True)
        if names:
            pipe.hset(NOVAS_KEY, mapping=dict.fromkeys(sorted(names), host))
        if gone:
            pipe.hdel(NOVAS_KEY, *gone)
        pipe.execute()


def host_of(server: Server, name: str) -> str | None:
    """The host Nova `name` lives on; None when no host has published it."""
    with server.answers():
        host = server.client.hget(NOVAS_KEY, name)
    return None if host is None else host.decode()


def elsewhere(config: Config) -> Callable[[str], bool] | None:
    """For `message send`: whether a name that is no Nova of this home is one of another
    host's (None when the home is no host of a cluster). While the server is away it
    cannot tell, and says yes: the message waits in the outbox, and goes to the stream
    when the server answers."""
    if not enabled(config):
        return None

    def lives_elsewhere(name: str) -> bool:
        try:
            with connect(server_url(config)) as server:
                return host_of(server, name) is not None
        except (ClusterUnreachable, ClusterRefused):
            return True
    return lives_elsewhere
