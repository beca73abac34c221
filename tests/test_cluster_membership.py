"""Issue 23: the pure decisions behind a supervisor's cluster membership: when a host's
lease is at risk (fail closed), how long a cluster session's agent may outlive its
supervisor, what fate a cluster item gets, and which homes join the cluster."""

from __future__ import annotations

import pytest

from torchsm.agent import keeper
from torchsm.cluster.membership import (beat_limit_s, lease_at_risk, orphan_limit_s,
                                        stop_margin_s)
from torchsm.config import ClusterConfig, Config
from torchsm.outcomes import Outcome
from torchsm.supervisor import cluster_turns


@pytest.mark.parametrize("last, now, at_risk", [
    (None, 100.0, True),  # never beat: nothing to lean on
    (100.0, 100.0, False),
    (100.0, 126.9, False),
    (100.0, 127.0, True),  # lease 30 minus margin 3
    (100.0, 500.0, True),
])
def test_a_lease_is_at_risk_from_lease_minus_margin_after_the_last_good_beat(last, now,
                                                                            at_risk):
    assert lease_at_risk(last, now, lease_s=30, margin_s=3) is at_risk


def test_the_margin_leaves_room_for_the_stop_but_never_a_whole_heartbeat_of_the_lease():
    assert stop_margin_s(lease_s=30, heartbeat_s=5, stop_grace_s=10) == 10.5
    assert stop_margin_s(lease_s=6, heartbeat_s=5, stop_grace_s=10) == 0.75
    for lease, beat, grace in ((3, 0.5, 1), (30, 5, 10), (6, 5, 10), (2, 1, 0)):
        margin = stop_margin_s(lease, beat, grace)
        assert 0 <= margin < lease - beat  # a beat in time always keeps the lease safe


def test_an_orphaned_cluster_agent_stops_before_its_hosts_lease_can_end():
    lease, beat, grace = 3.0, 0.5, 1.0
    limit = orphan_limit_s(lease, beat, grace)
    assert limit == 1.0
    assert beat + limit + stop_margin_s(lease, beat, grace) <= lease
    assert 0 <= orphan_limit_s(2, 1.9, 10) < 0.1 and orphan_limit_s(2, 2, 10) == 0


def test_the_keeper_takes_an_orphan_limit():
    options = keeper.parse(["files", "--timeout", "60", "--orphaned-for", "1.5", "--", "x"])
    assert (options.timeout_s, options.orphaned_for_s, options.command) == (60, 1.5, ["x"])
    assert keeper.parse(["files", "--", "x"]).orphaned_for_s is None


def test_the_keeper_takes_a_beat_file_and_its_bound():
    options = keeper.parse(["files", "--beat", "/run/cluster.beat", "--beat-within", "1.5",
                            "--", "x"])
    assert (options.beat_file, options.beat_within_s) == ("/run/cluster.beat", 1.5)
    assert keeper.parse(["files", "--", "x"]).beat_file is None


@pytest.mark.parametrize("last", [None, 100.0, 101.4, 101.5, 200.0])
def test_the_keeper_reads_a_stale_beat_as_the_supervisor_reads_its_lease_at_risk(last):
    lease, beat, grace = 3.0, 0.5, 1.0
    limit = beat_limit_s(lease, beat, grace)
    assert limit == 1.5  # its stop (grace, a poll) ends before the lease
    for now in (100.0, 101.4, 101.5, 102.0):
        assert keeper.beat_is_stale(last, now, limit) is lease_at_risk(
            last, now, lease, stop_margin_s(lease, beat, grace))


@pytest.mark.parametrize("outcome, counted, fate", [
    (Outcome.OK, False, cluster_turns.DONE),
    (Outcome.FAILED, True, cluster_turns.FAILED),
    (Outcome.OVERLOADED, False, cluster_turns.RELEASED),
    (Outcome.STOPPED, False, cluster_turns.RELEASED),
])
def test_a_settled_sessions_item_fate(outcome, counted, fate):
    assert cluster_turns.fate_of(outcome, counted) == fate


@pytest.mark.parametrize("session, exit_status, fate", [
    (None, None, cluster_turns.RELEASED),  # killed between the claim and the session row
    (7, 0, cluster_turns.DONE),  # the keeper recorded a clean exit
    (7, 1, cluster_turns.FAILED),
    (7, None, cluster_turns.FAILED),  # no record: the agent died with it
])
def test_a_dead_supervisors_item_fate(session, exit_status, fate):
    assert cluster_turns.fate_after_death(session, exit_status) == fate


@pytest.mark.parametrize("url, enabled, joins", [
    ("redis://127.0.0.1:1/0", True, True),
    ("redis://127.0.0.1:1/0", False, False),  # a single host, as before
    ("off", True, False),  # no server: alone
])
def test_a_home_joins_the_cluster_when_enabled_with_a_server(url, enabled, joins):
    config = Config(redis_url=url, cluster=ClusterConfig(host="alpha", enabled=enabled))
    assert cluster_turns.enabled(config) is joins
