"""The fleet keeper: one process per home that keeps a `torchsm run NAME -- COMMAND`
supervisor running for each Nova wanted (HOME/run/fleet/wants.json, fleet_files).

It starts each supervisor in a process group of its own, restarts one that exits while
still wanted, alone, after an exponential backoff with jitter (afresh once it ran
RAN_LONG_ENOUGH_S), stops one no longer wanted, or of a raised generation (`restart`),
the way systemd would (SIGTERM: the supervisor stops its agent and records the session;
SIGKILL to its group after the stop timeout), and on SIGTERM stops them all and ends.
What it does goes to HOME/run/fleet/state.json for `ps` and `status`.

A Nova whose supervisor already runs outside the fleet (a `torchsm run` by hand) is left
alone: the keeper looks again now and then and starts one once it is gone.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.storage import fleet_files, run_files, store

RESTART_BASE_S = 1.0
RESTART_CAP_S = 300.0
RAN_LONG_ENOUGH_S = 120.0  # a supervisor that ran this long starts its backoff afresh
LOOK_AGAIN_S = 5.0  # a Nova supervised outside the fleet, or with no command: look again
POLL_S = 0.2
STOP_BOOKKEEPING_S = 30.0  # after its agent's grace, a supervisor records the session


def restart_delay(streak: int, rng: random.Random) -> float:
    """How long to wait before restarting a supervisor after `streak` quick exits in a row:
    base * 2**streak, capped, times uniform(0.5, 1). The jitter spreads restarts of
    supervisors that died together; its floor keeps one that dies at once from spinning."""
    return min(RESTART_CAP_S, RESTART_BASE_S * 2 ** streak) * rng.uniform(0.5, 1.0)


def stop_timeout(config: Config) -> float:
    """How long a supervisor may take to stop: its agent's grace, then its bookkeeping
    (as the systemd unit's TimeoutStopSec)."""
    return config.supervisor.stop_grace_s + STOP_BOOKKEEPING_S


@dataclass
class Member:
    """One Nova of the fleet and its supervisor process (None while it waits)."""

    name: str
    generation: int = 0
    pid: int | None = None
    started_at: float | None = None
    restarts: int = 0
    streak: int = 0
    next_start: float | None = None
    why: str = "starting"
    command: list[str] | None = None
    stopping_until: float | None = None  # SIGTERM sent; SIGKILL at this time
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        shown = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name not in ("proc", "stopping_until")}
        return {**shown, "next_start": format_time(self.next_start)}


class Keeper:
    """The keeper's loop; `step(now)` makes the processes match the wants once."""

    def __init__(self, home: Home, config: Config, torchsm: tuple[str, ...],
                 rng: random.Random | None = None):
        self.home, self.config, self.torchsm = home, config, torchsm
        self.rng = rng or random.Random()
        self.members: dict[str, Member] = {}
        self.started_at = time.time()

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set, or nothing is wanted and nothing runs; then stop all."""
        try:
            while not stop.is_set():
                wants = fleet_files.read_wants(self.home)
                self.step(wants, time.time())
                if not wants and not self.members:
                    break
                stop.wait(POLL_S)
        finally:
            self.stop_all()
            fleet_files.remove_state(self.home)

    def step(self, wants: dict[str, dict[str, Any]], now: float) -> None:
        for name in sorted(set(self.members) - set(wants)):
            self._leave(self.members[name], now)
        for name, wanted in sorted(wants.items()):
            member = self.members.setdefault(name, Member(name, wanted.get("generation", 0)))
            self._keep(member, wanted, now)
        self._write_state()

    def _leave(self, member: Member, now: float) -> None:
        if member.proc is None or self._stopped(member, now):
            del self.members[member.name]

    def _keep(self, member: Member, wanted: dict[str, Any], now: float) -> None:
        if member.proc is not None:
            if member.generation != wanted.get("generation", 0):
                if self._stopped(member, now):  # a restart asked for: at once, not counted
                    member.generation, member.next_start = wanted.get("generation", 0), now
                return
            self._watch(member, now)
        elif member.next_start is None or member.next_start <= now:
            member.generation = wanted.get("generation", 0)
            self._start(member, wanted.get("command"), now)

    def _watch(self, member: Member, now: float) -> None:
        """A supervisor that ended while wanted is restarted alone, after its backoff."""
        status = member.proc.poll()
        if status is None:
            return
        ran_s = now - (member.started_at or now)
        member.streak = 0 if ran_s >= RAN_LONG_ENOUGH_S else member.streak
        delay = restart_delay(member.streak, self.rng)
        member.streak += 1
        member.restarts += 1
        member.proc = member.pid = None
        member.next_start = now + delay
        member.why = (f"{_ended(status)} after {ran_s:.0f} s; restart {member.restarts} "
                      f"in {delay:.1f} s")

    def _start(self, member: Member, given: list[str] | None, now: float) -> None:
        outside = run_files.supervisor_pid(self.home, member.name)
        command = self._command(member.name, given)
        if outside is not None or command is None:
            member.next_start = now + LOOK_AGAIN_S
            member.why = (f"supervised outside the fleet (pid {outside}): left alone"
                          if outside is not None else
                          "no agent command (nova set NAME --command, or up -- COMMAND)")
            return
        member.proc = subprocess.Popen(
            [*self.torchsm, "--home", str(self.home.path), "run", member.name, "--",
             *command], stdin=subprocess.DEVNULL, start_new_session=True)
        member.pid, member.started_at, member.command = member.proc.pid, now, command
        member.next_start, member.why = None, "running"

    def _command(self, name: str, given: list[str] | None) -> list[str] | None:
        """The Nova's own command wins over the one `up` gave (read at each start: `nova
        set --command` takes effect at the next one)."""
        with store.open_store(self.home, self.config.db.lock_timeout_s) as db:
            kept = db.read(lambda conn: store.nova_command(conn, name))
        return kept or given

    def _stopped(self, member: Member, now: float) -> bool:
        """Ask `member`'s supervisor to stop (SIGTERM), then force it (SIGKILL to its
        group) after the stop timeout; True once it has ended."""
        if member.proc.poll() is not None:
            member.proc = member.pid = member.stopping_until = None
            member.why = "stopped"
            return True
        if member.stopping_until is None:
            member.stopping_until = now + stop_timeout(self.config)
            member.why = "stopping"
            _signal(member.proc.pid, signal.SIGTERM)
        elif now >= member.stopping_until:
            _signal(-member.proc.pid, signal.SIGKILL)
        return False

    def stop_all(self) -> None:
        """Stop every supervisor at once and wait for them all (within their timeout)."""
        while any(m.proc is not None for m in self.members.values()):
            now = time.time()
            for member in self.members.values():
                if member.proc is not None:
                    self._stopped(member, now)
            self._write_state()
            time.sleep(POLL_S / 2)
        self.members.clear()

    def _write_state(self) -> None:
        fleet_files.write_state(self.home, {
            "pid": os.getpid(), "started_at": self.started_at,
            "novas": {name: m.as_json() for name, m in self.members.items()}})


def _ended(status: int) -> str:
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
