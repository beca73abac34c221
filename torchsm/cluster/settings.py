"""What the cluster needs of a home's config, resolved once: this host's name (the
machine's when `[cluster] host` is empty) and the item attempts ([queue] max_attempts when
`[cluster] max_attempts` is 0)."""

from __future__ import annotations

import os

from torchsm.config import Config, is_host_name
from torchsm.errors import ClusterNoServer, InvalidConfigValue
from torchsm.records import record


@record
class ClusterSettings:
    host: str
    heartbeat_s: float
    lease_s: float
    max_attempts: int
    ttl_s: int  # how long an item id and a done marker are remembered


def cluster_settings(config: Config) -> ClusterSettings:
    cluster = config.cluster
    return ClusterSettings(
        host=cluster.host or machine_host_name(), heartbeat_s=cluster.heartbeat_s,
        lease_s=cluster.lease_s, max_attempts=cluster.max_attempts or config.queue.max_attempts,
        ttl_s=max(1, int(config.mirror.dedup_ttl_s)))


def machine_host_name() -> str:
    """The machine's host name, when it can name a cluster host."""
    name = os.uname().nodename
    if not is_host_name(name):
        raise InvalidConfigValue("cluster.host", f"is needed: this machine's host name "
                                 f"{name!r} cannot name a cluster host")
    return name


def server_url(config: Config) -> str:
    """The cluster's server: the mirror's `redis_url`, which a cluster cannot do without."""
    if config.redis_url == "off":
        raise ClusterNoServer()
    return config.redis_url


def enabled(config: Config) -> bool:
    """Whether the home is a host of a cluster: `[cluster] enabled`, with a server."""
    return config.cluster.enabled and config.redis_url != "off"
