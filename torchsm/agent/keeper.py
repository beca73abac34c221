"""The agent's keeper: `python -m torchsm.agent.keeper FILES [--timeout S] [--grace S] --
COMMAND [ARG...]`.

The supervisor starts every agent through this small process, which runs COMMAND as its
child, relays its output, waits for it and writes how it ended to FILES.exit before it
ends the same way itself. The end of an agent is then on disk the moment it happens, not
only when the supervisor settles the session. Before the agent starts, FILES.keeper
names the keeper ("PID TICKS"): a supervisor killed before it recorded the agent in the
ledger still leaves a way to find it.

A supervisor killed outright (kill -9, OOM) must not cost the agent's work: an agent that
has just finished its item and is about to exit 0 would otherwise die of the death signal
or of writing to the dead supervisor's pipe, and its item would run again. So the keeper
outlives its supervisor: the agent never writes to the supervisor's pipe (the keeper
relays its output and, once nobody reads it, keeps the rest: stdout in FILES.out,
stderr in FILES.err; the next supervisor adds them to the Nova's log), and a
dead supervisor (the keeper's parent-death signal, SIGUSR1) does not stop the agent. It
may finish the session it was given, at most `--timeout` seconds from its start, after
which the keeper stops it (SIGTERM, SIGKILL after `--grace`). The next supervisor finds
the keeper by its recorded pid, waits for it and settles the session from FILES.exit
(recovery.py). An agent whose Stop hook sees its supervisor gone takes no new work.
`--orphaned-for S` stops it S seconds after its supervisor died instead: a cluster
item's session, which another host may take over once this host stops beating.
`--beat FILE --beat-within S` stops it, supervisor or not, once FILE's time (the host's
last acknowledged cluster beat, torchsm.cluster.membership) is S seconds old or FILE is
gone: a supervisor paused (SIGSTOP) beats no more, yet lives, so its agent is no orphan,
and the item may be taken over all the same. Checked every poll, and at once when the
whole host resumes from a pause.

Signals that stop it (SIGTERM, SIGINT, SIGHUP) are passed on to the agent and the keeper
goes on waiting, so the record is written whatever stops the agent. The agent dies with
its keeper. Stdlib and torchsm.agent.orphans only: it starts before every session.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

from torchsm.agent.orphans import PR_SET_PDEATHSIG, prctl as find_prctl, start_ticks

PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SUPERVISOR_GONE = signal.SIGUSR1  # the keeper's parent-death signal
READ_CHUNK = 65536
ORPHAN_OUTPUT_MAX = 16 * 1024 * 1024  # what is kept of an orphaned agent's output
POLL_S = 0.2
USAGE = ("usage: python -m torchsm.agent.keeper FILES [--timeout S] [--grace S] "
         "[--orphaned-for S] [--beat FILE --beat-within S] -- COMMAND [ARG...]")


class Options:
    def __init__(self, files: str, command: list[str], timeout_s: float = 3600,
                 grace_s: float = 10, orphaned_for_s: float | None = None):
        self.command, self.timeout_s, self.grace_s = command, timeout_s, grace_s
        self.orphaned_for_s = orphaned_for_s  # None: the whole timeout
        self.beat_file: str | None = None  # the host's beat file, for a cluster session
        self.beat_within_s = 0.0
        self.exit_file = f"{files}.exit"
        self.orphan_output = {1: f"{files}.out", 2: f"{files}.err"}  # by the agent's fd
        self.keeper_file = f"{files}.keeper"


def parse(argv: list[str]) -> Options | None:
    if "--" not in argv:
        return None
    cut = argv.index("--")
    head, command = argv[:cut], argv[cut + 1:]
    if not head or not command or len(head) % 2 != 1:
        return None
    options = Options(head[0], command)
    for flag, value in zip(head[1::2], head[2::2]):
        try:
            if flag == "--timeout":
                options.timeout_s = float(value)
            elif flag == "--grace":
                options.grace_s = float(value)
            elif flag == "--orphaned-for":
                options.orphaned_for_s = float(value)
            elif flag == "--beat":
                options.beat_file = value
            elif flag == "--beat-within":
                options.beat_within_s = float(value)
            else:
                return None
        except ValueError:
            return None
    return options


def main(argv: list[str]) -> int:
    options = parse(argv)
    if options is None:
        print(USAGE, file=sys.stderr)
        return 2
    supervisor = os.getppid()
    # Until here the parent-death signal is the SIGTERM the supervisor set: a supervisor
    # that dies now takes the keeper with it, before any agent runs.
    prctl = find_prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, int(SUPERVISOR_GONE), 0, 0, 0)
    keeper = Keeper(options)
    signal.signal(SUPERVISOR_GONE, lambda _s, _f: keeper.orphan())
    for sig in PASSED_ON:  # (exec gives the agent back the default handlers)
        signal.signal(sig, lambda signum, _frame: keeper.pass_on(signum))
    if os.getppid() != supervisor:
        return 1  # the supervisor died before the agent started: nothing ran
    _write_atomically(options.keeper_file, f"{os.getpid()} {start_ticks(os.getpid())}\n", sync=False)
    status = keeper.run(prctl)
    _record(options.exit_file, status)
    return _end_like(status)


class Keeper:
    """Runs the agent, relays its output, and keeps it to its time once orphaned."""

    def __init__(self, options: Options):
        self.options = options
        self.pid = 0  # the agent's, once it runs
        self.orphaned = False
        self.started = time.monotonic()
        self.orphaned_at: float | None = None
        self.kept_bytes = 0  # of both: ORPHAN_OUTPUT_MAX in all
        self.kept: dict = {}  # the agent's fd -> the file that keeps it, once opened
        self.out_open = self.err_open = True

    def orphan(self) -> None:
        self.orphaned = True
        self.orphaned_at = time.monotonic()

    def out_of_time(self, now: float) -> bool:
        """Past the session's timeout, or orphaned for longer than `--orphaned-for`."""
        limit = self.options.orphaned_for_s
        return (now - self.started >= self.options.timeout_s
                or (limit is not None and now - (self.orphaned_at or now) >= limit))

    def must_stop(self, now: float) -> bool:
        """Orphaned and out of time, or the host's lease at risk (its beat file stale)."""
        if self.orphaned and self.out_of_time(now):
            return True
        beat_file = self.options.beat_file
        return beat_file is not None and beat_is_stale(
            _file_time(beat_file), time.time(), self.options.beat_within_s)

    def pass_on(self, signum: int) -> None:
        if self.pid <= 0:
            return  # before the fork: the agent will learn of the stop from its group
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def run(self, prctl) -> int:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            _become_agent(self.options.command, prctl, out_w, err_w, (out_r, err_r))
        os.close(out_w)
        os.close(err_w)
        status = None
        stop_at, killed = None, False
        while status is None:
            self._relay(out_r, err_r)
            status = _reaped(self.pid)
            if status is None:
                now = time.monotonic()
                if stop_at is None and self.must_stop(now):
                    self.pass_on(signal.SIGTERM)  # out of time, and nobody to say so
                    stop_at = now + self.options.grace_s
                elif stop_at is not None and now >= stop_at and not killed:
                    self.pass_on(signal.SIGKILL)
                    killed = True
        self._drain(out_r, err_r)
        for kept in self.kept.values():
            kept.close()
        return status

    def _relay(self, out_r: int, err_r: int) -> None:
        """Pass on what the agent wrote within POLL_S (both pipes closed: just wait)."""
        fds = [fd for fd, is_open in ((out_r, self.out_open), (err_r, self.err_open))
               if is_open]
        if not fds:
            time.sleep(POLL_S / 4)
            return
        ready, _, _ = select.select(fds, [], [], POLL_S)
        for fd in ready:
            chunk = os.read(fd, READ_CHUNK)
            if not chunk:
                if fd == out_r:
                    self.out_open = False
                else:
                    self.err_open = False
                continue
            self._forward(1 if fd == out_r else 2, chunk)

    def _drain(self, out_r: int, err_r: int) -> None:
        """What the agent wrote before it exited. Its own children may hold the pipes
        open for longer: what they write later is not waited for."""
        for fd, is_open in ((out_r, self.out_open), (err_r, self.err_open)):
            while is_open and select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, READ_CHUNK)
                if not chunk:
                    break
                self._forward(1 if fd == out_r else 2, chunk)
            os.close(fd)

    def _forward(self, to_fd: int, chunk: bytes) -> None:
        if not self.orphaned:
            try:
                _write_all(to_fd, chunk)
                return
            except OSError:  # EPIPE: the supervisor is gone (its death signal may lag)
                self.orphan()
        self._keep(to_fd, chunk)

    def _keep(self, to_fd: int, chunk: bytes) -> None:
        """An orphan's output (stdout or stderr), for the supervisor that settles its
        session."""
        if self.kept_bytes >= ORPHAN_OUTPUT_MAX:
            return
        try:
            if to_fd not in self.kept:
                fd = os.open(self.options.orphan_output[to_fd],
                             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                self.kept[to_fd] = os.fdopen(fd, "wb")
            chunk = chunk[:ORPHAN_OUTPUT_MAX - self.kept_bytes]
            self.kept[to_fd].write(chunk)
            self.kept[to_fd].flush()
            self.kept_bytes += len(chunk)
        except OSError:
            self.kept_bytes = ORPHAN_OUTPUT_MAX  # nowhere to keep it: stop trying


def beat_is_stale(beat_at: float | None, now: float, within_s: float) -> bool:
    """The keeper's twin of torchsm.cluster.membership.lease_at_risk (this module stays
    stdlib only): no acknowledged beat within `within_s`, or none at all."""
    return beat_at is None or now - beat_at >= within_s


def _file_time(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _become_agent(command: list[str], prctl, out_w: int, err_w: int, close: tuple) -> None:
    try:
        for fd in close:
            os.close(fd)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (out_w, err_w):
            os.close(fd)
        # Python ignores SIGPIPE and an ignored signal stays ignored across exec; the
        # agent gets the default, as any program started from a shell does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)  # dies with its keeper
        os.execvp(command[0], command)
    except OSError as exc:
        os.write(2, f"torchsm: cannot start {command[0]}: {exc.strerror}\n".encode())
    os._exit(127)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _reaped(pid: int) -> int | None:
    """The agent's wait status once it has ended, else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done else None


def _record(exit_file: str, status: int) -> None:
    code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
    _write_atomically(exit_file, json.dumps({"exit_status": code}), sync=True)


def _write_atomically(path: str, text: str, sync: bool) -> None:
    temp = f"{path}.tmp"
    try:
        with open(temp, "w", encoding="utf-8") as f:
            f.write(text)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError:
        pass  # nowhere to write: the supervisor's own record is what there is


def read_keeper(keeper_file: str) -> tuple[int, int] | None:
    """(pid, start ticks) of the keeper that wrote `keeper_file`, or None."""
    try:
        with open(keeper_file, encoding="utf-8") as f:
            pid, ticks = f.read().split()
        return int(pid), int(ticks)
    except (OSError, ValueError):
        return None


def _end_like(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return code
    signal.signal(-code, signal.SIG_DFL)  # killed: end killed by the same signal
    os.kill(os.getpid(), -code)
    return 128 - code


def read_exit(exit_file: str) -> int | None:
    """The exit status the keeper recorded (negative: a signal), or None."""
    try:
        with open(exit_file, encoding="utf-8") as f:
            value = json.load(f).get("exit_status")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
