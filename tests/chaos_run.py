"""The chaos run of issue 14 (point 6): real supervisors, agents, hooks, transitions and a
real redis-server, killed at random; then what happened to each work item, to each
process and to each stream entry. Imported by tests/test_chaos.py (one run of at least
50 items) and bench/bench_chaos.py (bigger runs, several times, Markdown out).

The pieces:
- a fresh home (`torchsm init`), its config pointing at a persistent redis-server (every
  acknowledged write survives kill -9), fast rhythms, `outage_memory_s` 0.2;
- Novas `torch` and `echo` under supervision and `spare`, which only the chaos thread's
  own transitions touch; N work items (a third shared, the rest split between the two);
- a stand-in agent (generic: not Claude Code) that, for its item ($TORCHSM_ITEM), appends
  "start ITEM PID NOVA TIME" to a log, works a random 0.05-0.4 s (sometimes running
  `torchsm hook notification` and `torchsm transition NOVA dream` then `work` on the way:
  hook and transition processes of the agents' own), appends "end ...", and exits 0;
- a service manager thread: one `torchsm run NOVA -- python agent.py` per Nova, started
  again at once whenever it dies (as systemd would, without its 10 s pause);
- a chaos thread: kill -9 of a supervisor (half of them at a random point of a running
  session; about a third aimed at the worst moment, 0-10 ms after an agent logged the
  end of its run: it is exiting 0 and its supervisor about to settle); kill -9 of
  `torchsm hook` / `torchsm transition` processes found in /proc (the agents'), or of
  transitions of its own on `spare` at a random moment of their run; and, once,
  redis-server killed (-9) for a few seconds and started again (in a thread of its own,
  so the other chaos goes on meanwhile);
- a monitor thread sampling /proc for agents: two agents of one Nova alive at once is an
  overlap (a second agent beside an orphan).
When every item is done (or at the time limit, or when only claims no session points at
are left for `stuck_s`: only their lease would free them): the chaos stops, the supervisors get
SIGTERM (a clean stop), `torchsm mirror flush`, and the measures (ChaosResult).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from helpers import torchsm_executable
from mirror_support import history_event_ids, per_nova, stream_entries
from torchsm.config import Home
from torchsm.mirror.file_queue import FileQueue
from torchsm.mirror.streams import OPS_STREAM, STREAMS

SUPERVISED = ("torch", "echo")
SPARE = "spare"  # only the chaos thread's own transitions touch it
AT_END = "supervisor at an agent's end"  # a kind of kill, beside "supervisor", "hook"...

CONFIG = """\
redis_url = "{url}"
[mirror]
outage_memory_s = 0.2
[personalities.torch]
base_cycle_s = 0.05
[personalities.echo]
base_cycle_s = 0.05
[supervisor]
stop_grace_s = 1
max_sessions_per_hour = 100000
load_stretch_above = 0
[safety]
hook_burst = 100000
[usage]
start_stagger_s = 0  # two Novas of one account racing for starts is part of the chaos
"""

AGENT = """\
import os, random, subprocess, sys, time

LOG = {log!r}
TORCHSM = {torchsm!r}
HOME = {home!r}
CALLS = {calls!r}
WORK_S = {work_s!r}
NOTE = b'{{"hook_event_name": "Notification", "session_id": "chaos", "message": "working"}}'

item = os.environ.get("TORCHSM_ITEM", "-")
nova = os.environ.get("TORCHSM_NOVA", "?")


def log(word):
    line = f"{{word}} {{item}} {{os.getpid()}} {{nova}} {{time.time():.6f}}\\n".encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one write on O_APPEND: lines never interleave
    finally:
        os.close(fd)


def torchsm(*args, payload=None):
    # the home on the command line too, so the chaos thread can tell these processes apart
    subprocess.run([*TORCHSM, "--home", HOME, *args], input=payload,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


log("start")
rng = random.Random()
work = rng.uniform(*WORK_S)
if item != "-" and rng.random() < CALLS:
    torchsm("hook", "notification", "--nova", nova, payload=NOTE)
    time.sleep(work / 2)
    torchsm("transition", nova, "dream")
    torchsm("transition", nova, "work")
    time.sleep(work / 2)
else:
    time.sleep(work)
log("end")
print(f"did item {{item}}")
"""


@dataclass
class ChaosOptions:
    items: int = 50
    seed: int | None = None  # None: a fresh one (printed with the result)
    time_limit_s: float = 120.0
    work_s: tuple[float, float] = (0.05, 0.4)
    agent_calls: float = 0.5  # share of runs that also run a hook and two transitions
    supervisor_kill_every_s: tuple[float, float] = (0.5, 1.5)
    process_kill_every_s: tuple[float, float] = (0.3, 0.9)
    at_end_share: float = 0.3  # supervisor kills aimed just after an agent logs its end
    mid_session_share: float = 0.5  # supervisor kills that wait for a session to run
    # supervisor kills aimed between an item's claim and its session's row (two
    # transactions): off by default, for looking into that window on purpose
    at_claim_share: float = 0.0
    stuck_s: float = 5.0  # only claims without a session left this long: stop waiting
    own_transition_share: float = 0.3  # process kills of the chaos thread's own transitions
    outage_s: tuple[float, float] = (1.5, 3.0)
    outage_at: tuple[float, float] = (0.2, 0.5)  # share of the items done when it starts
    stop_timeout_s: float = 30.0


@dataclass
class StreamCheck:
    committed: int = 0  # history rows (transitions) in SQLite
    landed: int = 0  # transition entries in the ops stream
    missing: int = 0  # committed, not in the stream
    duplicated: int = 0  # event ids in the ops stream more than once (any type)
    extra: int = 0  # transition entries with no history row
    out_of_order: list[str] = field(default_factory=list)  # Novas whose order differs
    outbox_waiting: int = 0
    queued: int = 0  # lines still in the file queues after the flush
    # Informative (the supervisor's own entries, not history rows): sessions in the ledger
    # with no `session.started` entry, and sessions the supervisor settled itself (not
    # closed by a successor's recovery, which publishes nothing) with no `session.ended`
    sessions: int = 0
    without_started: list[int] = field(default_factory=list)
    without_ended: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.extra or self.out_of_order
                    or self.outbox_waiting or self.queued)


@dataclass
class ChaosResult:
    items: int
    seed: int
    wall_s: float = 0.0
    finished: bool = False  # every item done before the time limit
    kills: Counter = field(default_factory=Counter)
    ended_as_killed: list[int] = field(default_factory=list)  # items of the AT_END kills
    # items still claimed at the end with no session that started with the claim: their
    # supervisor died between the two (they come back only when the lease ends)
    claimed_without_session: dict[int, str] = field(default_factory=dict)
    supervisor_kills: list[tuple[float, str]] = field(default_factory=list)  # (time, Nova)
    runs: list[tuple[str, int, int, str, float]] = field(default_factory=list)  # the log
    outages: list[float] = field(default_factory=list)  # seconds redis-server was away
    supervisor_starts: int = 0
    unexpected_exits: list[tuple[str, int, str]] = field(default_factory=list)
    not_stopped_by_sigterm: list[str] = field(default_factory=list)
    ends: Counter = field(default_factory=Counter)  # item -> "end" lines
    starts: Counter = field(default_factory=Counter)  # item -> "start" lines
    statuses: dict[int, str] = field(default_factory=dict)
    orphans: list[tuple[int, str]] = field(default_factory=list)
    overlaps: list[tuple[str, list[int]]] = field(default_factory=list)
    max_agents_per_nova: int = 0
    outcomes: Counter = field(default_factory=Counter)  # sessions by outcome
    left_running: int = 0  # sessions still `running` in the ledger at the end
    orphans_waited_for: int = 0  # "outlived its supervisor: waiting for it"
    orphans_stopped: int = 0  # a successor (or its stop) had to stop one
    recoveries: int = 0  # "closed N session(s) ... a supervisor left running"
    stream: StreamCheck = field(default_factory=StreamCheck)

    @property
    def run_twice(self) -> dict[int, int]:
        """Items run to the end more than once: item -> how often."""
        return {item: n for item, n in sorted(self.ends.items()) if n > 1}

    @property
    def run_twice_after_end_kill(self) -> list[int]:
        """Items run to the end twice whose first end a supervisor kill was aimed at."""
        return [item for item in self.run_twice if item in self.ended_as_killed]

    def kill_after_first_end_ms(self) -> dict[int, float | None]:
        """For each item run to the end twice: how long after its first end its Nova's
        supervisor was killed (ms; None: no kill within 2 s)."""
        delays = {}
        for item in self.run_twice:
            word, _, _, nova, at = next(r for r in self.runs if r[0] == "end" and r[1] == item)
            after = [t - at for t, name in self.supervisor_kills if name == nova and 0 <= t - at < 2]
            delays[item] = round(min(after) * 1000, 1) if after else None
        return delays

    @property
    def started_twice(self) -> dict[int, int]:
        """Items started more than once (a run cut short by a kill and run again is
        allowed): item -> how often."""
        return {item: n for item, n in sorted(self.starts.items()) if n > 1}

    @property
    def lost(self) -> dict[int, str]:
        """Items not done at the end, or done without any run to the end."""
        lost = {item: status for item, status in self.statuses.items() if status != "done"}
        lost.update({item: "done, never run to the end" for item, status
                     in self.statuses.items() if status == "done" and not self.ends[item]})
        return dict(sorted(lost.items()))

    @property
    def process_kills(self) -> int:
        return self.kills["hook"] + self.kills["agent transition"] + self.kills["own transition"]

    def summary(self) -> str:
        k = self.kills
        s = self.stream
        lines = [
            f"chaos run: {self.items} items, seed {self.seed}, {self.wall_s:.1f} s, "
            f"{'all done' if self.finished else 'NOT ALL DONE'}",
            f"kills: {k['supervisor']} supervisors ({k['supervisor mid-session']} mid-session,"
            f" {k[AT_END]} just after an agent logged its end"
            + (f", {k['supervisor at a claim']} between a claim and its session"
               if k["supervisor at a claim"] else "") + "),"
            f" {k['hook']} hooks, {k['agent transition']} agents' transitions, "
            f"{k['own transition']} own transitions; redis outages: "
            + (", ".join(f"{d:.1f} s" for d in self.outages) or "none"),
            f"supervisor starts {self.supervisor_starts}; unexpected exits "
            f"{self.unexpected_exits or 'none'}; not stopped by SIGTERM "
            f"{self.not_stopped_by_sigterm or 'none'}",
            f"run to the end twice: {self.run_twice or 'none'} (of them, killed just after "
            f"that end: {self.run_twice_after_end_kill or 'none'}; supervisor killed ms after "
            f"the first end: {self.kill_after_first_end_ms() or 'none'}); started twice: "
            f"{len(self.started_twice)} {self.started_twice or ''}",
            f"lost: {self.lost or 'none'} (claimed without a session: "
            f"{self.claimed_without_session or 'none'}); orphans: {self.orphans or 'none'}; "
            f"overlaps: {self.overlaps[:5] or 'none'} (max agents of one Nova at once: "
            f"{self.max_agents_per_nova})",
            f"sessions: {dict(self.outcomes)}, left running {self.left_running}; "
            f"recoveries {self.recoveries}, agents outliving their supervisor waited for "
            f"{self.orphans_waited_for}, stopped {self.orphans_stopped}",
            f"stream: {s.committed} committed transitions, {s.landed} landed, missing "
            f"{s.missing}, duplicated {s.duplicated}, extra {s.extra}, out of order "
            f"{s.out_of_order or 'none'}, outbox {s.outbox_waiting}, queued {s.queued}; "
            f"of {s.sessions} sessions, without session.started: {s.without_started or 'none'},"
            f" settled without session.ended: {s.without_ended or 'none'}",
        ]
        return "\n".join(lines)


# --- /proc ------------------------------------------------------------------------------

def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start ticks) of a process, None when it is gone."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    raw = _read(f"/proc/{pid}/cmdline") or b""
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _environ_has(pid: int, needle: bytes) -> bool:
    raw = _read(f"/proc/{pid}/environ")
    return raw is not None and needle in raw


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _claims_without_session(conn: sqlite3.Connection) -> dict[int, str]:
    """Claimed items (id -> claimant) with no session started at or after the claim (a
    session's row records the `now` its claim was made with)."""
    return dict(conn.execute(
        "SELECT w.id, w.claimed_by FROM work_items w WHERE w.status = 'claimed'"
        " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.item_id = w.id"
        " AND s.started_at >= w.updated_at - 0.001)").fetchall())


# --- the run ----------------------------------------------------------------------------

class ChaosRun:
    def __init__(self, root: Path, server, options: ChaosOptions,
                 torchsm: list[str] | None = None, env: dict[str, str] | None = None):
        self.root, self.server, self.options = root, server, options
        self.torchsm = list(torchsm or torchsm_executable())
        self.home = Home(root / "home")
        self.log = root / "runs.log"
        self.agent = root / "agent.py"
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(10**6)
        self.rng = random.Random(seed)  # the supervisor kills and the outage
        self.prng = random.Random(seed + 1)  # the hook and transition kills
        self.result = ChaosResult(options.items, seed)
        self.env = {**os.environ, "TORCHSM_HOME": str(self.home.path),
                    "TORCHSM_REDIS_URL": server.url}
        self.env.pop("TORCHSM_DEBUG", None)
        self.env.pop("TORCHSM_ITEM", None)
        self.env.update(env or {})
        self.procs: dict[str, subprocess.Popen] = {}
        self.killed: set[int] = set()  # supervisor pids the chaos thread killed
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # no more restarts
        self.chaos_off = threading.Event()
        self.errors: list[BaseException] = []
        self.samples: list[tuple[str, list[int]]] = []  # (Nova, its agents alive at once)

    # setting up

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.torchsm, "--home", str(self.home.path), *args],
                              env=self.env, cwd=self.root, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"torchsm {' '.join(args)} exited {done.returncode}: "
                               f"{done.stderr.strip()}")
        return done

    def setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.cli("init")
        self.home.config_path.write_text(CONFIG.format(url=self.server.url))
        for name in SUPERVISED:
            self.cli("nova", "add", name)
        self.cli("nova", "add", SPARE, "--personality", "torch")
        items = self.root / "items.jsonl"
        with items.open("w") as f:
            for n in range(1, self.options.items + 1):
                nova = None if n % 3 == 0 else SUPERVISED[n % 2]  # a third shared
                f.write(json.dumps({"text": f"chaos item {n}", "nova": nova}) + "\n")
        self.cli("queue", "import", str(items))
        self.agent.write_text(AGENT.format(
            log=str(self.log), torchsm=self.torchsm, home=str(self.home.path),
            calls=self.options.agent_calls, work_s=tuple(self.options.work_s)))
        self.log.touch()

    # the service manager

    def _spawn(self, name: str) -> subprocess.Popen:
        out = open(self.root / f"supervisor-{name}.log", "ab")
        err = open(self.root / f"supervisor-{name}.err", "ab")
        try:
            proc = subprocess.Popen(
                [*self.torchsm, "--home", str(self.home.path), "run", name, "--json", "--",
                 sys.executable, str(self.agent)],
                env=self.env, cwd=self.root, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        finally:
            out.close()
            err.close()
        self.result.supervisor_starts += 1
        return proc

    def _manage(self) -> None:
        while not self.stopping.is_set():
            for name in SUPERVISED:
                with self.lock:
                    if self.stopping.is_set():
                        return
                    proc = self.procs.get(name)
                    if proc is not None and proc.poll() is None:
                        continue
                    if proc is not None and proc.pid not in self.killed:
                        tail = (self.root / f"supervisor-{name}.err").read_text(
                            errors="replace").strip().splitlines()[-1:]
                        self.result.unexpected_exits.append(
                            (name, proc.returncode, tail[0] if tail else ""))
                        if len(self.result.unexpected_exits) > 20:
                            raise RuntimeError(f"supervisors keep failing: "
                                               f"{self.result.unexpected_exits[-3:]}")
                    self.procs[name] = self._spawn(name)
            time.sleep(0.01)

    # the chaos

    def _plan(self, name: str) -> dict:
        try:
            return json.loads((self.home.path / "run" / f"{name}.json").read_text())
        except (OSError, ValueError):
            return {}

    def _kill_supervisor(self) -> None:
        name = self.rng.choice(SUPERVISED)
        draw = self.rng.random()
        o = self.options
        at_end = self._an_end(name) if draw < o.at_end_share else None
        at_claim = (o.at_end_share <= draw < o.at_end_share + o.at_claim_share
                    and self._a_claim(name))
        if at_end is not None:
            time.sleep(self.rng.uniform(0, 0.01))  # the agent exits, its supervisor settles
        elif at_claim:
            pass  # at once: the session's row is a few ms away
        elif draw < o.at_end_share + o.at_claim_share + o.mid_session_share:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not self.chaos_off.is_set():
                plan, proc = self._plan(name), self.procs.get(name)
                if plan.get("state") == "running" and proc and plan.get("pid") == proc.pid:
                    break
                time.sleep(0.005)
            time.sleep(self.rng.uniform(0, 0.5))  # the work, its end, the settling
        with self.lock:
            if self.stopping.is_set() or self.chaos_off.is_set():
                return
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                return
            plan = self._plan(name)
            proc.send_signal(signal.SIGKILL)
            self.result.supervisor_kills.append((time.time(), name))
            self.killed.add(proc.pid)
        self.result.kills["supervisor"] += 1
        if plan.get("state") == "running" and plan.get("pid") == proc.pid:
            self.result.kills["supervisor mid-session"] += 1
        if at_claim:
            self.result.kills["supervisor at a claim"] += 1
        if at_end is not None:
            self.result.kills[AT_END] += 1
            self.result.ended_as_killed.append(at_end)

    def _a_claim(self, name: str) -> bool:
        """Wait until `name` holds a claim its session's row does not show yet."""
        conn = self._db()
        try:
            before = set(_claims_without_session(conn))
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not self.chaos_off.is_set():
                if any(nova == name and item not in before
                       for item, nova in _claims_without_session(conn).items()):
                    return True
                time.sleep(0.001)
        finally:
            conn.close()
        return False

    def _an_end(self, name: str) -> int | None:
        """Wait until an agent of `name` logs the end of its run (it is about to exit 0,
        and its supervisor to settle the session): its item, None when none did in 3 s."""
        with self.log.open("rb") as f:
            f.seek(0, os.SEEK_END)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not self.chaos_off.is_set():
                for line in f.read().decode().splitlines():
                    fields = line.split()
                    if len(fields) == 5 and fields[0] == "end" and fields[3] == name \
                            and fields[1] != "-":
                        return int(fields[1])
                time.sleep(0.002)
        return None

    def _kill_process(self) -> None:
        """Kill -9 one hook or transition process at a random moment of its run (start-up,
        commit, publish): one of the agents' when one turns up, else one of our own."""
        for _ in range(10):  # until a kill lands on a process still running
            if self.chaos_off.is_set():
                return
            if self.prng.random() >= self.options.own_transition_share \
                    and self._kill_agents_child():
                return
            if self._kill_own_transition():
                return

    def _kill_agents_child(self) -> bool:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not self.chaos_off.is_set():
            found = self._agents_children()
            if found:
                pid, kind, ticks = self.prng.choice(found)
                time.sleep(self.prng.uniform(0, 0.05))  # (it lives 40-100 ms)
                stat = _stat(pid)
                if stat is not None and stat[0] != "Z" and stat[1] == ticks:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    self.result.kills[kind] += 1
                    return True
            time.sleep(0.005)
        return False

    def _agents_children(self) -> list[tuple[int, str, int]]:
        """(pid, kind, start ticks) of the hook and transition processes of the agents."""
        home = str(self.home.path)
        found = []
        for pid in _pids():
            argv = _cmdline(pid)
            if home not in argv or "run" in argv or SPARE in argv:
                continue
            kind = "hook" if "hook" in argv else "agent transition" if "transition" in argv else None
            stat = _stat(pid)
            if kind and stat and stat[0] != "Z":
                found.append((pid, kind, stat[1]))
        return found

    def _kill_own_transition(self) -> bool:
        event = self.prng.choice(["cool", "work --force", "meditate", "dream"])
        proc = subprocess.Popen([*self.torchsm, "--home", str(self.home.path), "transition",
                                 SPARE, *event.split()], env=self.env, cwd=self.root,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(self.prng.uniform(0.02, 0.12))  # about a whole call: before, in, after
        landed = proc.poll() is None
        if landed:
            proc.kill()
            self.result.kills["own transition"] += 1
        proc.wait()
        return landed

    def _outage(self) -> None:
        began = time.monotonic()
        self.server.kill()
        time.sleep(self.rng.uniform(*self.options.outage_s))
        self.server.start()
        self.result.outages.append(time.monotonic() - began)

    def _supervisor_chaos(self) -> None:
        """Kill supervisors now and then; start the Redis outage when its moment comes."""
        o = self.options
        next_kill = time.monotonic() + self.rng.uniform(*o.supervisor_kill_every_s)
        outage_at = self.rng.uniform(*o.outage_at)
        outage: threading.Thread | None = None
        next_look = 0.0
        try:
            while not self.chaos_off.is_set():
                now = time.monotonic()
                if outage is None and now >= next_look:
                    next_look = now + 0.1
                    if self.done_share() >= outage_at:
                        outage = threading.Thread(target=self._guarded(self._outage),
                                                  daemon=True)
                        outage.start()
                if now >= next_kill:
                    self._kill_supervisor()
                    next_kill = time.monotonic() + self.rng.uniform(*o.supervisor_kill_every_s)
                time.sleep(0.01)
        finally:
            if outage is not None:
                outage.join()  # the server is back before anything is measured

    def _process_chaos(self) -> None:
        """Kill hook and transition processes now and then (a thread of its own, so the
        supervisor kills' waiting does not hold them up)."""
        every = self.options.process_kill_every_s
        while not self.chaos_off.wait(self.prng.uniform(*every)):
            self._kill_process()

    def _monitor(self) -> None:
        """Sample the agents alive: two of one Nova at once is an overlap."""
        agent = str(self.agent)
        while not self.chaos_off.is_set():
            per_nova: dict[str, list[int]] = {}
            for pid in _pids():
                argv = _cmdline(pid)
                if len(argv) != 2 or argv[1] != agent or not _alive(pid):
                    continue  # (the keeper's command line holds more than the agent's)
                raw = _read(f"/proc/{pid}/environ") or b""
                nova = next((v.split(b"=", 1)[1].decode() for v in raw.split(b"\0")
                             if v.startswith(b"TORCHSM_NOVA=")), "?")
                per_nova.setdefault(nova, []).append(pid)
            for nova, pids in per_nova.items():
                self.samples.append((nova, sorted(pids)))
            time.sleep(0.1)

    def _guarded(self, target):
        def run():
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by run()
                self.errors.append(exc)
                self.chaos_off.set()
        return run

    # progress and the end

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home.db_path, timeout=10)

    def statuses(self) -> dict[int, str]:
        conn = self._db()
        try:
            return dict(conn.execute("SELECT id, status FROM work_items").fetchall())
        finally:
            conn.close()

    def claims_without_session(self) -> dict[int, str]:
        conn = self._db()
        try:
            return _claims_without_session(conn)
        finally:
            conn.close()

    def done_share(self) -> float:
        statuses = self.statuses()
        return sum(s == "done" for s in statuses.values()) / max(1, len(statuses))

    def _stop_supervisors(self) -> None:
        # each must be up (its plan written) so SIGTERM finds its handler, not a bare start
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
                self._plan(n).get("pid") == self.procs[n].pid for n in SUPERVISED):
            time.sleep(0.02)
        with self.lock:
            self.stopping.set()
            for proc in self.procs.values():
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(self.options.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.result.not_stopped_by_sigterm.append(name)
                proc.kill()
                proc.wait()
                continue
            if proc.returncode != 0:
                self.result.not_stopped_by_sigterm.append(f"{name} (exit {proc.returncode})")

    def _home_processes(self) -> list[tuple[int, str]]:
        """Processes of this run still alive: their command line names the run's folder,
        or their environment its home."""
        root, needle = str(self.root), f"TORCHSM_HOME={self.home.path}\0".encode()
        server = getattr(self.server.proc, "pid", None)
        left = []
        for pid in _pids():
            if pid in (os.getpid(), server) or not _alive(pid):
                continue
            argv = _cmdline(pid)
            if any(root in arg for arg in argv) or _environ_has(pid, needle):
                left.append((pid, " ".join(argv)))
        return left

    def _orphans(self) -> list[tuple[int, str]]:
        deadline = time.monotonic() + 3  # an agent's last hook call may still be ending
        while True:
            left = dict(self._home_processes())
            for line in self.log.read_text().splitlines():
                pid = int(line.split()[2])
                if pid not in left and _alive(pid) and str(self.agent) in _cmdline(pid):
                    left[pid] = " ".join(_cmdline(pid))
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for pid in left:  # leave nothing behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return sorted(left.items())

    def _measure(self) -> None:
        r = self.result
        agents = set()
        for line in self.log.read_text().splitlines():
            word, item, pid, nova, at = line.split()
            agents.add(int(pid))
            r.runs.append((word, -1 if item == "-" else int(item), int(pid), nova, float(at)))
            if item == "-":
                continue
            (r.starts if word == "start" else r.ends)[int(item)] += 1
        # Only processes that logged a run are agents: a child the agent forks for a hook
        # wears the agent's command line until its exec.
        for nova, pids in self.samples:
            pids = [pid for pid in pids if pid in agents]
            r.max_agents_per_nova = max(r.max_agents_per_nova, len(pids))
            if len(pids) > 1:
                r.overlaps.append((nova, pids))
        r.statuses = self.statuses()
        r.claimed_without_session = self.claims_without_session()
        conn = self._db()
        try:
            r.outcomes = Counter(dict(conn.execute(
                "SELECT outcome, count(*) FROM sessions GROUP BY outcome").fetchall()))
            r.left_running = r.outcomes.get("running", 0)
            r.stream.sessions = sum(r.outcomes.values())
            r.stream.outbox_waiting = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        finally:
            conn.close()
        for name in SUPERVISED:
            for line in (self.root / f"supervisor-{name}.log").read_text(
                    errors="replace").splitlines():
                r.orphans_waited_for += "outlived its supervisor: waiting for it" in line
                r.orphans_stopped += "): stopping it" in line or "out of time: stopping" in line
                r.recoveries += "a supervisor left running" in line
        self._check_stream()

    def _check_stream(self) -> None:
        s = self.result.stream
        landed = stream_entries(self.server, OPS_STREAM)
        ids = [e.event_id for e in landed]
        s.duplicated = len(ids) - len(set(ids))
        committed = history_event_ids(self.home)
        mirrored = per_nova(landed)
        all_committed = {i for ids_ in committed.values() for i in ids_}
        s.committed = len(all_committed)
        s.landed = sum(map(len, mirrored.values()))
        s.missing = len(all_committed - set(ids))
        s.extra = sum(1 for ids_ in mirrored.values() for i in ids_ if i not in all_committed)
        for nova in sorted(set(committed) | set(mirrored)):
            if mirrored.get(nova, []) != committed.get(nova, []):
                s.out_of_order.append(nova)
        s.queued = sum(FileQueue(self.home.queue_dir, stream).pending_count()
                       for stream in STREAMS)
        conn = self._db()
        try:
            sessions = conn.execute("SELECT id, error FROM sessions ORDER BY id").fetchall()
        finally:
            conn.close()
        started = {e.data.get("session") for e in landed if e.type == "session.started"}
        ended = {e.data.get("session") for e in landed if e.type == "session.ended"}
        s.without_started = [i for i, _ in sessions if i not in started]
        s.without_ended = [i for i, error in sessions if i not in ended
                           and "supervisor ended before" not in (error or "")]

    def run(self) -> ChaosResult:
        self.setup()
        began = time.monotonic()
        threads = [threading.Thread(target=self._guarded(t), daemon=True)
                   for t in (self._manage, self._supervisor_chaos, self._process_chaos,
                             self._monitor)]
        for t in threads:
            t.start()
        try:
            deadline = began + self.options.time_limit_s
            stuck_since = None
            while time.monotonic() < deadline and not self.errors:
                statuses = self.statuses()
                open_items = {i for i, s in statuses.items() if s not in ("done", "dead")}
                if not open_items:
                    break
                # what only the lease gives back (an hour and more) is not worth waiting for
                if open_items <= set(self.claims_without_session()):
                    stuck_since = stuck_since or time.monotonic()
                    if time.monotonic() - stuck_since > self.options.stuck_s:
                        break
                else:
                    stuck_since = None
                time.sleep(0.1)
            self.result.finished = all(s == "done" for s in self.statuses().values())
            self.chaos_off.set()
            for t in threads[1:]:
                t.join(60)
            if self.errors:
                raise self.errors[0]
            self._stop_supervisors()
            threads[0].join(10)
            self.result.wall_s = time.monotonic() - began
            self.cli("mirror", "flush")
            self.result.orphans = self._orphans()
            self._measure()
        finally:
            self.chaos_off.set()
            self.stopping.set()
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return self.result


def run(root: Path, server, options: ChaosOptions | None = None,
        torchsm: list[str] | None = None, env: dict[str, str] | None = None) -> ChaosResult:
    """One chaos run in `root` (created) against `server` (a running tests/redis_server
    RedisServer, persistent). `torchsm`: the command that runs it (default: this
    checkout's); `env`: more environment for every process (PYTHONPATH, say). Every
    process runs in `root`, so `python -m torchsm` finds no checkout in its folder."""
    return ChaosRun(root, server, options or ChaosOptions(), torchsm, env).run()
