"""Issue 23: `queue add --cluster`, `[cluster] default` and `cluster status`, through the
real CLI against a real redis-server; and the one-line errors when there is no server."""

from __future__ import annotations

import time

import pytest

from helpers import write_config
from torchsm.cluster import work


def test_queue_add_cluster_prints_the_item_id_and_puts_it_on_the_tier_stream(cli, redis_db):
    result = cli("queue", "add", "--cluster", "shared job", "--priority", "high",
                 TORCHSM_REDIS_URL=redis_db.url)
    item_id = result.out.strip()
    [(_, fields)] = redis_db.client().xrange(work.stream_of("high"))
    assert fields[b"item_id"].decode() == item_id and fields[b"text"] == b"shared job"
    assert cli("queue", "list", "--json").json() == []  # not on the local queue


def test_queue_add_cluster_json(cli, redis_db):
    data = cli("queue", "add", "--cluster", "shared", "--json",
               TORCHSM_REDIS_URL=redis_db.url).json()
    assert data["cluster"] is True and data["priority"] == "medium" and data["added"] is True
    assert data["stream"] == work.stream_of("medium") and data["id"]


def test_cluster_default_sends_queue_add_to_the_cluster(cli, home, redis_db):
    write_config(home, "[cluster]\ndefault = true\nhost = \"alpha\"\n")
    url = dict(TORCHSM_REDIS_URL=redis_db.url)
    cli("queue", "add", "to the cluster", **url)
    cli("queue", "add", "kept here", "--local", **url)
    assert redis_db.client().xlen(work.stream_of("medium")) == 1
    assert [i["text"] for i in cli("queue", "list", "--json").json()] == ["kept here"]


def test_cluster_and_nova_together_are_a_usage_error(cli, redis_db):
    result = cli.fails("queue", "add", "--cluster", "x", "--nova", "torch", code=2,
                       TORCHSM_REDIS_URL=redis_db.url)
    assert "--nova" in result.err.splitlines()[-1]


def test_cluster_status_shows_hosts_streams_and_dead_letters(cli, home, redis_db):
    write_config(home, "[cluster]\nhost = \"alpha\"\n")
    url = dict(TORCHSM_REDIS_URL=redis_db.url)
    for text in ("one", "two"):
        cli("queue", "add", "--cluster", text, "--priority", "high", **url)
    from torchsm.cluster.hosts import Hosts
    from torchsm.cluster.server import connect
    server = connect(redis_db.url)
    Hosts(server, 30).beat("alpha")
    item = work.ClusterWork(server, _settings()).claim("alpha", "torch")
    server.close()
    data = cli("cluster", "status", "--json", **url).json()
    assert data["host"] == "alpha"
    assert [(h["host"], h["alive"]) for h in data["hosts"]] == [("alpha", True)]
    high = next(s for s in data["streams"] if s["priority"] == "high")
    assert (high["length"], high["lag"], high["pending"]) == (2, 1, 1)
    assert high["consumers"] == {"alpha:torch": 1}
    assert data["dead_letters"] == 0 and item is not None
    text = cli("cluster", "status", **url).out
    assert "alpha" in text and "alive" in text and work.stream_of("high") in text
    assert "dead letters" in text


def _settings():
    from torchsm.cluster.settings import ClusterSettings

    return ClusterSettings(host="alpha", heartbeat_s=5, lease_s=30, max_attempts=3, ttl_s=60)


@pytest.mark.parametrize("args", [["queue", "add", "--cluster", "x"], ["cluster", "status"]])
def test_without_a_server_cluster_commands_fail_in_one_line(cli, args):
    result = cli.fails(*args, TORCHSM_REDIS_URL="off")
    assert result.err == ("torchsm: error: the cluster needs a server: set `redis_url` in "
                          "torchsm.toml (it is \"off\")\n")
    assert cli("queue", "list", "--json").json() == []


@pytest.mark.parametrize("args", [["queue", "add", "--cluster", "x"], ["cluster", "status"]])
def test_an_unreachable_server_is_one_line_and_quick(cli, refused_url, args):
    started = time.monotonic()
    result = cli.fails(*args, TORCHSM_REDIS_URL=refused_url)
    assert time.monotonic() - started < 20  # generous: a CLI start plus a few retries
    assert result.err.startswith("torchsm: error: cluster server unreachable at redis://")
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert cli("queue", "list", "--json").json() == []


def test_an_empty_cluster_item_is_refused_like_a_local_one(cli, redis_db):
    result = cli.fails("queue", "add", "--cluster", "  ", TORCHSM_REDIS_URL=redis_db.url)
    assert result.err == "torchsm: error: a work item needs some text\n"
    assert redis_db.client().xlen(work.stream_of("medium")) == 0


def test_a_malformed_server_url_is_a_config_error(cli):
    result = cli.fails("cluster", "status", TORCHSM_REDIS_URL="nonsense")
    assert result.err.startswith("torchsm: error: redis_url: ") and result.err.count("\n") == 1
