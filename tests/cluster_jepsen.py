"""The Jepsen-style run of issue 23 (point 2): three hosts share the cluster's work while a
nemesis kills, pauses, cuts them off and restarts their server. Imported by
tests/test_cluster_jepsen.py; a bench script may run it bigger.

The pieces:
- a persistent redis-server (append-only file, fsync always: every acknowledged write
  survives its restart), restarted on the same port with its data;
- hosts a, b, c: each a home of its own (`[cluster] enabled`, its `host`, a short lease),
  Novas `torch` and `echo`, a real `torchsm run` supervisor per Nova, and a TCP proxy
  of its own between it and the server, which can cut the host off;
- a stand-in agent that logs `start`, then `end` (or `stopped` on SIGTERM) of its
  cluster item, with its host, pid and time, to one shared file; it works the seconds
  its item's text names (`work=S`);
- items with idempotent ids, most added up front, some mid-run, some added again;
- a nemesis thread: a host cut off past the lease, a host's supervisors paused
  (SIGSTOP) past the lease, the server restarted, a host killed with -9 (never started
  again), each once, when a share of the items is done;
- `check`: a pure function over what the agents logged, what the supervisors were told
  by the server, and the server's final state.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import Cli, torchsm_executable
from redis_server import LOOPBACK, RedisServer, free_port
from torchsm.cluster import membership, work
from torchsm.cluster.settings import ClusterSettings

LEASE_S, HEARTBEAT_S = 3.0, 0.5
NOVAS = ("torch", "echo")
TOLERANCE_S = 0.5  # for clocks read by different processes, and polls

# a stand-in agent's logging of its runs (tests/test_cluster_supervisors.py's too)
AGENT_LOGGING = """
import json, os, re, signal, sys, time
LOG = os.environ["AGENT_LOG"]
ITEM = os.environ.get("TORCHSM_CLUSTER_ITEM") or "local:" + os.environ.get("TORCHSM_ITEM", "")

def log(event):
    line = json.dumps({"event": event, "item": ITEM, "host": os.environ["AGENT_HOST"],
                       "pid": os.getpid(), "ppid": os.getppid(), "t": time.time()})
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)

def stopped(signum, frame):
    log("stopped")
    sys.exit(143)

signal.signal(signal.SIGTERM, stopped)
"""

AGENT = AGENT_LOGGING + """
log("start")
found = re.search(r"work=([0-9.]+)", os.environ.get("TORCHSM_PROMPT", ""))
time.sleep(float(found.group(1)) if found else 0.2)
log("end")
"""

CONFIG = """
redis_url = "{url}"
[personalities.torch]
base_cycle_s = 0.05
[personalities.echo]
base_cycle_s = 0.05
[supervisor]
stop_grace_s = 1
load_stretch_above = 0
max_sessions_per_hour = 100000
[usage]
start_stagger_s = 0
[cluster]
enabled = true
host = "{host}"
heartbeat_s = {heartbeat}
lease_s = {lease}
"""


# --- the network between a host and its server ----------------------------------------

class Proxy:
    """A TCP proxy on loopback between one host and the server. `cut()` closes every
    connection and refuses new ones (accepted and closed at once) until `heal()`."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.is_cut = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def cut(self) -> None:
        self.is_cut.set()
        self._close_all()

    def heal(self) -> None:
        self.is_cut.clear()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self._close_all()

    def _accept_forever(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=1)
            except OSError:  # the server is away: so is the connection
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        for sock in (src, dst):
            self._close(sock)

    def _close_all(self) -> None:
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


# --- hosts ------------------------------------------------------------------------------

class Host:
    """One home, its supervisors (one per Nova) and its proxy to the server."""

    def __init__(self, root: Path, name: str, proxy: Proxy, agent: Path, log: Path):
        self.name, self.proxy, self.agent, self.log = name, proxy, agent, log
        self.cli = Cli(root / name)
        self.cli("init")
        for nova in NOVAS:
            self.cli("nova", "add", nova)
        (root / name / "torchsm.toml").write_text(textwrap.dedent(CONFIG.format(
            url=proxy.url, host=name, heartbeat=HEARTBEAT_S, lease=LEASE_S)))
        self.token = f"JEPSEN_HOST={root / name}".encode()  # marks its processes
        self.supervisors: dict[str, subprocess.Popen] = {}
        self.killed_at: float | None = None

    def start(self) -> "Host":
        env = self.cli.env(TORCHSM_REDIS_URL=self.proxy.url, AGENT_LOG=str(self.log),
                           AGENT_HOST=self.name, JEPSEN_HOST=str(self.cli.home))
        for nova in NOVAS:
            home = self.cli.home
            self.supervisors[nova] = subprocess.Popen(
                [*torchsm_executable(), "run", nova, "--json", "--", sys.executable,
                 str(self.agent)],
                env=env, stdin=subprocess.DEVNULL, stdout=open(home / f"{nova}.events", "w"),
                stderr=open(home / f"{nova}.err", "w"))
        return self

    def processes(self) -> list[int]:
        """Every live process of this host: supervisors, keepers, agents."""
        return [pid for pid in _pids() if self.token + b"\0" in _environ(pid)]

    def kill(self) -> float:
        """kill -9 of all its processes, until none is left; returns when it began."""
        self.killed_at = time.time()
        for proc in self.supervisors.values():
            _signal(proc.pid, signal.SIGKILL)
        while pids := self.processes():
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            time.sleep(0.01)
        for proc in self.supervisors.values():
            proc.wait(10)
        return self.killed_at

    def pause(self, supervisors_only: bool = True) -> list[int]:
        """SIGSTOP its supervisors (or every process of it); returns the pids paused."""
        pids = ([p.pid for p in self.supervisors.values()] if supervisors_only
                else self.processes())
        for pid in pids:
            _signal(pid, signal.SIGSTOP)
        return pids

    def stop(self) -> None:
        """A clean stop (SIGTERM) of its supervisors still running."""
        live = [p for p in self.supervisors.values() if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        for proc in live:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def answers(self) -> list[dict]:
        """What the server answered this host's supervisors for their items' fates."""
        found = []
        for nova in NOVAS:
            for event in _json_lines(self.cli.home / f"{nova}.events"):
                if event.get("event") == "cluster" and "answer" in event:
                    found.append({**event, "host": self.name})
        return found

    def left_items(self) -> list[str]:
        """Items whose fate waits on disk (HOME/run/NOVA.cluster.json)."""
        return sorted(p.name for p in (self.cli.home / "run").glob("*.cluster.json"))


def resume(pids: list[int]) -> None:
    for pid in pids:
        _signal(pid, signal.SIGCONT)


class Server:
    """The persistent redis-server that can be restarted with its data on its port."""

    def __init__(self, workdir: Path):
        self.redis = RedisServer(workdir, free_port(), persistent=True).start()
        self.restarts: list[float] = []

    def restart(self, down_s: float = 1.0) -> None:
        """Stopped (SIGTERM: it ends cleanly, its append-only file synced), away for
        `down_s` (connections refused: short of the lease's margin), started again."""
        self.restarts.append(time.time())
        self.redis.stop()
        time.sleep(down_s)
        self.redis.start()

    def queue(self) -> work.ClusterWork:
        from torchsm.cluster.server import connect

        settings = ClusterSettings("producer", HEARTBEAT_S, LEASE_S, 3, 3600)
        return work.ClusterWork(connect(self.redis.url), settings)


def make_hosts(root: Path, server: Server, names: str) -> dict[str, Host]:
    """Hosts `names` (one letter each) on `server`, each behind a proxy of its own, their
    agents logging to ROOT/agents.jsonl."""
    agent = root / "agent.py"
    agent.write_text(AGENT)
    return {name: Host(root, name, Proxy(server.redis.port), agent, root / "agents.jsonl")
            for name in names}


def agent_lines(root: Path) -> list[dict]:
    return _json_lines(root / "agents.jsonl")


# --- what happened ----------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    item: str
    host: str
    pid: int
    start: float
    end: float | None  # the end, or when it was stopped, or when its host was killed
    how: str  # end | stopped | killed | running


@dataclass
class Final:
    """The server's state at the end."""
    stream_entries: int
    pending: int
    dead_letters: list[dict]
    done_by: dict[str, str]  # item -> the consumer whose done counted


@dataclass
class Verdict:
    items: int
    runs: int
    lost: list[str] = field(default_factory=list)
    ended_twice: dict[str, list[Run]] = field(default_factory=dict)  # not explained
    ran_again: dict[str, int] = field(default_factory=dict)  # explained: see `check`
    done_twice: dict[str, list[dict]] = field(default_factory=dict)
    overlaps: dict[str, list[Run]] = field(default_factory=dict)
    early_takeovers: dict[str, tuple[float, float]] = field(default_factory=dict)
    takeovers: dict[str, float] = field(default_factory=dict)  # item -> s after the kill
    unfinished: list[Run] = field(default_factory=list)
    stopped: dict[str, int] = field(default_factory=dict)  # host -> its runs stopped
    released: int = 0  # items given back with no attempt counted (a stopped run, a stop)

    def problems(self, final: Final) -> list[str]:
        found = [f"{name}: {value}" for name, value in (
            ("lost", self.lost), ("ended twice", self.ended_twice),
            ("done counted twice", self.done_twice), ("overlapping runs", self.overlaps),
            ("taken over before the killed host's lease ran out", self.early_takeovers),
            ("runs with no end", self.unfinished)) if value]
        if final.stream_entries or final.pending:
            found.append(f"left on the streams: {final.stream_entries} entries, "
                         f"{final.pending} pending")
        if final.dead_letters:
            found.append(f"dead letters: {final.dead_letters}")
        return found


def runs_of(lines: list[dict], killed_at: dict[str, float]) -> list[Run]:
    """Each agent's run of an item, from its log lines; a run with no last line ended
    when its host was killed (or is still running)."""
    started: dict[int, dict] = {}
    ends: dict[int, dict] = {}
    for line in lines:
        (started if line["event"] == "start" else ends)[line["pid"]] = line
    runs = []
    for pid, first in started.items():
        last = ends.get(pid)
        if last is not None:
            end, how = last["t"], last["event"]
        elif first["host"] in killed_at:
            end, how = killed_at[first["host"]], "killed"
        else:
            end, how = None, "running"
        runs.append(Run(first["item"], first["host"], pid, first["t"], end, how))
    return sorted(runs, key=lambda r: (r.item, r.start))


def check(ids: list[str], lines: list[dict], answers: list[dict], final: Final,
          killed_at: dict[str, float]) -> Verdict:
    """The targets, over what happened (no clock read, no process touched).

    An item that ran to its end twice is explained only by an end whose done never
    counted on the server: refused (`lost`: its host was cut off or paused past the lease,
    and the item was taken over meanwhile), or never told (its host was killed in the
    moment between the agent's end and the done). That is the at-least-once window
    between an agent's end and its done reaching the server, which no lease closes. Any
    other second end is a failure."""
    runs = runs_of(lines, killed_at)
    by_item: dict[str, list[Run]] = {}
    for run in runs:
        by_item.setdefault(run.item, []).append(run)
    verdict = Verdict(len(ids), len(runs))
    for run in runs:
        if run.how == "stopped":
            verdict.stopped[run.host] = verdict.stopped.get(run.host, 0) + 1
    verdict.released = sum(1 for a in answers if a.get("fate") == "released")
    verdict.lost = [i for i in ids if i not in final.done_by
                    or not any(r.how == "end" for r in by_item.get(i, []))]
    verdict.unfinished = [r for r in runs if r.how == "running"]
    untold = _untold_ends(answers, runs, killed_at)
    for item, found in by_item.items():
        ended = [r for r in found if r.how == "end"]
        if len(ended) - 1 > untold.get(item, 0):
            verdict.ended_twice[item] = ended
        elif len(ended) > 1:
            verdict.ran_again[item] = len(ended) - 1
        if any(r.end is None or later.start < r.end for r, later in zip(found, found[1:])):
            verdict.overlaps[item] = found
    dones = [a for a in answers if a.get("answer") == work.DONE]
    for item in {a["item"] for a in dones}:
        counted = [a for a in dones if a["item"] == item]
        if len(counted) > 1:
            verdict.done_twice[item] = counted
    _check_takeovers(by_item, killed_at, verdict)
    return verdict


# how long before its host's kill an agent's end may be and still have had no time to be
# told: the end-to-done step takes milliseconds; this is generous for a loaded machine
TELL_WINDOW_S = 2.0


def _untold_ends(answers: list[dict], runs: list[Run],
                 killed_at: dict[str, float]) -> dict[str, int]:
    """item -> how many of its successful ends never counted on the server: refused
    (taken over meanwhile), or ended on a host killed before its supervisor told the
    done (the kill aims outside that moment, and can still land in it)."""
    counts: dict[str, int] = {}
    for answer in answers:
        if answer.get("fate") == "done" and answer.get("answer") == work.LOST:
            counts[answer["item"]] = counts.get(answer["item"], 0) + 1
    told = {(a["host"], a["item"]) for a in answers if a.get("fate") == "done"}
    for run in runs:
        if (run.how == "end" and run.host in killed_at and (run.host, run.item) not in told
                and run.end >= killed_at[run.host] - TELL_WINDOW_S):
            counts[run.item] = counts.get(run.item, 0) + 1
    return counts


def _check_takeovers(by_item: dict[str, list[Run]], killed_at: dict[str, float],
                     verdict: Verdict) -> None:
    """A killed host's item runs elsewhere only once its lease ran out: its last beat was
    at most a heartbeat before the kill."""
    for item, found in by_item.items():
        for run, later in zip(found, found[1:]):
            if run.how != "killed":
                continue
            after = later.start - killed_at[run.host]
            verdict.takeovers[item] = after
            if after < LEASE_S - HEARTBEAT_S - TOLERANCE_S:
                verdict.early_takeovers[item] = (after, LEASE_S - HEARTBEAT_S)


def final_state(client) -> Final:
    """The server's streams, pending entries, dead letters and done markers."""
    entries = sum(client.xlen(s) for s in work.STREAMS)
    pending = 0
    for stream in work.STREAMS:
        if client.exists(stream):
            pending += client.xpending(stream, work.GROUP)["pending"]
    dead = [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in client.xrange(work.DEAD_STREAM)]
    done_by = {key.decode().removeprefix(work.DONE_KEY.format("")): client.get(key).decode()
               for key in client.scan_iter(work.DONE_KEY.format("*"))}
    return Final(entries, pending, dead, done_by)


# --- the run ------------------------------------------------------------------------------

@dataclass
class Options:
    items: int = 200
    up_front: int = 170  # the rest are added mid-run
    again: int = 10  # ids added a second time, up front and mid-run each
    work_s: tuple[float, float] = (0.1, 0.3)
    long_every: int = 10
    long_s: float = 4.0
    time_limit_s: float = 150
    seed: int | None = None


@dataclass
class Outcome:
    verdict: Verdict
    final: Final
    events: list[tuple[float, str]]  # (seconds from the start, what the nemesis did)
    duration_s: float
    added_again: int  # adds of a known id that added nothing
    left: dict[str, list[str]]

    def summary(self) -> str:
        v = self.verdict
        kinds = [what.split(" ")[0] for _, what in self.events]
        return (f"{v.items} items, {v.runs} runs (stopped, by host: {v.stopped}; released "
                f"unrun: {v.released}; ran to the end again after a done the server "
                f"refused or never heard: {v.ran_again or 'none'}), in "
                f"{self.duration_s:.1f} s; nemesis: {kinds.count('cut')} cuts, "
                f"{kinds.count('pause')} pauses, {kinds.count('restart')} restarts, "
                f"{kinds.count('kill')} kills; takeovers after the kill: "
                f"{ {i: round(s, 2) for i, s in v.takeovers.items()} }; "
                f"ids added again: {self.added_again} (nothing added); "
                f"events: {[(round(t, 1), what) for t, what in self.events]}")


class JepsenRun:
    def __init__(self, root: Path, options: Options):
        self.root, self.options = root, options
        self.rng = random.Random(options.seed)
        root.mkdir(parents=True, exist_ok=True)
        self.server = Server(root / "redis")
        self.hosts = make_hosts(root, self.server, "abc")
        self.log = root / "agents.jsonl"
        self.ids = [f"item-{i:03d}" for i in range(options.items)]
        self.events: list[tuple[float, str]] = []
        self.added_again = 0
        self.started = 0.0

    # items

    def add(self, ids: list[str]) -> int:
        """Add each id, retried while the server is away (the id makes a retry safe);
        returns how many ids were known already (nothing added)."""
        queue = self.server.queue()
        known = 0
        try:
            for item_id in ids:
                while True:
                    try:
                        added = queue.add(self.text(item_id), "medium", item_id=item_id)
                        break
                    except membership.SERVER_ERRORS:
                        time.sleep(0.1)
                known += not added.added
        finally:
            queue.server.close()
        return known

    def text(self, item_id: str) -> str:
        """Every `long_every`th item works `long_s` (long enough to be running when the
        nemesis strikes), the others a short random while."""
        if self.is_long(item_id):
            return f"job {item_id} work={self.options.long_s}"
        low, high = self.options.work_s
        return f"job {item_id} work={self.rng.uniform(low, high):.3f}"

    def is_long(self, item_id: str) -> bool:
        return int(item_id.split("-")[1]) % self.options.long_every == 0

    def add_again(self, ids: list[str]) -> None:
        known = self.add(ids)
        self.added_again += known
        assert known == len(ids), f"{len(ids) - known} known ids added again"

    # the nemesis

    def note(self, what: str) -> None:
        self.events.append((time.time() - self.started, what))

    def done_share(self) -> float:
        ended = {line["item"] for line in _json_lines(self.log) if line["event"] == "end"}
        return len(ended) / len(self.ids)

    def wait_share(self, share: float, deadline: float) -> None:
        while self.done_share() < share and time.time() < deadline:
            time.sleep(0.05)

    def nemesis(self, deadline: float) -> None:
        opts = self.options
        self.wait_share(0.1, deadline)
        assert self.add(self.ids[opts.up_front:]) == 0  # mid-run
        self.add_again(self.rng.sample(self.ids[:opts.up_front], opts.again))
        self.wait_long_run("b", deadline)
        self.note("cut b")
        self.hosts["b"].proxy.cut()
        time.sleep(LEASE_S + 2)
        self.hosts["b"].proxy.heal()
        self.note("heal b")
        self.wait_share(0.35, deadline)
        self.wait_long_run("c", deadline)
        self.note("pause c (supervisors)")
        paused = self.hosts["c"].pause(supervisors_only=True)
        time.sleep(LEASE_S + 2)
        resume(paused)
        self.note("resume c")
        self.wait_share(0.5, deadline)
        self.note("restart server")
        self.server.restart()
        self.note("server back")
        self.wait_share(0.65, deadline)
        self.kill_mid_run("a", deadline)

    def wait_long_run(self, name: str, deadline: float) -> None:
        """Until host `name` has just started a long item (at most 15 s): a run that
        outlives the lease unless it is stopped."""
        until = min(deadline, time.time() + 15)
        while time.time() < until:
            runs = runs_of([line for line in _json_lines(self.log) if line["host"] == name], {})
            if any(r.how == "running" and self.is_long(r.item) and time.time() - r.start < 1
                   for r in runs):
                return
            time.sleep(0.05)

    def kill_mid_run(self, name: str, deadline: float) -> None:
        """kill -9 of host `name` while an agent of its runs an item, and every item its
        agents ended was counted done on the server: the kill tests the takeover, not the
        at-least-once window between an agent's end and its done reaching the server."""
        client = self.server.redis.client()
        while time.time() < deadline:
            lines = [line for line in _json_lines(self.log) if line["host"] == name]
            runs = runs_of(lines, {})
            told = all(client.get(work.DONE_KEY.format(r.item)) is not None
                       for r in runs if r.how == "end")
            fresh = [r for r in runs if r.how == "running" and time.time() - r.start < 0.05]
            if told and fresh:
                break
            time.sleep(0.005)
        self.hosts[name].kill()
        self.note(f"kill {name}")

    def finished(self) -> bool:
        client = self.server.redis.client()
        try:
            done = sum(client.exists(work.DONE_KEY.format(i)) for i in self.ids)
            entries = sum(client.xlen(s) for s in work.STREAMS)
        except Exception:
            return False
        return done == len(self.ids) and entries == 0

    def run(self) -> Outcome:
        opts = self.options
        assert self.add(self.ids[:opts.up_front]) == 0
        self.add_again(self.rng.sample(self.ids[:opts.up_front], opts.again))
        self.started = time.time()
        deadline = self.started + opts.time_limit_s
        for host in self.hosts.values():
            host.start()
        nemesis = threading.Thread(target=self.nemesis, args=(deadline,), daemon=True)
        nemesis.start()
        try:
            nemesis.join(max(0.0, deadline - time.time()))
            while not self.finished() and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(1)  # a second run, if any, would have started by now
        finally:
            for host in self.hosts.values():
                host.stop()
                host.proxy.close()
        return self.outcome()

    def outcome(self) -> Outcome:
        final = final_state(self.server.redis.client())
        answers = [a for host in self.hosts.values() for a in host.answers()]
        killed = {h.name: h.killed_at for h in self.hosts.values() if h.killed_at}
        verdict = check(self.ids, _json_lines(self.log), answers, final, killed)
        left = {h.name: h.left_items() for h in self.hosts.values()}
        return Outcome(verdict, final, self.events, time.time() - self.started,
                       self.added_again, left)

    def close(self) -> None:
        for host in self.hosts.values():
            if host.killed_at is None:
                host.stop()
            host.proxy.close()
        self.server.redis.stop()


def run(root: Path, options: Options | None = None) -> Outcome:
    jepsen = JepsenRun(root, options or Options())
    try:
        return jepsen.run()
    finally:
        jepsen.close()


# --- /proc ----------------------------------------------------------------------------

def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read() + b"\0"
    except OSError:
        return b""


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            pass  # a line cut by a kill
    return found
