"""Issue 23: the cluster's shared work on a real redis-server: consumer groups, one per
tier stream, idempotent adds, fenced dones, and claims taken over only from dead hosts.

Time for leases is the server's (`TIME`): the tests pass `now` as the server's time plus
an offset where a host must look dead, instead of waiting a lease out; one test waits a
short real lease out, with a host that keeps beating.
"""

from __future__ import annotations

import threading
import time

import pytest

from torchsm.cluster import work
from torchsm.cluster.hosts import Hosts, is_alive
from torchsm.cluster.server import connect
from torchsm.cluster.settings import ClusterSettings

LEASE_S = 30.0


def settings(**changes) -> ClusterSettings:
    values = dict(host="alpha", heartbeat_s=5.0, lease_s=LEASE_S, max_attempts=3,
                  ttl_s=3600)
    values.update(changes)
    return ClusterSettings(**values)


@pytest.fixture
def server(redis_db):
    connection = connect(redis_db.url)
    yield connection
    connection.close()


@pytest.fixture
def shared(server):
    """The cluster's work and its hosts, as every host sees them."""
    return work.ClusterWork(server, settings()), Hosts(server, LEASE_S)


def test_an_item_added_twice_under_one_id_is_added_once(shared, redis_db):
    queue, _ = shared
    first = queue.add("build the index", "high", item_id="job-1")
    again = queue.add("build the index", "high", item_id="job-1")
    assert (first.added, again.added) == (True, False)
    assert again.entry_id == first.entry_id and again.item_id == "job-1"
    assert redis_db.client().xlen(work.stream_of("high")) == 1


def test_an_item_without_an_id_gets_a_fresh_one(shared):
    queue, _ = shared
    one, two = queue.add("same text"), queue.add("same text")
    assert one.added and two.added and one.item_id != two.item_id


def test_a_bad_item_id_is_refused(shared):
    from torchsm.errors import InvalidClusterItem

    queue, _ = shared
    with pytest.raises(InvalidClusterItem):
        queue.add("text", item_id="two words")


def test_the_most_urgent_tier_is_claimed_first(shared):
    queue, hosts = shared
    for text, tier in (("later", "low"), ("now", "critical"), ("soon", "medium")):
        queue.add(text, tier)
    claimed = []
    for _ in range(3):
        item = queue.claim("alpha", "torch")
        claimed.append((item.text, item.priority.value, item.deliveries, item.owner))
        assert queue.done(item, "alpha", "torch") == work.DONE
    assert claimed == [("now", "critical", 1, "alpha:torch"), ("soon", "medium", 1, "alpha:torch"),
                       ("later", "low", 1, "alpha:torch")]
    assert queue.claim("alpha", "torch") is None


def test_a_claim_again_hands_back_the_item_already_held(shared):
    """A Nova works one item at a time: a retried claim (its reply lost) or a restarted
    supervisor gets the item it holds, never a second one that nobody would finish."""
    queue, _ = shared
    queue.add("first")
    queue.add("second")
    held = queue.claim("alpha", "torch")
    again = queue.claim("alpha", "torch")
    assert (again.item_id, again.entry_id, again.deliveries) == (held.item_id, held.entry_id, 1)


def test_two_consumers_never_get_the_same_entry(redis_db):
    setup = connect(redis_db.url)
    ids = {work.ClusterWork(setup, settings()).add(f"item {n}").item_id for n in range(60)}
    taken: dict[str, list[str]] = {}

    def consume(host: str) -> None:
        server = connect(redis_db.url)
        queue = work.ClusterWork(server, settings(host=host))
        mine = taken.setdefault(host, [])
        while (item := queue.claim(host, "torch")) is not None:
            mine.append(item.item_id)
            assert queue.done(item, host, "torch") == work.DONE
        server.close()

    threads = [threading.Thread(target=consume, args=(f"host{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [i for items in taken.values() for i in items]
    assert sorted(everything) == sorted(ids)  # none lost, none twice
    setup.close()


def pending_entries(redis_db, tier: str = "medium") -> int:
    return redis_db.client().xpending(work.stream_of(tier), work.GROUP)["pending"]


def test_done_by_the_owner_counts_once(shared, redis_db):
    queue, _ = shared
    queue.add("once")
    item = queue.claim("alpha", "torch")
    assert queue.done(item, "alpha", "torch") == work.DONE
    assert queue.done(item, "alpha", "torch") == work.ALREADY_DONE
    assert pending_entries(redis_db) == 0


def test_a_done_from_another_consumer_does_not_count(shared, redis_db):
    queue, _ = shared
    queue.add("mine")
    item = queue.claim("alpha", "torch")
    assert [queue.done(item, "beta", "torch"), queue.done(item, "alpha", "echo")] == \
        [work.LOST, work.LOST]
    assert pending_entries(redis_db) == 1
    assert queue.done(item, "alpha", "torch") == work.DONE


def test_a_dead_hosts_claim_is_taken_over_after_the_lease(shared, server):
    queue, hosts = shared
    beat = hosts.beat("alpha")
    hosts.beat("beta")
    queue.add("long job", "high")
    lost = queue.claim("alpha", "torch")
    assert queue.reclaim(now=beat + LEASE_S - 1) == work.Reclaimed([], [])
    assert queue.claim("beta", "echo") is None  # nothing for beta while alpha lives
    assert queue.reclaim(now=beat + LEASE_S + 1) == work.Reclaimed([lost.item_id], [])
    taken = queue.claim("beta", "echo")
    assert (taken.item_id, taken.deliveries, taken.owner) == (lost.item_id, 2, "beta:echo")


def test_a_late_done_after_a_takeover_does_not_count(shared):
    queue, hosts = shared
    beat = hosts.beat("alpha")
    queue.add("contested")
    lost = queue.claim("alpha", "torch")
    queue.reclaim(now=beat + LEASE_S + 1)
    taken = queue.claim("beta", "echo")
    assert queue.done(lost, "alpha", "torch") == work.LOST
    assert queue.done(taken, "beta", "echo") == work.DONE
    assert queue.done(lost, "alpha", "torch") == work.LOST


def test_a_host_that_never_beat_is_dead_once_the_server_has_been_up_a_lease(shared, server):
    queue, _ = shared
    queue.add("orphan")
    item = queue.claim("ghost", "torch")
    up_since = server.up_since()
    assert queue.reclaim(now=up_since + LEASE_S - 1) == work.Reclaimed([], [])
    assert queue.reclaim(now=up_since + LEASE_S + 1) == work.Reclaimed([item.item_id], [])


def test_a_live_hosts_long_claim_is_never_taken(redis_db):
    """A session runs for hours: its claim sits idle far past the lease, and stays its
    host's while the host beats. The real clock: a 1 s lease waited out."""
    server = connect(redis_db.url)
    lease = 1.0
    queue, hosts = work.ClusterWork(server, settings(lease_s=lease)), Hosts(server, lease)
    queue.add("hours of work")
    queue.add("short work")
    hosts.beat("alpha")
    hosts.beat("beta")
    long_claim = queue.claim("alpha", "torch")
    lost = queue.claim("beta", "echo")
    deadline = time.monotonic() + 2.5 * lease
    while time.monotonic() < deadline:  # alpha keeps beating, beta has gone silent
        hosts.beat("alpha")
        time.sleep(0.1)
    assert hosts.alive_hosts() == ["alpha"] and hosts.dead_hosts() == ["beta"]
    assert queue.reclaim() == work.Reclaimed([lost.item_id], [])
    assert queue.claim("alpha", "torch").item_id == long_claim.item_id
    assert queue.done(long_claim, "alpha", "torch") == work.DONE
    server.close()


def test_an_item_delivered_max_attempts_times_goes_to_the_dead_letter_stream(redis_db, server):
    queue = work.ClusterWork(server, settings(max_attempts=2))
    added = queue.add("poison", "low")
    queue.claim("alpha", "torch")
    far = server.time() + LEASE_S + 1  # no host beats: every owner is dead
    assert queue.reclaim(now=far) == work.Reclaimed([added.item_id], [])
    second = queue.claim("beta", "torch")
    assert second.deliveries == 2
    assert queue.reclaim(now=far) == work.Reclaimed([], [added.item_id])
    assert queue.claim("gamma", "torch") is None
    client = redis_db.client()
    [(_, fields)] = client.xrange(work.DEAD_STREAM)
    assert fields[b"item_id"] == added.item_id.encode() and fields[b"deliveries"] == b"2"
    assert fields[b"text"] == b"poison" and fields[b"owner"] == b"beta:torch"
    assert pending_entries(redis_db, "low") == 0
    assert queue.done(second, "beta", "torch") == work.LOST


def test_leases_follow_the_servers_clock_not_the_hosts(shared, server, monkeypatch):
    queue, hosts = shared
    hosts.beat("alpha")
    queue.add("job")
    queue.claim("alpha", "torch")
    honest = (hosts.alive_hosts(), hosts.dead_hosts(), queue.reclaim())
    real_time = time.time
    for skew in (-86400.0, 3 * LEASE_S, 86400.0):
        monkeypatch.setattr(time, "time", lambda: real_time() + skew)
        assert (hosts.alive_hosts(), hosts.dead_hosts(), queue.reclaim()) == honest
        assert abs(hosts.beat("alpha") - server.time()) < 5
    assert honest == (["alpha"], [], work.Reclaimed([], []))


def test_aliveness_is_a_beat_within_the_lease():
    assert is_alive(100.0, now=130.0, lease_s=30)
    assert not is_alive(100.0, now=130.5, lease_s=30)
    assert not is_alive(None, now=130.0, lease_s=30)
    # the server's start counts as a beat: a lease to beat again after a restore
    assert is_alive(10.0, now=130.0, lease_s=30, up_since=110.0)
    assert is_alive(None, now=130.0, lease_s=30, up_since=110.0)
    assert not is_alive(10.0, now=140.5, lease_s=30, up_since=110.0)
    assert is_alive(125.0, now=140.5, lease_s=30, up_since=110.0)


def test_the_groups_come_back_after_the_server_lost_everything(start_redis):
    """A server restarted without persistence has no streams nor groups: adds and claims
    make them again."""
    first = start_redis()
    server = connect(first.url)
    queue = work.ClusterWork(server, settings())
    queue.add("before")
    first.kill()
    first.start()
    assert queue.claim("alpha", "torch") is None
    queue.add("after")
    assert queue.claim("alpha", "torch").text == "after"
    server.close()


def test_pages_of_pending_entries_are_read_whole(shared, server):
    """The scripts read the PEL a page (100) at a time: a held entry past the first page
    is found, and every dead host's entry is taken over."""
    queue, _ = shared
    ids = [queue.add(f"item {n}").item_id for n in range(150)]
    held = {queue.claim("alpha", f"n{n}").item_id for n in range(150)}
    assert held == set(ids)
    assert queue.claim("alpha", "n149").item_id == ids[149]  # past the first page
    reclaimed = queue.reclaim(now=server.time() + LEASE_S + 1)
    assert sorted(reclaimed.pooled) == sorted(ids) and reclaimed.dead == []


@pytest.mark.parametrize("host, nova", [("al:pha", "torch"), ("alpha", "To:rch"), ("", "torch")])
def test_a_consumer_is_a_host_name_and_a_nova_name(shared, host, nova):
    """`:` parts a consumer into host and Nova: a name holding one would make a live
    host's claims look like another host's."""
    from torchsm.errors import InvalidName

    queue, _ = shared
    queue.add("x")
    with pytest.raises(InvalidName):
        queue.claim(host, nova)


# --- issue 23, supervisors: a failed attempt, a release, a claim above a tier -------------

@pytest.mark.parametrize("give_back, next_delivery", [("fail", 2), ("release", 1)])
def test_an_item_given_back_is_claimed_again_with_or_without_the_attempt_counted(
        shared, give_back, next_delivery):
    queue, _ = shared
    queue.add("flaky", "high")
    first = queue.claim("alpha", "torch")
    assert getattr(queue, give_back)(first, "alpha", "torch") == work.RETRY
    again = queue.claim("beta", "helix")
    assert (again.item_id, again.deliveries, again.owner) == (first.item_id, next_delivery,
                                                              "beta:helix")
    assert getattr(queue, give_back)(first, "alpha", "torch") == work.LOST  # beta's now


def test_a_failed_last_attempt_goes_to_the_dead_letter_stream(shared, redis_db):
    queue, _ = shared  # max_attempts 3
    queue.add("always fails", "low")
    answers = []
    for _ in range(3):
        item = queue.claim("alpha", "torch")
        answers.append((item.deliveries, queue.fail(item, "alpha", "torch", error="boom")))
    assert answers == [(1, work.RETRY), (2, work.RETRY), (3, work.DEAD)]
    assert queue.claim("alpha", "torch") is None
    (_, fields), = redis_db.client().xrange(work.DEAD_STREAM)
    assert (fields[b"item_id"], fields[b"error"]) == (item.item_id.encode(), b"boom")


def test_a_fail_from_a_consumer_that_lost_the_item_does_not_count(shared):
    queue, _ = shared
    queue.add("taken over", "medium")
    item = queue.claim("alpha", "torch")
    assert queue.fail(item, "beta", "torch") == work.LOST
    assert queue.claim("alpha", "torch").entry_id == item.entry_id  # still alpha's


def test_a_claim_above_a_tier_leaves_that_tier_and_the_ones_below(shared):
    queue, _ = shared
    queue.add("medium work", "medium")
    assert queue.claim("alpha", "torch", more_urgent_than="medium") is None
    assert queue.claim("alpha", "torch", more_urgent_than="low").text == "medium work"


def test_a_server_restored_from_an_old_snapshot_gives_every_host_a_lease_to_beat_again(
        start_redis):
    """The snapshot holds beats older than the lease; the hosts beat on after it (on the
    live server, not in the snapshot) and lose it only for the restart's seconds. Measured
    before the grace: the first host to reclaim after the restore took over the live
    host's item at once (two executions)."""
    lease = 2.0
    redis = start_redis()
    server = connect(redis.url)
    queue, hosts = work.ClusterWork(server, settings(lease_s=lease)), Hosts(server, lease)
    for host in ("alpha", "beta", "gamma"):  # gamma dies before the restore
        hosts.beat(host)
        queue.add(f"{host}'s job", item_id=f"job-{host}")
        assert queue.claim(host, "torch").item_id == f"job-{host}"
    redis.client().save()  # the snapshot
    deadline = time.monotonic() + lease + 1
    while time.monotonic() < deadline:  # alpha and beta live on past the lease
        hosts.beat("alpha"), hosts.beat("beta")
        time.sleep(0.1)
    redis.kill()
    redis.start()  # restored from the snapshot: every beat in it is older than the lease
    hosts.beat("alpha")
    assert queue.reclaim() == work.Reclaimed([], [])  # beta had no lease to beat again yet
    assert hosts.dead_hosts() == []
    hosts.beat("beta")
    deadline = time.monotonic() + lease + 1
    while time.monotonic() < deadline:  # past the grace: gamma stays silent
        hosts.beat("alpha"), hosts.beat("beta")
        time.sleep(0.1)
    assert hosts.dead_hosts() == ["gamma"]
    assert queue.reclaim() == work.Reclaimed(["job-gamma"], [])
    assert [queue.claim(h, "torch").item_id for h in ("alpha", "beta")] == [
        "job-alpha", "job-beta"]
    server.close()


def test_waiting_says_whether_a_claim_would_find_an_item_and_takes_nothing(shared, redis_db):
    """A supervisor looks before it asks admission, and claims only once admitted."""
    queue, _ = shared
    assert not queue.waiting("alpha", "torch")  # no stream, no group yet
    queue.add("one", "medium")
    client = redis_db.client()
    assert queue.waiting("alpha", "torch") and queue.waiting("beta", "helix")
    assert client.xpending(work.stream_of("medium"), work.GROUP)["pending"] == 0  # untaken
    assert not queue.waiting("alpha", "torch", more_urgent_than="medium")  # a local tie wins
    item = queue.claim("alpha", "torch")
    assert queue.waiting("alpha", "torch")  # its own: a claim hands it back again
    assert not queue.waiting("beta", "helix")  # delivered to alpha
    queue.release(item, "alpha", "torch")
    assert queue.waiting("beta", "helix")  # in the pool
    queue.done(queue.claim("beta", "helix"), "beta", "helix")
    assert not queue.waiting("alpha", "torch") and not queue.waiting("beta", "helix")
    queue.add("two", "background")
    client.xdel(work.stream_of("background"),
                client.xrange(work.stream_of("background"))[0][0])  # gone before delivery
    assert not queue.waiting("alpha", "torch")
