"""The supervisor's files in HOME/run: one lock and one plan per Nova.

`NAME.lock` is held (flock) by the one supervisor of Nova NAME for as long as it runs; the
kernel drops it when the process dies, however it dies. `NAME.json` is the supervisor's
plan: its pid, what it is doing, and when and why it starts the next session. `torchsm
status` reads plans, so this module uses the stdlib only.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from torchsm.config import Home
from torchsm.errors import SupervisorRunning


CLEANER_WAIT_S = 30  # the longest another supervisor may hold a dead one's lock to clean up


def run_dir(home: Home) -> Path:
    """HOME/run: the supervisors' locks and plans."""
    return home.path / "run"


def try_lock(path: Path, wait: bool = False) -> int | None:
    """An exclusive flock on `path` (created, in a folder made if need be): its open file,
    whose closing (or the process's death, however it dies) drops the lock; None when
    another process holds it and `wait` is False."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class SupervisorLock:
    """The exclusive right to supervise one Nova; release it (or let the process end)."""

    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.path = path

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def lock_supervisor(home: Home, name: str) -> SupervisorLock:
    """Take Nova `name`'s supervisor lock, or SupervisorRunning naming the holder's pid."""
    folder = run_dir(home)
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + CLEANER_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            # The file names the supervisor that holds the lock. When that one is dead,
            # another Nova's supervisor is cleaning up after it (lock_if_free): briefly.
            if _alive(int(holder) if holder.isdigit() else None) or (
                    time.monotonic() >= deadline):
                os.close(fd)
                raise SupervisorRunning(name, holder) from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return SupervisorLock(fd, path)


def lock_if_free(home: Home, name: str) -> SupervisorLock | None:
    """Nova `name`'s supervisor lock when nobody holds it (its supervisor is gone), for
    cleaning up after it; None while a supervisor holds it. The file is left as it is."""
    path = run_dir(home) / f"{name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # never supervised here: nothing of its to clean up
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return SupervisorLock(fd, path)


def supervisor_pid(home: Home, name: str) -> int | None:
    """The pid of Nova `name`'s live supervisor; None when none runs. Asked of its lock,
    which the kernel drops with the process (a plan file may outlive a killed one): held,
    and the pid written in it alive. A lock held while another supervisor cleans up after
    a dead one (lock_if_free) names the dead one: no supervisor. The probe holds a shared
    lock for a moment; a supervisor starting then retries (lock_supervisor)."""
    return lock_holder(run_dir(home) / f"{name}.lock")


def lock_holder(path: Path) -> int | None:
    """The live pid that holds the lock file `path` (and wrote itself in it), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # never taken
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None  # nobody holds it; closing drops the probe
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        pid = int(holder) if holder.isdigit() else None
        return pid if _alive(pid) else None
    finally:
        os.close(fd)


def session_files(home: Home, session_id: int) -> Path:
    """The prefix of the files the agent's keeper (torchsm.agent.keeper) writes for session
    `session_id` until it is settled: .keeper (who keeps the agent), .exit (how the agent
    ended), .out and .err (what it wrote to stdout and stderr after its supervisor died);
    and .claude-code, which the
    supervisor writes when the agent speaks Claude Code's JSON."""
    folder = run_dir(home)
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"session-{session_id}"


def beat_path(home: Home) -> Path:
    """HOME/run/cluster.beat: its time is when the host's last acknowledged cluster beat
    was sent (torchsm.cluster.membership); the keepers of cluster sessions read it."""
    folder = run_dir(home)
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / "cluster.beat"


def exit_path(home: Home, session_id: int) -> Path:
    return run_dir(home) / f"session-{session_id}.exit"


def keeper_path(home: Home, session_id: int) -> Path:
    return run_dir(home) / f"session-{session_id}.keeper"


def orphan_output_path(home: Home, session_id: int) -> Path:
    return run_dir(home) / f"session-{session_id}.out"


def orphan_errors_path(home: Home, session_id: int) -> Path:
    return run_dir(home) / f"session-{session_id}.err"


def declare_claude_code(home: Home, session_id: int) -> None:
    """Note, before its agent starts, that session `session_id`'s agent speaks Claude
    Code's JSON: a supervisor that settles the session after this one died reads what
    the agent wrote meanwhile (its result, its rate_limit_events) only then."""
    Path(f"{session_files(home, session_id)}.claude-code").touch(mode=0o600)


def spoke_claude_code(home: Home, session_id: int) -> bool:
    return _claude_code_path(home, session_id).exists()


def _claude_code_path(home: Home, session_id: int) -> Path:
    return run_dir(home) / f"session-{session_id}.claude-code"


def remove_session_files(home: Home, session_id: int) -> None:
    """Forget session `session_id`'s keeper files: the session is settled."""
    for suffix in (".exit", ".exit.tmp", ".out", ".err", ".keeper", ".keeper.tmp", ".claude-code"):
        try:
            os.unlink(run_dir(home) / f"session-{session_id}{suffix}")
        except FileNotFoundError:
            pass


def _plan_path(home: Home, name: str) -> Path:
    return run_dir(home) / f"{name}.json"


def write_plan(home: Home, name: str, plan: dict[str, Any]) -> None:
    """Replace Nova `name`'s plan atomically (readers never see half a file)."""
    run_dir(home).mkdir(mode=0o700, exist_ok=True)
    write_json(_plan_path(home, name), plan)


def write_json(path: Path, value: Any) -> None:
    """Replace the file `path` (0600) with `value` as JSON atomically: readers never see
    half a file."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def touch_plan(home: Home, name: str, now: float) -> None:
    """Mark Nova `name`'s plan as current at `now` (its supervisor is alive and looping)."""
    try:
        os.utime(_plan_path(home, name), (now, now))
    except FileNotFoundError:
        pass


def remove_plan(home: Home, name: str) -> None:
    """Forget Nova `name`'s plan (its supervisor is ending)."""
    try:
        _plan_path(home, name).unlink()
    except FileNotFoundError:
        pass


def read_plan(home: Home, name: str) -> dict[str, Any] | None:
    """The plan of Nova `name`'s running supervisor; None when no supervisor runs (a plan
    left behind by one that was killed is ignored)."""
    try:
        plan = json.loads(_plan_path(home, name).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(plan, dict) or not _alive(plan.get("pid")):
        return None
    return plan


def left_plan(home: Home, name: str) -> dict[str, Any] | None:
    """The plan a supervisor of Nova `name` left when it died without cleaning up (killed,
    crashed); None when there is none or its supervisor still runs."""
    try:
        plan = json.loads(_plan_path(home, name).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(plan, dict) or _alive(plan.get("pid")):
        return None
    return plan


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def with_plans(home: Home, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Status rows with each Nova's `next_start` and `plan` (None when unsupervised)."""
    out = []
    for row in rows:
        plan = read_plan(home, row["nova"])
        out.append({**row, "next_start": plan.get("next_start") if plan else None,
                    "plan": plan})
    return out
