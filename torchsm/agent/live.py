"""Whether a Nova has an agent session running now, and which.

What may not run beside a live session (a person's `torchsm dream`, which moves the Nova to
`dreaming` and back, and rewrites its memory) asks here first. A session is live when
  1. the ledger has a row of it still `running` whose agent process still runs (the same
     pid and start time: a supervisor's session, or an agent that outlived its supervisor),
     or whose agent is not recorded yet while the Nova's supervisor runs (it is starting);
  2. or Claude Code ran a hook of the Nova within LIVE_HOOK_S and the latest one ended
     neither the turn (a Stop that let the agent stop, a StopFailure, a PreToolUse that
     ended the turn) nor the session (SessionEnd): a turn is under way in a session nobody
     supervises (a person's `claude` in a project with torchsm's hooks installed), or the
     agent itself asks from inside its session.
A session idle at its prompt is not live; one killed in the middle of a turn counts as
live for LIVE_HOOK_S after its last hook. With two sessions of one Nova at once only the
latest hook run is read. Reads only: call it inside the transaction that acts on it.
"""

from __future__ import annotations

import sqlite3

from torchsm.agent import orphans
from torchsm.config import Home
from torchsm.storage import run_files, store
from torchsm.usage import ledger

# A working Claude Code session runs a hook before and after every tool call; its Bash tool
# runs for 10 minutes at most. A session silent for longer is waiting for a person, or gone.
LIVE_HOOK_S = 900.0
ENDED = "session-end"


def live_session(conn: sqlite3.Connection, home: Home, nova_id: int, name: str,
                 now: float) -> str | None:
    """Why Nova `name` has a live session at `now`, in words ("session 7 is running
    (agent pid 123)"); None when it has none."""
    return _supervised(conn, home, nova_id, name) or _hooked(conn, nova_id, now)


def _supervised(conn: sqlite3.Connection, home: Home, nova_id: int, name: str) -> str | None:
    for session_id, pid, ticks in ledger.running(conn, nova_id):
        if orphans.alive_as_recorded(pid, ticks):
            return f"session {session_id} is running (agent pid {pid})"
        if pid is None and run_files.read_plan(home, name) is not None:
            return f"session {session_id} is starting"
    return None


def _hooked(conn: sqlite3.Connection, nova_id: int, now: float) -> str | None:
    """The latest hook run within LIVE_HOOK_S, when it is a turn under way."""
    latest = store.latest_hook_run(conn, nova_id, now - LIVE_HOOK_S)
    if latest is None or _ends_a_turn(*latest[:2]):
        return None
    event, _, at, session_id = latest
    return (f"Claude Code session {session_id or '(no id)'} ran its {event} hook "
            f"{max(now - at, 0):.0f} s ago and has not ended")


def _ends_a_turn(event: str, outcome: str) -> bool:
    """Whether a hook run ends the turn (or the session): after it the agent waits for a
    person, or is gone, until the next prompt runs a hook again."""
    return (event in (ENDED, "stop-failure") or (event == "stop" and outcome != "continued")
            or (event == "pre-tool-use" and outcome == "blocked"))
