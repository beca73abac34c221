"""A shell command run aside: bounded in time, in what is kept of its output, and in how
long it may outlive whoever started it.

Used for `[alerts] command`, a person's notification hook (a curl to a chat, say), which
must never hold up the code that runs it: a command that never returns, or that prints
without end, would otherwise stall a supervisor or fill its memory (issue 20). So:

- it runs by /bin/sh in a process group of its own, which is killed whole (SIGKILL) at its
  deadline, on `should_stop`, or when the caller is interrupted;
- where coreutils' `timeout` is found the group also carries its own deadline (a little
  past ours), so a caller killed with -9 does not leave it running for ever;
- stdin is a file holding the text (writing it can never block), stdout goes nowhere and
  only the last TAIL_BYTES of stderr are kept, read by a thread as they come.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

TAIL_BYTES = 4096  # of stderr, enough for the last lines that say what went wrong
READ_CHUNK = 65536
POLL_S = 0.1  # how often a wait looks at `should_stop`
OWN_DEADLINE_MARGIN_S = 5.0  # `timeout`'s deadline, past ours: only for a caller gone
REAP_S = 1.0  # after the kill, at most this long for the pipe to close


@dataclass(frozen=True)
class Finished:
    """How a run ended: exit status (None when we killed it), whether its time ran out or
    `should_stop` cut it, and the last line of its stderr."""

    status: int | None
    timed_out: bool = False
    cut: bool = False
    last_line: str = ""


class Tail:
    """The last `size` bytes of a pipe, drained by a thread until the pipe closes: memory
    stays flat however much is written."""

    def __init__(self, stream, size: int = TAIL_BYTES):
        self.size, self._kept = size, bytearray()
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream) -> None:
        fd = stream.fileno()
        while chunk := os.read(fd, READ_CHUNK):
            self._kept += chunk
            del self._kept[:-self.size]
        stream.close()

    def last_line(self, timeout_s: float) -> str:
        """The last non-empty line, once the pipe closed (or `timeout_s` passed: a process
        that left the group may hold it open)."""
        self._thread.join(timeout_s)
        lines = bytes(self._kept).decode("utf-8", errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""


def run(command: str, stdin_text: str, timeout_s: float,
        should_stop: Callable[[], bool] = lambda: False) -> Finished:
    """Run `command` until it exits, `timeout_s` passes or `should_stop()`; then its whole
    group is killed. OSError when it cannot be started at all."""
    proc = None
    try:
        with _interrupts_held():
            proc = _start(command, stdin_text, timeout_s)
        tail = Tail(proc.stderr)
        ended = _wait(proc, time.monotonic() + timeout_s, should_stop)
    finally:
        if proc is not None and proc.poll() is None:  # out of time, cut, or interrupted
            kill_group(proc)
    return Finished(proc.returncode if ended == "exited" else None, ended == "timed out",
                    ended == "cut", tail.last_line(REAP_S))


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C while the command starts, then act on it: a KeyboardInterrupt inside
    Popen, after the fork, would leave the command running with nobody knowing its pid
    (seen under load: the command had started and written its pid, torchsm had not yet
    heard of it). Only the main thread receives signals; elsewhere nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    heard: list[tuple[int, object]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: heard.append((signum,
                                                                               frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if heard and callable(previous):
            previous(*heard[0])


def _start(command: str, stdin_text: str, timeout_s: float) -> subprocess.Popen:
    with tempfile.TemporaryFile() as stdin:
        stdin.write(stdin_text.encode("utf-8"))
        stdin.seek(0)
        return subprocess.Popen([*_own_deadline(timeout_s), "/bin/sh", "-c", command],
                                stdin=stdin, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)


def _own_deadline(timeout_s: float) -> list[str]:
    """`timeout -s KILL N`: it kills the whole group (itself included) at N even when
    nobody is left to do it; nothing where coreutils' timeout is missing."""
    found = shutil.which("timeout")
    return [found, "-s", "KILL", f"{timeout_s + OWN_DEADLINE_MARGIN_S:g}"] if found else []


def _wait(proc: subprocess.Popen, deadline: float, should_stop: Callable[[], bool]) -> str:
    """"exited", "timed out" or "cut", looking at `should_stop` every POLL_S."""
    while True:
        if should_stop():
            return "cut"
        left = deadline - time.monotonic()
        if left <= 0:
            return "timed out"
        try:
            proc.wait(timeout=min(POLL_S, left))
            return "exited"
        except subprocess.TimeoutExpired:
            pass


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's whole process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
