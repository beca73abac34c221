"""Issue 23: what one host hears of a shared account reaches the others at once, not at
their next periodic sync: a host publishes a window it heard, or a request granted on it,
as soon as its SQLite has it, and the server tells the other hosts, which sync then.

Each test makes the periodic sync too slow to matter (`sync_s` = 60) so only the push can
carry the news within the test's bound.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from helpers import wait_for
from test_cluster_accounts_hosts import agent_of, host_home, state_of, stop_all, supervise, synced
from torchsm.config import Home, load_config
from torchsm.storage import store
from torchsm.usage import accounts, limits

SLOW_SYNC_S = 60.0


def peers_of(cli) -> accounts.Peers | None:
    with store.open_store(Home(cli.home)) as db:
        return db.read(lambda conn: accounts.load_peers(conn, "work"))


@contextmanager
def two_hosts(tmp_path, url: str):
    """Hosts alpha (Nova na) and beta (nb) on account `work`, each supervisor running
    and synced once."""
    a = host_home(tmp_path / "a", "alpha", url, "na", sync_s=SLOW_SYNC_S)
    b = host_home(tmp_path / "b", "beta", url, "nb", sync_s=SLOW_SYNC_S)
    agent, _ = agent_of(tmp_path)
    runs = [supervise(a, url, "na", agent), supervise(b, url, "nb", agent)]
    try:
        assert wait_for(lambda: synced(a) and synced(b))
        yield a, b
    finally:
        stop_all(runs)


def test_a_limit_heard_on_host_a_holds_host_b_before_its_next_sync(tmp_path, redis_db):
    with two_hosts(tmp_path, redis_db.url) as (a, b):
        home_a, now = Home(a.home), time.time()
        limit = accounts.WindowRow("five_hour", "rejected", 1.0, now + 3600, now, "event",
                                   "na")
        with store.open_store(home_a) as db:  # as A's reader stores a rate_limit_event
            limits.learn(db, home_a, load_config(home_a), "work", [limit], now)
        assert wait_for(lambda: state_of(b, "nb", redis_db.url)["state"] == "cooling",
                        timeout=10)


def test_a_request_granted_on_host_a_is_counted_in_flight_on_host_b_at_once(
        tmp_path, redis_db):
    with two_hosts(tmp_path, redis_db.url) as (a, b):
        assert peers_of(b).in_flight == 0
        with store.open_store(Home(a.home)) as db:  # as A's Stop hook grants a request
            db.write(lambda conn: accounts.grant(
                conn, "work", store.nova_named(conn, "na").id, time.time()))
        assert wait_for(lambda: peers_of(b).in_flight == 1, timeout=10), peers_of(b)
        with store.open_store(Home(a.home)) as db:  # and its answer is read
            db.write(lambda conn: accounts.answered(conn, store.nova_named(conn, "na").id))
        assert wait_for(lambda: peers_of(b).in_flight == 0, timeout=10), peers_of(b)
