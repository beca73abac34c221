"""Issue 23: accounts shared by the hosts of a cluster, on a real redis-server.

What a host hears of an account's windows is merged on the server (the later reset wins;
at an equal reset the higher utilization; a stored reset already past yields to any new
report), and each host reads the merged windows and the other hosts' requests in flight,
running sessions and starts into its own SQLite, where pacing and admission decide on
them. The two homes here are two hosts.
"""

from __future__ import annotations

import pytest

from torchsm import novas
from torchsm.cluster import accounts as shared
from torchsm.cluster.server import connect
from torchsm.cluster.settings import ClusterSettings
from torchsm.config import Config, load_config
from torchsm.storage import store
from torchsm.supervisor import admission
from torchsm.usage import accounts, limits

LEASE_S = 30.0


def settings(host: str) -> ClusterSettings:
    return ClusterSettings(host=host, heartbeat_s=5.0, lease_s=LEASE_S, max_attempts=3,
                           ttl_s=3600)


@pytest.fixture
def server(redis_db):
    connection = connect(redis_db.url)
    yield connection
    connection.close()


def window(utilization, resets_at, status="allowed", nova="n1", name="five_hour"):
    return accounts.WindowRow(name, status, utilization, resets_at, 1.0, "event", nova)


def publish(server, host: str, *rows, grants=(), running=(), last_start=None):
    local = shared.Local(list(rows), list(grants), list(running), last_start)
    return shared.SharedAccounts(server, settings(host)).exchange("work", local, 0.0)


# (what host a reported first, what host b reports next, who wins); times from the
# server's now: +h is h hours ahead
MERGES = [
    ("later reset wins, lower utilization", (0.9, +1, "allowed"), (0.1, +5, "allowed"), "b"),
    ("earlier reset loses, higher utilization", (0.2, +5, "allowed"), (0.99, +1, "rejected"),
     "a"),
    ("equal reset: higher utilization", (0.5, +2, "allowed"), (0.7, +2, "allowed"), "b"),
    ("equal reset: lower utilization loses", (0.7, +2, "allowed"), (0.5, +2, "allowed"), "a"),
    ("equal reset and utilization: rejected wins", (0.9, +2, "allowed"), (0.9, +2, "rejected"),
     "b"),
    ("stored reset past: any new report", (0.99, -1, "rejected"), (0.1, -2, "allowed"), "b"),
    ("no reset stored reads as past", (0.99, None, "rejected"), (0.0, +1, "allowed"), "b"),
]


@pytest.mark.parametrize("first, then, winner", [m[1:] for m in MERGES],
                         ids=[m[0] for m in MERGES])
def test_the_server_merges_reports_of_one_window(server, first, then, winner):
    now = server.time()

    def row(report, nova):
        used, hours, status = report
        return window(used, None if hours is None else now + hours * 3600, status, nova)

    publish(server, "a", row(first, "na"))
    merged = publish(server, "b", row(then, "nb"))
    assert [(w.utilization, w.status, w.nova) for w in merged.windows] == [
        (*((first if winner == "a" else then)[0::2]), f"{winner}:n{winner}")]


def test_each_host_reads_only_the_others_grants_running_sessions_and_starts(server):
    now = server.time()
    publish(server, "b", grants=["nb1", "nb2"], running=["7"], last_start=now - 5)
    publish(server, "b", grants=["nb1", "nb2"], running=["7"])  # replaces, never adds
    seen_by_a = publish(server, "a", grants=["na"], running=["3", "4"], last_start=now - 1)
    seen_by_b = publish(server, "b", grants=[], running=["7"])
    assert (seen_by_a.others_in_flight, seen_by_a.others_running) == (2, 1)
    assert seen_by_a.others_last_start == pytest.approx(now - 5, abs=0.01)
    assert (seen_by_b.others_in_flight, seen_by_b.others_running) == (1, 2)
    assert seen_by_b.others_last_start == pytest.approx(now - 1, abs=0.01)


def test_what_a_silent_host_published_lapses_after_the_lease(server):
    short = ClusterSettings(host="b", heartbeat_s=0.1, lease_s=0.3, max_attempts=3, ttl_s=60)
    shared.SharedAccounts(server, short).exchange(
        "work", shared.Local([], ["nb"], ["7"], None), 0.0)
    import time
    time.sleep(0.5)
    seen = publish(server, "a")
    assert (seen.others_in_flight, seen.others_running) == (0, 0)


# --- one host's side: its SQLite holds the merged state --------------------------------------

def cluster_home(home, url: str, host: str, extra: str = "") -> Config:
    (home.path / "torchsm.toml").write_text(
        f'redis_url = "{url}"\n[cluster]\nenabled = true\nhost = "{host}"\n'
        f"heartbeat_s = 1\nlease_s = {LEASE_S}\nsync_s = 0.5\n{extra}")
    config = load_config(home)
    novas.add(home, config, "na", personality="torch", account="work")
    return config


def syncer(home, config, now: float) -> shared.Syncer:
    reports = []
    found = shared.Syncer(home, config, "na", reports.append, lambda: now)
    found.reports = reports
    return found


def test_grants_in_flight_on_other_hosts_count_in_the_verdict(home, redis_db, server):
    """Failed before: the verdict counted this host's grants only."""
    config = cluster_home(home, redis_db.url, "a")
    now = server.time()
    rows = [accounts.WindowRow("five_hour", "allowed", 0.90, now + 3600, now, "event", "na",
                               None)]
    with store.open_store(home) as db:
        db.write(lambda conn: accounts.learn(conn, "work", rows, now))
        db.write(lambda conn: conn.execute(  # what one request costs: 2 %
            "UPDATE account_windows SET per_request = 0.02"))
    publish(server, "b", grants=["nb1", "nb2", "nb3"])
    a = syncer(home, config, now)
    assert a.sync_once() is not None
    with store.open_store(home) as db:
        nova = db.read(lambda conn: store.nova_named(conn, "na"))
        found = db.read(lambda conn: limits.verdict(conn, config, "work", now, nova.id))
    assert found.kind == "pace" and "3 request(s) of other Novas in flight" in found.why


def test_a_limit_merged_from_another_host_holds_this_hosts_novas(home, redis_db, server):
    config = cluster_home(home, redis_db.url, "a")
    now = server.time()
    publish(server, "b", window(1.0, now + 600, "rejected", "nb"))
    syncer(home, config, now).sync_once()
    (nova,) = novas.status(home, config, "na")
    assert nova["state"] == "cooling"
    assert nova["until"] is not None and "usage limit" in (nova.get("reason") or "")


def test_other_hosts_running_sessions_and_starts_count_in_admission(home, redis_db, server):
    config = cluster_home(home, redis_db.url, "a",
                          "[accounts.work]\nmax_running_sessions = 1\nstart_stagger_s = 30\n")
    now = server.time()
    publish(server, "b", running=["9"])
    syncer(home, config, now).sync_once()
    refusal = _admission(home, config, now)
    assert refusal.rule is admission.Rule.RUNNING_SESSIONS and "1 of 1" in refusal.why
    publish(server, "b", running=[], last_start=now - 10)
    syncer(home, config, now).sync_once()
    refusal = _admission(home, config, now)
    assert refusal.rule is admission.Rule.START_STAGGER


def test_cut_off_past_the_lease_refuses_new_sessions_of_a_shared_account(home, refused_url):
    """Fail closed: a host that cannot reach the server starts nothing new on the account
    once `lease_s` has passed since it last answered (or since the host began to try)."""
    config = cluster_home(home, refused_url, "a")
    now = 1_800_000_000.0
    a = syncer(home, config, now)
    assert a.sync_once() is None and "unreachable" in a.reports[0]["message"]
    assert _admission(home, config, now + LEASE_S - 1) is None
    refusal = _admission(home, config, now + LEASE_S + 1)
    assert refusal.rule is admission.Rule.CUT_OFF
    assert refusal.why == ("cut off from the cluster server since 2027-01-15T08:00:00Z: no "
                           "new session of shared account work")


def _admission(home, config, now):
    request = admission.Request("item", False)
    with store.open_store(home) as db:
        return db.read(lambda conn: admission.check(conn, config, "na", request, now))[1]


def test_cluster_status_shows_merged_windows_and_requests_in_flight_per_host(cli, home,
                                                                             redis_db, server):
    now = server.time()
    publish(server, "alpha", window(0.97, now + 600, "rejected", "na"), grants=["na"])
    publish(server, "beta", window(0.5, now + 600, "allowed", "nb"), grants=["nb", "nc"],
            running=["4"])
    data = cli("cluster", "status", "--json", TORCHSM_REDIS_URL=redis_db.url).json()
    (work_account,) = data["accounts"]
    (five_hour,) = work_account["windows"]
    assert (five_hour["utilization"], five_hour["status"], five_hour["heard_by"]) == (
        0.97, "rejected", "alpha:na")
    assert work_account["in_flight"] == {"alpha": 1, "beta": 2}
    assert work_account["running"] == {"beta": 1}
    text = cli("cluster", "status", TORCHSM_REDIS_URL=redis_db.url).out
    assert "five_hour" in text and "97%" in text and "alpha:na" in text
    assert "alpha 1, beta 2" in text


@pytest.mark.parametrize("written, expected", [
    # another host's numbers are checked as any window heard from outside
    ({"utilization": 1e9, "resets_at": None}, (None, None)),
    ({"utilization": 0.5, "resets_at": -5}, (0.5, None)),
    ({"utilization": float("nan"), "resets_at": None}, (None, None)),
])
def test_a_merged_window_is_checked_like_any_window_heard_from_outside(written, expected):
    import json as json_

    from torchsm.cluster.accounts import window_row

    raw = json_.dumps({"window": "five_hour", "status": "allowed", "heard_at": 100.0,
                       "by": "b:torch", **written})
    row = window_row(raw, 200.0)
    assert (row.utilization, row.resets_at) == expected and row.updated_at == 100.0


def test_a_merged_window_that_cannot_be_read_is_left_out():
    from torchsm.cluster.accounts import window_row

    assert window_row(b"{not json", 200.0) is None
    assert window_row(b'{"status": "rejected"}', 200.0) is None
