"""Issue 23: the `[cluster]` table of torchsm.toml and what the cluster resolves from it."""

from __future__ import annotations

import os

import pytest

from torchsm.config import Config, ClusterConfig, QueueConfig, parse_config
from torchsm.errors import ClusterNoServer, ConfigError


def test_the_cluster_table_is_read():
    cluster = parse_config({"cluster": {"host": "web-01.example", "default": True,
                                        "heartbeat_s": 2, "lease_s": 20,
                                        "max_attempts": 4}}).cluster
    assert cluster == ClusterConfig("web-01.example", True, 2.0, 20.0, 4)


@pytest.mark.parametrize("table, message", [
    ({"host": "alpha:1"}, "'cluster.host' must be a host name"),
    ({"host": "-alpha"}, "'cluster.host' must be a host name"),
    ({"host": "a" * 65}, "'cluster.host' must be a host name"),
    ({"heartbeat_s": 10, "lease_s": 10}, "'cluster.lease_s' must be longer than"),
    ({"lease_s": 0}, "'cluster.lease_s' must be a positive number"),
    ({"max_attempts": -1}, "'cluster.max_attempts' must not be negative"),
    ({"hosts": "x"}, "unknown key 'cluster.hosts'"),
])
def test_a_bad_cluster_table_names_its_key(table, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config({"cluster": table})


def test_settings_default_to_the_machines_name_and_the_queues_attempts():
    from torchsm.cluster.settings import cluster_settings

    settings = cluster_settings(Config(queue=QueueConfig(max_attempts=7)))
    assert (settings.host, settings.max_attempts) == (os.uname().nodename, 7)
    own = cluster_settings(Config(cluster=ClusterConfig(host="alpha", max_attempts=2)))
    assert (own.host, own.max_attempts) == ("alpha", 2)


def test_the_cluster_needs_a_server():
    from torchsm.cluster.settings import server_url

    with pytest.raises(ClusterNoServer):
        server_url(Config(redis_url="off"))
    assert server_url(Config(redis_url="redis://127.0.0.1:1/0")) == "redis://127.0.0.1:1/0"
