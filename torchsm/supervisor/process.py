"""`torchsm run` as a process: the command check, the Nova's lock, signals, real time.

The loop itself is torchsm.supervisor.loop; this is what surrounds it when a person starts it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

from torchsm import novas
from torchsm.clock import format_time
from torchsm.cluster import accounts as cluster_accounts
from torchsm.config import Config, Home
from torchsm.errors import AgentCommandError
from torchsm.storage import run_files
from torchsm.supervisor.loop import Report, RunOptions, RunSummary, Supervisor


class RealClock:
    """Wall-clock time; sleeping ends early when `stop` is set (by a signal)."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)


def check_command(command: tuple[str, ...], cwd: str | None, env: dict[str, str]) -> None:
    """AgentCommandError unless COMMAND names a program that can be run (in `cwd`)."""
    if not command:
        raise AgentCommandError("no agent command given: use `torchsm run NAME -- COMMAND "
                                "[ARG...]`")
    if cwd is not None and not Path(cwd).is_dir():
        raise AgentCommandError(f"no such directory: {cwd}")
    program = command[0]
    if "/" in program:
        path = Path(cwd or ".") / program
        found = path.is_file() and os.access(path, os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath)) is not None
    if not found:
        raise AgentCommandError(f"command not found: {program}")


def supervise(home: Home, config: Config, name: str, options: RunOptions, *,
              stop: threading.Event, report: Report = lambda event: None) -> RunSummary:
    """Check the command and the Nova, take the Nova's supervisor lock, and run."""
    check_command(options.command, options.cwd, dict(os.environ))
    novas.status(home, config, name)  # the home, the schema and the Nova must be there
    lock = run_files.lock_supervisor(home, name)
    try:
        supervisor = Supervisor(home, config, name, options, clock=RealClock(stop), stop=stop,
                                report=report)
        report({"event": "start", "nova": name, "at": format_time(time.time()),
                "message": f"supervising {name} (pid {os.getpid()}): "
                           f"{' '.join(options.command)}", "pid": os.getpid()})
        with cluster_accounts.syncing(home, config, name, report, time.time):
            return supervisor.run()
    finally:
        lock.release()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGTERM, SIGINT and SIGHUP (a closed terminal or SSH session) set `stop` (the loop
    then ends cleanly: the agent is stopped and its session settled) instead of killing
    the process; yields the list of signals received. Restores the old handlers.

    The handler itself does nothing: Python runs it in the main thread between two
    bytecodes, maybe inside `stop.wait()` holding the Event's lock, and `stop.set()` there
    waits for that lock for ever. The signal's number reaches a pipe instead
    (signal.set_wakeup_fd, written in C), and a thread of its own sets `stop`."""
    received: list[int] = []
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    previous = {sig: signal.signal(sig, _ignore_in_python) for sig in STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    watcher = threading.Thread(target=_stop_on_wakeup, args=(wake_read, stop, received),
                               name="torchsm-signals", daemon=True)
    watcher.start()
    try:
        yield received
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wake_write)  # the watcher reads the end of the pipe and ends
        watcher.join()
        os.close(wake_read)


def _ignore_in_python(_signum, _frame) -> None:
    """The signal was written to the wakeup pipe already (stop_on_signals)."""


def _stop_on_wakeup(wake_read: int, stop: threading.Event, received: list[int]) -> None:
    while chunk := os.read(wake_read, 64):
        heard = [signum for signum in chunk if signum in STOP_SIGNALS]
        if heard:
            received.extend(heard)
            stop.set()
