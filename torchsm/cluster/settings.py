"""What the cluster needs of a home's config, resolved once: this host's name (the
machine's when `[cluster] host` is empty) and the item attempts ([queue] max_attempts when
`[cluster] max_attempts` is 0)."""

from __future__ import annotations


from torchsm.config import Config, cluster_host, in_cluster, is_host_name
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
        host=checked_host(config), heartbeat_s=cluster.heartbeat_s,
        lease_s=cluster.lease_s, max_attempts=cluster.max_attempts or config.queue.max_attempts,
        ttl_s=max(1, int(config.mirror.dedup_ttl_s)))


def checked_host(config: Config) -> str:
    """This host's name (torchsm.config.cluster_host); the machine's must be able to name
    a cluster host when `[cluster] host` does not (a configured one is checked as read)."""
    name = cluster_host(config)
    if not config.cluster.host and not is_host_name(name):
        raise InvalidConfigValue("cluster.host", f"is needed: this machine's host name "
                                 f"{name!r} cannot name a cluster host")
    return name


def server_url(config: Config) -> str:
    """The cluster's server: the mirror's `redis_url`, which a cluster cannot do without."""
    if config.redis_url == "off":
        raise ClusterNoServer()
    return config.redis_url


enabled = in_cluster  # the one switch, in torchsm.config: the hook path asks it too
