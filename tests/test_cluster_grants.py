"""Issue 23: the last request of a shared account's window goes to one host only.

Two homes (hosts alpha and beta) on one redis-server share account `work`, both at the
last request of the window (8 of 9 answered: left = 1) and both with a fresh word that the
other host runs a session. Each one's own SQLite says "go": without a grant taken on the
server both Stop hooks continue and the provider refuses the 10th request. With it,
exactly one continues; the other lets its agent stop, saying why, and asks for a restart.
The same for a host's session start against another host's continuation.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from helpers import Cli, payload, torchsm_executable
from test_cluster_accounts import cluster_home, publish
from test_cluster_accounts_hosts import host_home
from torchsm.cluster.server import connect
from torchsm.config import Home, load_config
from torchsm.storage import store
from torchsm.supervisor import admission, session_start
from torchsm.usage import accounts, server_grants

NINTH = 1 / 9  # the stand-in's window: 9 requests
TAKEN = "another host took the account's last request of the window"


def at_last_request(cli: Cli, nova: str, now: float) -> None:
    """8 of 9 requests of the window answered (per request: 1/9), heard by `nova`; the
    other host's session runs, as its last sync said."""
    resets = now + 60
    readings = [accounts.WindowRow("five_hour", "allowed_warning", used, resets, now - 3600,
                                   "event", nova) for used in (7 * NINTH, 8 * NINTH)]
    peers = accounts.Peers(in_flight=0, running=1, last_start=None, answered_at=now)
    with store.open_store(Home(cli.home)) as db:
        for row in readings:
            db.write(lambda conn: accounts.learn(conn, "work", [row], now))
        db.write(lambda conn: accounts.store_peers(conn, "work", peers))


def two_hosts_at_the_last_request(tmp_path, url: str) -> tuple[Cli, Cli]:
    now = time.time()
    hosts = host_home(tmp_path / "a", "alpha", url, "na"), host_home(tmp_path / "b", "beta",
                                                                      url, "nb")
    for cli, nova in zip(hosts, ("na", "nb")):
        at_last_request(cli, nova, now)
        cli("queue", "add", f"next task of {nova}", "--nova", nova)
    return hosts


def stop_hook(cli: Cli, nova: str, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*torchsm_executable(), "hook", "stop", "--nova", nova], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli.env(TORCHSM_REDIS_URL=url))


def continued(run: subprocess.Popen) -> bool:
    out, err = run.communicate(payload("Stop.json"), timeout=60)
    assert run.returncode == 0 and "Traceback" not in err, err
    return bool(out.strip()) and json.loads(out).get("decision") == "block"


def last_outcome(cli: Cli) -> tuple[str, str]:
    with store.open_store(Home(cli.home)) as db:
        return db.read(lambda conn: conn.execute(
            "SELECT outcome, detail FROM hook_runs ORDER BY id DESC LIMIT 1").fetchone())


def test_two_hosts_at_the_last_request_continue_one_stop_hook_only(tmp_path, redis_db):
    a, b = two_hosts_at_the_last_request(tmp_path, redis_db.url)
    runs = [stop_hook(a, "na", redis_db.url), stop_hook(b, "nb", redis_db.url)]
    answers = [continued(run) for run in runs]  # both started before either answers
    assert sorted(answers) == [False, True]
    refused = (a, b)[answers.index(False)]
    outcome, detail = last_outcome(refused)
    assert outcome == "allowed" and TAKEN in detail and "restart requested" in detail


def test_a_session_start_waits_when_another_host_took_the_last_request(tmp_path, redis_db):
    a, b = two_hosts_at_the_last_request(tmp_path, redis_db.url)
    assert continued(stop_hook(a, "na", redis_db.url))
    home = Home(b.home)
    now = time.time()
    refused = session_start.take(home, load_config(home), "nb", session_start.Work("item"),
                                 admission.Request("item", False), now)
    assert isinstance(refused, admission.Refusal)
    assert refused.rule is admission.Rule.USAGE_PACING and TAKEN in refused.why
    assert refused.until is not None and now < refused.until <= now + 5


@pytest.mark.parametrize("where", ["refused_url", "silent_url"])
def test_a_server_that_does_not_answer_leaves_the_local_decision(tmp_path, where, request):
    url = request.getfixturevalue(where)
    a = host_home(tmp_path / "a", "alpha", url, "na")
    at_last_request(a, "na", time.time())
    a("queue", "add", "next task of na", "--nova", "na")
    began = time.monotonic()
    assert continued(stop_hook(a, "na", url))
    assert time.monotonic() - began < 10  # the take's deadline, not the reply timeout


def others_in_flight(server, host: str = "b") -> int:
    return publish(server, host).others_in_flight


def test_a_grant_taken_on_the_server_outlives_a_sync_that_read_before_its_row(
        home, redis_db):
    """The syncer's SQLite read may precede the grant's commit while its script runs
    after the take: the taken member is not the sync's to drop. Once a sync publishes
    the row the member is the sync's, counted once, and the sync after its answer drops it."""
    config = cluster_home(home, redis_db.url, "a")
    now = time.time()
    at_last_request(Cli(home.path), "na", now)
    with connect(redis_db.url) as server, store.open_store(home) as db:
        publish(server, "b", running=["nb:1"])
        nova = db.read(lambda conn: store.nova_named(conn, "na"))
        assert db.read(lambda conn: server_grants.granted(conn, config, nova, now))
        token = f"na@{accounts.grant_token(now)}"
        publish(server, "a")  # a sync that read SQLite before the grant's row was committed
        assert others_in_flight(server) == 1
        publish(server, "a", grants=[token])  # the sync that read the row
        assert others_in_flight(server) == 1
        publish(server, "a")  # its answer read: the row is gone
        assert others_in_flight(server) == 0


PEERS = {"none known": None, "stale": (0, 1, None, -3600.0), "idle": (0, 0, None, 0.0),
         "running": (0, 1, None, 0.0), "in flight": (2, 0, None, 0.0),
         "started before": (0, 0, -60.0, 0.0)}


@pytest.mark.parametrize("peers", PEERS, ids=list(PEERS))
def test_the_stop_hook_reaches_the_server_only_for_live_peers(tmp_path, silent_server, peers):
    url, now = silent_server.url, time.time()
    a = host_home(tmp_path / "a", "alpha", url, "na")
    with store.open_store(Home(a.home)) as db:
        db.write(lambda conn: conn.execute("DELETE FROM account_peers"))
        if PEERS[peers] is not None:
            flying, running, started, answered = PEERS[peers]
            found = accounts.Peers(flying, running, started and now + started, now + answered)
            db.write(lambda conn: accounts.store_peers(conn, "work", found))
    a("queue", "add", "next task of na", "--nova", "na")
    assert continued(stop_hook(a, "na", url))  # a silent server: the local decision
    live = peers in ("running", "in flight", "started before")
    mirror = 1  # the hook's outbox, delivered to the mirror (the same server)
    assert silent_server.connections() == mirror + (1 if live else 0)
