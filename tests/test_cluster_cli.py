"""Issue 23: `queue add --cluster`, `[cluster] default` and `cluster status`, through the
real CLI against a real redis-server; and the one-line errors when there is no server."""

from __future__ import annotations

import subprocess
import time

import pytest

from helpers import torchsm_executable, wait_for, write_config
from redis_server import free_port
from torchsm.cluster import pending, work
from torchsm.tiers import Tier


def test_queue_add_cluster_prints_the_item_id_and_puts_it_on_the_tier_stream(cli, redis_db):
    result = cli("queue", "add", "--cluster", "shared job", "--priority", "high",
                 TORCHSM_REDIS_URL=redis_db.url)
    item_id = result.out.strip()
    assert result.out == f"{item_id}\n" and result.err == ""  # the id alone, as a local add
    [(_, fields)] = redis_db.client().xrange(work.stream_of("high"))
    assert fields[b"item_id"].decode() == item_id and fields[b"text"] == b"shared job"
    assert cli("queue", "list", "--json").json() == []  # not on the local queue


def test_queue_add_cluster_json(cli, redis_db):
    data = cli("queue", "add", "--cluster", "shared", "--json",
               TORCHSM_REDIS_URL=redis_db.url).json()
    assert data["cluster"] is True and data["priority"] == "medium" and data["added"] is True
    assert data["kept"] is False
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


def test_an_unreachable_server_is_one_line_and_quick(cli, refused_url):
    started = time.monotonic()
    result = cli.fails("cluster", "status", TORCHSM_REDIS_URL=refused_url)
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


def test_queue_add_cluster_with_the_server_away_keeps_the_item_here_until_it_answers(
        cli, home, start_redis):
    """Before: the add failed with one line, and the item was lost unless retried by hand."""
    port = free_port()
    url = dict(TORCHSM_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    started = time.monotonic()
    kept = cli("queue", "add", "--cluster", "first", "--priority", "high", "--json", **url)
    assert time.monotonic() - started < 20  # generous: a CLI start plus a few retries
    data = kept.json()
    assert (data["kept"], data["added"], data["cluster"]) == (True, False, True)
    second = cli("queue", "add", "--cluster", "second", **url)
    second_id = second.out.strip()
    assert second.out == f"{second_id}\n"  # stdout is the id either way, for scripts
    assert second.err == (f"torchsm: warning: cluster server away: {second_id} is kept here "
                          "and goes to the cluster when the server answers\n")
    assert cli("queue", "list", "--json").json() == []  # not on the local queue
    server = start_redis(port=port)
    third_id = cli("queue", "add", "--cluster", "third", **url).out.strip()
    client = server.client()
    assert _cluster_texts(client) == {"high": [("first", data["id"])],
                                      "medium": [("second", second_id), ("third", third_id)]}
    assert pending.waiting(home) == []


def test_kept_adds_delivered_twice_at_once_or_after_a_kill_arrive_once(
        cli, home, start_redis):
    port = free_port()
    url = dict(TORCHSM_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    ids = [cli("queue", "add", "--cluster", f"job {n}", "--json", **url).json()["id"]
           for n in range(20)]
    server = start_redis(port=port)
    killed = subprocess.Popen([*torchsm_executable(), "queue", "add", "--cluster", "k"],
                              env=cli.env(**url), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for(lambda: server.client().xlen(work.stream_of("medium")) > 0, timeout=20,
             every=0.005)
    killed.kill()  # kill -9, mid-delivery (or just after it)
    killed.wait()
    print("kept adds left by the kill:", len(pending.waiting(home)))
    both = [subprocess.Popen([*torchsm_executable(), "queue", "add", "--cluster",
                              f"racer {n}"], env=cli.env(**url), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for n in range(2)]
    assert all(p.wait(60) == 0 for p in both), [p.stderr.read() for p in both]
    found = [item_id for _, item_id in _cluster_texts(server.client())["medium"]]
    assert sorted(i for i in found if i in ids) == sorted(ids)  # each kept add once
    assert len(found) == len(set(found))
    assert pending.waiting(home) == []


@pytest.mark.parametrize("content", ['{"id": "x", "text": ', '[1, 2]',
                                     '{"id": "bad id", "text": "t", "priority": "high"}',
                                     '{"id": "ok-id", "text": "", "priority": "nope"}'],
                         ids=["cut-short", "not-an-object", "bad-id", "bad-text-and-tier"])
def test_a_kept_add_that_cannot_be_read_is_set_aside_and_the_others_still_go(
        cli, home, redis_db, content):
    """Before: a kept file that was not a whole add (a disk full, a hand edit) raised in
    every later `queue add --cluster` and every supervisor's turn, and nothing kept after
    it ever went. Now it is set aside (renamed, nothing deleted), with a warning."""
    url = dict(TORCHSM_REDIS_URL=redis_db.url)
    folder = pending.kept_dir(home)
    folder.mkdir()
    (folder / "00000000000000000001-broken.json").write_text(content)
    kept = pending.keep(home, "kept behind it", Tier.HIGH)
    result = cli("queue", "add", "--cluster", "new one", **url)
    assert result.err.startswith("torchsm: warning: a kept cluster add cannot be read")
    assert result.err.count("\n") == 1
    texts = _cluster_texts(redis_db.client())
    assert texts["high"] == [("kept behind it", kept.item_id)]
    assert [text for text, _ in texts["medium"]] == ["new one"]
    assert [p.name for p in folder.iterdir()] == ["00000000000000000001-broken.json.unreadable"]


def _cluster_texts(client) -> dict[str, list[tuple[str, str]]]:
    """tier -> (text, item id) of each entry on its stream, in order."""
    found = {}
    for tier in ("high", "medium"):
        entries = client.xrange(work.stream_of(tier))
        found[tier] = [(f[b"text"].decode(), f[b"item_id"].decode()) for _, f in entries]
    return found


def test_a_supervisors_turn_delivers_the_kept_adds_and_is_quiet_while_the_server_is_away(
        home, start_redis, refused_url):
    from torchsm.cluster.server import connect
    from torchsm.cluster.settings import ClusterSettings

    settings = ClusterSettings("alpha", 5.0, 30.0, 3, 3600)
    kept = pending.keep(home, "kept job", Tier.LOW)
    with connect(refused_url) as away:
        assert pending.deliver_kept(home, work.ClusterWork(away, settings), pytest.fail) == []
    assert len(pending.waiting(home)) == 1
    server = start_redis()
    with connect(server.url) as back:
        (added,) = pending.deliver_kept(home, work.ClusterWork(back, settings), pytest.fail)
    assert (added.item_id, added.added, added.priority) == (kept.item_id, True, Tier.LOW)
    assert pending.waiting(home) == []
