"""The agent's keeper: `python -m torchsm.shim EXIT_FILE -- COMMAND [ARG...]`.

The supervisor starts every agent through this small process, which runs COMMAND as its
child, waits for it and writes how it ended to EXIT_FILE before it ends the same way
itself. The end of an agent is then on disk the moment it happens, not only when the
supervisor settles the session: a supervisor killed in between (kill -9, OOM) leaves a
successor that knows the agent finished, so its item is not run again (recovery.py).

Signals that would stop it (SIGTERM, SIGINT, SIGHUP) are passed on to the agent and the
keeper goes on waiting, so the record is written whatever stops the agent. The agent is
asked to die with its keeper, and the keeper with the supervisor (orphans.py), unless
they ignore that signal. Stdlib only: it starts before every session.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m torchsm.shim EXIT_FILE -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    exit_file, command = argv[0], argv[2:]
    die_with_me = _death_signal()
    agent = [0]  # set before any signal can find it: handlers go in before the fork
    for sig in PASSED_ON:  # (exec gives the agent back the default handlers)
        signal.signal(sig, lambda signum, _frame: _pass_on(agent[0], signum))
    agent[0] = pid = os.fork()
    if pid == 0:
        _become_agent(command, die_with_me)
    status = _wait(pid)
    _record(exit_file, status)
    return _end_like(status)


def _death_signal():
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _become_agent(command: list[str], die_with_me) -> None:
    try:
        if die_with_me is not None:
            die_with_me()
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"torchsm: cannot start {command[0]}: {exc.strerror}", file=sys.stderr)
    os._exit(127)


def _pass_on(pid: int, signum: int) -> None:
    if pid <= 0:
        return  # before the fork: the agent will learn of the stop from its group
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def _record(exit_file: str, status: int) -> None:
    code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
    temp = f"{exit_file}.tmp"
    try:
        with open(temp, "w", encoding="utf-8") as f:
            json.dump({"exit_status": code}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, exit_file)
    except OSError:
        pass  # nowhere to write: the supervisor's own record is what there is


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
