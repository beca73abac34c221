"""Issue 23: supervisors run the cluster's work. Two homes ("hosts" a and b, each its own
`[cluster] host`) on one real redis-server, each with a real `torchsm run` supervisor
and a stand-in agent that logs `start` and `end` of its item, with its host and the time,
to one shared file: every item done once, a killed host's item taken over after its
lease and never run twice at once, and a host cut off from its server stopping its
cluster session before its lease ends while its local work goes on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import cluster_jepsen
from helpers import Cli, torchsm_executable, wait_for
from torchsm.cluster import work
from torchsm.cluster.server import connect
from torchsm.cluster.settings import ClusterSettings

LEASE_S, HEARTBEAT_S = 3.0, 0.5
STAGGER_S, SYNC_S = 0.5, 0.2  # the account's start stagger; how often it syncs

AGENT = cluster_jepsen.AGENT_LOGGING + """
def first_cluster_item():
    # the host's first cluster item runs AGENT_FIRST_SLEEP s, every other run 0.3 s
    if not os.environ.get("TORCHSM_CLUSTER_ITEM"):
        return False
    try:
        os.close(os.open(LOG + "." + os.environ["AGENT_HOST"], os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True

log("start")
time.sleep(float(os.environ["AGENT_FIRST_SLEEP"]) if first_cluster_item() else 0.3)
log("end")
"""


class Host:
    """One home with its supervisor of Nova torch, as one host of the cluster."""

    def __init__(self, root: Path, name: str, url: str, agent: Path, log: Path):
        self.name, self.url, self.agent, self.log = name, url, agent, log
        self.cli = Cli(root / name)
        self.cli("init")
        self.cli("nova", "add", "torch")
        (root / name / "torchsm.toml").write_text(textwrap.dedent(f"""
            redis_url = "{url}"
            [personalities.torch]
            base_cycle_s = 0.2
            [supervisor]
            stop_grace_s = 1
            load_stretch_above = 0
            max_sessions_per_hour = 1000
            [usage]
            # both hosts' Novas share account `default`: its starts take turns across them
            start_stagger_s = {STAGGER_S}
            [cluster]
            enabled = true
            host = "{name}"
            heartbeat_s = {HEARTBEAT_S}
            lease_s = {LEASE_S}
            sync_s = {SYNC_S}
            """))
        self.proc: subprocess.Popen | None = None

    def start(self, first_sleep: float = 0.3) -> "Host":
        """The supervisor; its agent runs the host's first cluster item `first_sleep` s."""
        env = self.cli.env(TORCHSM_REDIS_URL=self.url, AGENT_LOG=str(self.log),
                           AGENT_HOST=self.name, AGENT_FIRST_SLEEP=str(first_sleep))
        self.proc = subprocess.Popen(
            [*torchsm_executable(), "run", "torch", "--", sys.executable, str(self.agent)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.cli.home / "supervisor.err", "w"))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def hosts(tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    log = tmp_path / "agents.jsonl"
    made: list[Host] = []

    def make(name: str, url: str) -> Host:
        made.append(Host(tmp_path, name, url, agent, log))
        return made[-1]

    yield make
    for host in made:
        host.stop()


def lines(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def events(log: Path, event: str, item: str | None = None) -> list[dict]:
    return [e for e in lines(log) if e["event"] == event and item in (None, e["item"])]


def add_items(url: str, count: int, prefix: str = "job") -> list[str]:
    settings = ClusterSettings("producer", HEARTBEAT_S, LEASE_S, 3, 3600)
    with connect(url) as server:
        queue = work.ClusterWork(server, settings)
        return [queue.add(f"{prefix} {i}", "medium", item_id=f"{prefix}-{i:02d}").item_id
                for i in range(count)]


def executions(log: Path, killed_at: float | None = None) -> dict[str, list[tuple]]:
    """item -> (host, start, end) of each run; a run with no end ended at `killed_at`."""
    runs: dict[tuple, list] = {}
    for e in lines(log):
        key = (e["item"], e["pid"])
        if e["event"] == "start":
            runs[key] = [e["host"], e["t"], killed_at]
        else:
            runs[key][2] = e["t"]
    by_item: dict[str, list[tuple]] = {}
    for (item, _), (host, start, end) in runs.items():
        by_item.setdefault(item, []).append((host, start, end))
    return {item: sorted(found, key=lambda r: r[1]) for item, found in by_item.items()}


def never_overlap(runs: list[tuple]) -> bool:
    return all(later[1] >= earlier[2] for earlier, later in zip(runs, runs[1:]))


def test_two_hosts_do_every_cluster_item_once_between_them(hosts, redis_db):
    a, b = hosts("a", redis_db.url), hosts("b", redis_db.url)
    ids = add_items(redis_db.url, 20)
    a.start(), b.start()
    wait_for(lambda: len(events(a.log, "end")) >= 20, timeout=120, every=0.2)
    time.sleep(1)  # a second execution, if any, would have started by now
    runs = executions(a.log)
    assert sorted(runs) == ids
    assert all(len(found) == 1 and found[0][2] is not None for found in runs.values()), runs
    # the stagger's turns alternate across hosts (measured before them: a ran all 20)
    per_host = {h: sum(found[0][0] == h for found in runs.values()) for h in "ab"}
    print("items per host:", per_host)
    assert min(per_host.values()) >= 7, per_host
    client = redis_db.client()
    wait_for(lambda: sum(client.xlen(s) for s in work.STREAMS) == 0, timeout=10)
    assert client.xlen(work.DEAD_STREAM) == 0


@pytest.mark.parametrize("agent_too", [True, False], ids=["with-its-agent", "agent-left"])
def test_a_killed_hosts_item_is_taken_over_after_its_lease_and_never_overlaps(
        hosts, redis_db, agent_too):
    """kill -9 of host a's supervisor (never restarted), with its agent, or leaving the
    agent to its keeper, which stops it before a's lease can end."""
    a = hosts("a", redis_db.url).start(first_sleep=60)
    b = hosts("b", redis_db.url)
    (item,) = add_items(redis_db.url, 1)
    (started,) = wait_for(lambda: events(a.log, "start", item), timeout=30)
    b.start()
    wait_for(lambda: _beats(redis_db, "b"), timeout=30)
    killed_at = time.time()
    for pid in (a.proc.pid, started["ppid"], started["pid"])[:3 if agent_too else 1]:
        _kill(pid)  # the supervisor, the agent's keeper, the agent
    a.proc.wait(10)
    (taken,) = wait_for(lambda: events(a.log, "end", item), timeout=60, every=0.1)
    assert taken["host"] == "b"
    # taken over only once a's lease ran out (its last beat was at most a heartbeat before
    # the kill), counted from the supervisor's kill, not from its agent's end
    assert taken["t"] - killed_at >= LEASE_S - HEARTBEAT_S - 0.5
    if not agent_too:  # a's agent was stopped by its keeper, before b took the item
        (stopped,) = events(a.log, "stopped", item)
        assert stopped["host"] == "a" and stopped["t"] - killed_at < LEASE_S - HEARTBEAT_S
        killed_at = stopped["t"]
    runs = executions(a.log, killed_at)[item]
    assert [r[0] for r in runs] == ["a", "b"] and never_overlap(runs), runs
    assert redis_db.client().xlen(work.DEAD_STREAM) == 0


def test_a_restarted_supervisor_gives_its_dead_predecessors_item_another_attempt(
        hosts, redis_db):
    a = hosts("a", redis_db.url).start(first_sleep=60)
    (item,) = add_items(redis_db.url, 1)
    (started,) = wait_for(lambda: events(a.log, "start", item), timeout=30)
    for pid in (a.proc.pid, started["ppid"], started["pid"]):
        _kill(pid)
    a.proc.wait(10)
    killed_at = time.time()
    a.start()  # recovery: the keeper recorded no clean exit, so the attempt failed
    (again,) = wait_for(lambda: events(a.log, "end", item), timeout=60, every=0.1)
    assert again["host"] == "a"
    runs = executions(a.log, killed_at)[item]
    assert len(runs) == 2 and never_overlap(runs)
    # the agent logs its end before its supervisor settles the item and drops the file
    wait_for(lambda: not (a.cli.home / "run" / "torch.cluster.json").exists(), timeout=10)
    client = redis_db.client()
    wait_for(lambda: sum(client.xlen(s) for s in work.STREAMS) == 0, timeout=10)
    assert client.xlen(work.DEAD_STREAM) == 0


def test_an_item_whose_agent_finished_after_its_supervisor_died_is_not_run_again(
        hosts, redis_db):
    a = hosts("a", redis_db.url).start(first_sleep=0.5)  # within the keeper's orphan limit
    (item,) = add_items(redis_db.url, 1)
    wait_for(lambda: events(a.log, "start", item), timeout=30)
    _kill(a.proc.pid)  # the keeper lets the agent finish, and records its clean exit
    a.proc.wait(10)
    wait_for(lambda: events(a.log, "end", item), timeout=30)
    a.start()  # recovery: done, fenced, not a second run
    client = redis_db.client()
    wait_for(lambda: sum(client.xlen(s) for s in work.STREAMS) == 0, timeout=30)
    time.sleep(1)
    assert len(executions(a.log)[item]) == 1
    # the server has the fate before the file that kept it is dropped
    wait_for(lambda: not (a.cli.home / "run" / "torch.cluster.json").exists(), timeout=10)


def test_a_host_cut_off_stops_its_cluster_session_in_time_and_runs_local_work(
        hosts, start_redis):
    server = start_redis(persistent=True)  # the same data when it comes back
    a = hosts("a", server.url).start(first_sleep=30)
    first, second = add_items(server.url, 2)
    (started,) = wait_for(lambda: events(a.log, "start"), timeout=30)
    server.kill()
    gone_at = time.time()
    (stopped,) = wait_for(lambda: events(a.log, "stopped", started["item"]), timeout=30)
    # stopped before the lease of its last beat (at most this long ago) could end
    assert stopped["t"] - gone_at < LEASE_S
    a.cli("queue", "add", "local job")  # the server away: local work still runs
    (local,) = wait_for(lambda: events(a.log, "start", "local:1"), timeout=30)
    assert local["t"] > stopped["t"]
    time.sleep(max(0.0, gone_at + LEASE_S + 1 - time.time()))  # past the lease, away
    assert [e["item"] for e in events(a.log, "start")] == [started["item"], "local:1"]
    server.start()  # back, with its data
    for item in (first, second):
        wait_for(lambda: events(a.log, "end", item), timeout=90, every=0.2)
    runs = executions(a.log)
    assert len(runs[first]) + len(runs[second]) == 3  # the stopped run, then once each
    assert all(never_overlap(r) for r in runs.values())


def _beats(redis_db, host: str) -> bool:
    from torchsm.cluster.hosts import HOSTS_KEY

    return redis_db.client().zscore(HOSTS_KEY, host) is not None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
