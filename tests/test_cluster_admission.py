"""Issue 23: a supervisor asks admission before it takes a cluster item. One home on a
real redis-server, real `torchsm run` supervisors and the Jepsen run's stand-in agent:
while admission refuses (the account's running-sessions cap, a spent session budget)
no cluster item is claimed, and so none is released back to the pool; the Nova waits on
the refusal as it would for a local item (no idle, no dream, no `--until-idle` finish),
and starts the item once admitted.

Measured before the fix: every refused pass claimed an item and released it (an entry
pending on the pool consumer while nothing ran), and `--until-idle` finished "idle:
nothing to do" while a cluster item waited.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import cluster_jepsen
from cluster_jepsen import HEARTBEAT_S, LEASE_S
from helpers import Cli, torchsm_executable, wait_for
from torchsm.cluster import work
from torchsm.cluster.server import connect
from torchsm.cluster.settings import ClusterSettings


def config(url: str, per_hour: int) -> str:
    """The Jepsen run's host `a`, with a session budget and one running session at once."""
    text = cluster_jepsen.CONFIG.format(url=url, host="a", heartbeat=HEARTBEAT_S,
                                        lease=LEASE_S)
    return (text.replace("max_sessions_per_hour = 100000",
                         f"max_sessions_per_hour = {per_hour}")
            .replace("start_stagger_s = 0", "start_stagger_s = 0\nmax_running_sessions = 1"))


class Home:
    """One host's home with Novas torch and echo; a supervisor per Nova on demand."""

    def __init__(self, root: Path, url: str, per_hour: int = 1000):
        self.root, self.url = root, url
        self.cli = Cli(root / "a")
        self.cli("init")
        for nova in ("torch", "echo"):
            self.cli("nova", "add", nova)
        (self.cli.home / "torchsm.toml").write_text(textwrap.dedent(config(url, per_hour)))
        self.agent = root / "agent.py"
        self.agent.write_text(cluster_jepsen.AGENT)
        self.log = root / "agents.jsonl"
        self.procs: list[subprocess.Popen] = []

    def run(self, nova: str, *options: str) -> subprocess.Popen:
        env = self.cli.env(TORCHSM_REDIS_URL=self.url, AGENT_LOG=str(self.log),
                           AGENT_HOST="a")
        self.procs.append(subprocess.Popen(
            [*torchsm_executable(), "run", nova, "--json", *options, "--",
             sys.executable, str(self.agent)],
            env=env, stdin=subprocess.DEVNULL,
            stdout=open(self.cli.home / f"{nova}.events", "w"),
            stderr=open(self.cli.home / f"{nova}.err", "w")))
        return self.procs[-1]

    def events(self, nova: str, event: str) -> list[dict]:
        path = self.cli.home / f"{nova}.events"
        found = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [e for e in found if e.get("event") == event]

    def released(self) -> list[dict]:
        """The cluster items the supervisors gave back unrun."""
        return [e for nova in ("torch", "echo") if (self.cli.home / f"{nova}.events").exists()
                for e in self.events(nova, "cluster") if e.get("fate") == "released"]

    def agent_lines(self, event: str, item: str | None = None) -> list[dict]:
        return [line for line in cluster_jepsen.agent_lines(self.root)
                if line["event"] == event and item in (None, line["item"])]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def host(tmp_path, redis_db):
    made: list[Home] = []

    def make(**options) -> Home:
        made.append(Home(tmp_path, redis_db.url, **options))
        return made[-1]

    yield make
    for home in made:
        home.stop()


def add_cluster_items(url: str, count: int, tier: str = "low") -> list[str]:
    settings = ClusterSettings("producer", HEARTBEAT_S, LEASE_S, 3, 3600)
    with connect(url) as server:
        queue = work.ClusterWork(server, settings)
        return [queue.add(f"job {i} work=0.2", tier, item_id=f"c-{i}").item_id
                for i in range(count)]


def delivered(redis_db, tier: str = "low") -> int:
    """Entries of the tier's stream delivered to some consumer and not yet done: what a
    claim (and a release, to the pool consumer) leaves behind."""
    return redis_db.client().xpending(work.stream_of(tier), work.GROUP)["pending"]


def waits(home: Home, nova: str, why: str) -> list[dict]:
    return [e for e in home.events(nova, "wait") if why in e.get("why", "")]


def test_a_supervisor_refused_by_the_running_cap_claims_no_cluster_item(host, redis_db):
    """Echo runs a local item for 5 s under max_running_sessions = 1, so torch, with only
    cluster work, is refused ("running sessions") pass after pass, every 2 s."""
    home = host()
    home.cli("queue", "add", "local job work=5", "--nova", "echo", "--priority", "high")
    home.run("echo")
    (local,) = wait_for(lambda: home.agent_lines("start"), timeout=30)
    ids = add_cluster_items(redis_db.url, 2)
    home.run("torch")
    wait_for(lambda: len(waits(home, "torch", "max_running_sessions")) >= 1, timeout=30)
    time.sleep(2.5)  # at least one more refused pass (CAP_LOOK_AGAIN_S = 2)
    assert not home.agent_lines("end", local["item"]), "echo's item ended too soon"
    assert delivered(redis_db) == 0  # no claim while refused (before: pending on the pool)
    assert home.released() == []
    # admitted once echo's session ends: the cluster items run, after it
    (local_end,) = wait_for(lambda: home.agent_lines("end", local["item"]), timeout=30)
    for item in ids:
        (start,) = wait_for(lambda: home.agent_lines("start", item), timeout=30)
        assert start["t"] >= local_end["t"]
        wait_for(lambda: home.agent_lines("end", item), timeout=30)
    assert home.released() == []


def test_a_refused_supervisor_with_only_cluster_work_waits_instead_of_idling(host, redis_db):
    """A session budget of 1 an hour: after its first cluster item the Nova cools for the
    budget. `--until-idle` does not finish while cluster work waits (as with a local
    item), nothing dreams, and the second item stays on the server, unclaimed."""
    home = host(per_hour=1)
    first, second = add_cluster_items(redis_db.url, 2)
    run = home.run("torch", "--until-idle")
    wait_for(lambda: home.agent_lines("end", first), timeout=30)
    wait_for(lambda: home.events("torch", "cool"), timeout=30)
    time.sleep(2)  # a finish, a dream or a claim would have come by now
    assert run.poll() is None, (home.cli.home / "torch.err").read_text()
    assert home.events("torch", "dream") == []
    assert not home.agent_lines("start", second)
    assert delivered(redis_db) == 0
    assert home.released() == []


def test_until_idle_waits_out_a_cooldown_while_cluster_work_waits(host, redis_db):
    """A Nova cooling when its `--until-idle` supervisor starts, with only cluster work
    waiting: it waits the cooldown out as it would for a local item, runs the item, and
    only then finishes idle (before: "idle: nothing to do" at once, the item left)."""
    home = host()
    cooled_at = time.time()
    home.cli("transition", "torch", "cool", "--for", "3")
    (item,) = add_cluster_items(redis_db.url, 1)
    run = home.run("torch", "--until-idle")
    assert run.wait(60) == 0, (home.cli.home / "torch.err").read_text()
    (start,) = home.agent_lines("start", item)
    assert home.agent_lines("end", item)
    assert start["t"] >= cooled_at + 3 - 0.1  # the cooldown waited out
    assert home.events("torch", "end")[-1]["why"].startswith("idle")
