"""Issue 23: the process pause. A host whose supervisors are paused (SIGSTOP: a stall, a
debugger, a swapped-out process) stops beating, and once its lease ends another host
takes its item over; its agent, not paused, must be stopped before then, as it is when
the supervisor dies or the server is away. The harness is tests/cluster_jepsen.py."""

from __future__ import annotations

import time

import pytest

import cluster_jepsen
from cluster_jepsen import HEARTBEAT_S, LEASE_S, agent_lines, make_hosts, resume, runs_of
from helpers import wait_for
from torchsm.cluster.hosts import HOSTS_KEY

pytestmark = pytest.mark.serial  # a lease of 3 s, and what happens within it


@pytest.fixture
def cluster(tmp_path):
    server = cluster_jepsen.Server(tmp_path / "redis")
    hosts = make_hosts(tmp_path, server, "ab")
    yield server, hosts
    for host in hosts.values():
        host.stop()
        host.proxy.close()
    server.redis.stop()


def started(root, item: str, host: str) -> list[dict]:
    return [line for line in agent_lines(root) if line["event"] == "start"
            and line["item"] == item and line["host"] == host]


def test_a_paused_supervisors_agent_is_stopped_before_its_item_is_taken_over(
        cluster, tmp_path):
    server, hosts = cluster
    queue = server.queue()
    queue.add("job work=8", "medium", item_id="long")
    hosts["a"].start()
    (first,) = wait_for(lambda: started(tmp_path, "long", "a"), timeout=30)
    hosts["b"].start()
    wait_for(lambda: server.redis.client().zscore(HOSTS_KEY, "b"), timeout=30)
    paused = hosts["a"].pause(supervisors_only=True)  # its keepers and agent run on
    paused_at = time.time()
    try:
        wait_for(lambda: started(tmp_path, "long", "b"), timeout=30, every=0.1)
    finally:
        resume(paused)
    runs = runs_of(agent_lines(tmp_path), {})
    a_run, b_run = [r for r in runs if r.item == "long"][:2]
    assert (a_run.host, b_run.host) == ("a", "b")
    # a's agent stopped before a's lease (its last beat at most a heartbeat before the
    # pause) ran out, and so before b started the item
    assert a_run.how == "stopped", runs
    assert a_run.end - paused_at < LEASE_S - HEARTBEAT_S
    assert a_run.end <= b_run.start


def test_an_agent_its_keeper_stopped_for_a_stale_beat_is_a_stop_not_a_failure(
        cluster, tmp_path):
    """Paused past the beat's bound but not past the lease: the keeper stops the agent,
    the supervisor resumes with a fresh beat, and reads the end as the stop it is: the
    item goes back uncounted (released), and nothing cools the Nova."""
    server, hosts = cluster
    server.queue().add("job work=6", "medium", item_id="long")
    a = hosts["a"].start()
    wait_for(lambda: started(tmp_path, "long", "a"), timeout=30)
    paused = a.pause(supervisors_only=True)
    time.sleep(LEASE_S - HEARTBEAT_S - 0.3)  # past the keeper's bound, short of the lease
    resume(paused)
    fates = wait_for(lambda: [e for e in a.answers() if e["item"] == "long"], timeout=30)
    assert (fates[0]["fate"], fates[0]["answer"]) == ("released", "back for another attempt"), fates
    runs = [r for r in runs_of(agent_lines(tmp_path), {}) if r.item == "long"]
    assert runs[0].how == "stopped"


def test_a_whole_host_paused_past_its_lease_stops_its_agent_as_it_resumes(cluster, tmp_path):
    """Everything of host a paused (supervisors, keeper, agent: a frozen VM) while b takes
    its item over. Nothing of a can act while it is frozen, so its agent's run overlaps
    b's from a's resume until it is stopped; what must hold is that it is stopped at once
    on resume (the keeper reads the stale beat at its first poll), before its end, and
    that its late word counts for nothing on the server."""
    server, hosts = cluster
    server.queue().add("job work=12", "medium", item_id="long")
    a = hosts["a"].start()
    wait_for(lambda: started(tmp_path, "long", "a"), timeout=30)
    hosts["b"].start()
    wait_for(lambda: server.redis.client().zscore(HOSTS_KEY, "b"), timeout=30)
    paused = a.pause(supervisors_only=False)
    try:
        wait_for(lambda: started(tmp_path, "long", "b"), timeout=30, every=0.1)
    finally:
        resumed_at = time.time()
        resume(paused)
    runs = wait_for(lambda: [r for r in runs_of(agent_lines(tmp_path), {})
                             if r.item == "long" and r.host == "a" and r.end], timeout=30)
    assert runs[0].how == "stopped"
    assert runs[0].end - resumed_at < 1.0  # the keeper's poll, and the agent's exit
    print(f"a's agent stopped {runs[0].end - resumed_at:.3f} s after its host resumed")
    (fate,) = wait_for(lambda: [e for e in a.answers() if e["item"] == "long"], timeout=30)
    assert fate["answer"] == "lost"  # b holds the item
