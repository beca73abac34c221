"""Agents that outlived their supervisor.

An agent runs in a process group of its own, so that stopping a session reaches all it
started; the price is that a supervisor killed with -9 leaves it running. It is asked to
die with its parent (Linux: PR_SET_PDEATHSIG), which covers the agent itself; what it
started may still run. So the ledger records each agent's pid and its start time, and a
new supervisor, before it starts anything, stops any group a recorded agent still leads
(the start time must match: a reused pid is never signalled) and settles its session.
Linux only where it reads /proc; elsewhere nothing is found and nothing is signalled.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

PR_SET_PDEATHSIG = 1
POLL_S = 0.05


def start_ticks(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot; None when it is gone (or
    a zombie: it runs nothing any more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # the name may hold spaces and parens
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def alive_as_recorded(pid: int | None, ticks: int | None) -> bool:
    """Whether the process recorded as (pid, ticks) still runs."""
    return pid is not None and ticks is not None and start_ticks(pid) == ticks


SUPERVISOR_ENV = "TORCHSM_SUPERVISOR"  # "PID:TICKS" of the supervisor of a session


def supervisor_mark() -> str:
    """This process as its agents' environment names it (SUPERVISOR_ENV)."""
    pid = os.getpid()
    return f"{pid}:{start_ticks(pid)}"


def supervisor_gone(mark: str | None) -> int | None:
    """The pid of the supervisor `mark` (SUPERVISOR_ENV) names when it is gone; None
    while it lives, or when there is no mark (an agent nobody supervises)."""
    pid, _, ticks = (mark or "").partition(":")
    if not pid.isdigit() or not ticks.isdigit():
        return None
    return None if alive_as_recorded(int(pid), int(ticks)) else int(pid)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the group, SIGKILL what is left after `grace_s`, and wait until it is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(POLL_S)


def prctl() -> Callable[..., int] | None:
    """libc's prctl (Linux), or None where there is none."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent() -> Callable[[], None] | None:
    """A preexec function for the agent: SIGTERM when the supervisor dies (Linux). Made
    in the parent, so nothing is imported or loaded between fork and exec; None where
    there is no prctl (the next supervisor still finds the agent by its pid)."""
    call = prctl()
    if call is None:
        return None
    sigterm = int(signal.SIGTERM)

    def set_death_signal() -> None:
        call(PR_SET_PDEATHSIG, sigterm, 0, 0, 0)

    return set_death_signal
