"""Helpers for the supervisor's tests: a clock that never really waits, agent scripts,
and reading the ledger and history back."""

from __future__ import annotations

import random
import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Callable

from torchsm.config import Config, Home, parse_config
from torchsm.supervisor.loop import RunOptions, Supervisor

T0 = 1_800_000_000.0  # a fixed start, far from any real clock


class FakeClock:
    """Time that passes only when the supervisor sleeps. `at` schedules actions (another
    process sending a wake, say) for when the clock reaches a time."""

    def __init__(self, start: float = T0):
        self.t = start
        self.slept = 0.0
        self._actions: list[tuple[float, Callable[[], None]]] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.slept += seconds
        due = [a for a in self._actions if a[0] <= self.t]
        self._actions = [a for a in self._actions if a[0] > self.t]
        for _, action in due:
            action()

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._actions.append((when, action))


def config_with(text: str) -> Config:
    import tomllib

    return parse_config(tomllib.loads(textwrap.dedent(text)))


def agent_script(tmp_path: Path, body: str, name: str = "agent.py") -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def supervisor(home: Home, config: Config, command: list[str], clock: FakeClock, *,
               name: str = "torch", seed: int = 1, poll_s: float = 5.0,
               agent_output: str = "claude-code", **options) -> Supervisor:
    """A supervisor whose agent is declared to speak Claude Code's JSON: the agent
    scripts of these tests stand in for Claude Code (tests/test_agent_signals.py shows
    what an undeclared agent's lines are worth)."""
    options = RunOptions(tuple(command), agent_output=agent_output, **options)
    return Supervisor(home, config, name, options, clock=clock,
                      rng=random.Random(seed), load=lambda: None, poll_s=poll_s,
                      base_env={"PATH": "/usr/bin:/bin", "TORCHSM_REDIS_URL": "off"})


def db(home: Home) -> sqlite3.Connection:
    return sqlite3.connect(home.db_path)


def sessions(home: Home) -> list[tuple]:
    """(started_at, ended_at, kind, item_id, outcome, error) of every session, in order."""
    with db(home) as conn:
        return conn.execute("SELECT started_at, ended_at, kind, item_id, outcome, error"
                            " FROM sessions ORDER BY id").fetchall()


def history(home: Home) -> list[tuple]:
    """(event, to_state, at, until, reason) of every transition, in order."""
    with db(home) as conn:
        return conn.execute("SELECT event, to_state, at, until, reason FROM history"
                            " ORDER BY id").fetchall()


def most_in_any_hour(starts: list[float]) -> int:
    return max((sum(1 for s in starts if t <= s < t + 3600) for t in starts), default=0)
