"""The fleet's files in HOME/run/fleet: what is wanted, and what the keeper does.

- `wants.json`: the Novas the fleet should run, each with the command `up` gave for it
  (a Nova's own `novas.command` wins over it) and a generation that `restart` raises.
  The `up`, `down` and `restart` commands change it, one at a time (`wants.lock`); the
  keeper only reads it, so nothing is lost between two writers.
- `keeper.lock`: held (flock) by the one keeper of the home while it runs; it names its
  pid, and the kernel drops it with the process however it dies.
- `state.json`: written by the keeper alone, after each change: each child supervisor's
  pid, start, restarts, and when and why it starts again.

Transient state, not history: the database keeps what happened. Stdlib only, as
run_files: `status` and `ps` read these.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from torchsm.config import Home
from torchsm.storage import run_files


def fleet_dir(home: Home) -> Path:
    folder = run_files.run_dir(home) / "fleet"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def log_path(home: Home) -> Path:
    """HOME/log/fleet.log: what a keeper in the background and its supervisors print."""
    folder = home.path / "log"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / "fleet.log"


# --- the keeper's lock ----------------------------------------------------------------

def lock_keeper(home: Home) -> run_files.SupervisorLock | None:
    """The right to keep this home's fleet, or None when another keeper holds it."""
    path = fleet_dir(home) / "keeper.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return run_files.SupervisorLock(fd, path)


def keeper_pid(home: Home) -> int | None:
    """The pid of the home's running keeper; None when none runs."""
    return run_files.lock_holder(run_files.run_dir(home) / "fleet" / "keeper.lock")


# --- wants ----------------------------------------------------------------------------

def read_wants(home: Home) -> dict[str, dict[str, Any]]:
    """Nova name -> {"command": [...] or None, "generation": n}: the Novas wanted."""
    return _read(run_files.run_dir(home) / "fleet" / "wants.json") or {}


def change_wants(home: Home, change: Callable[[dict[str, dict[str, Any]]], None]) \
        -> dict[str, dict[str, Any]]:
    """Apply `change` to the wants in place, one writer at a time; the wants after it."""
    with _wants_lock(home):
        wants = read_wants(home)
        change(wants)
        run_files.write_json(fleet_dir(home) / "wants.json", wants)
    return wants


@contextlib.contextmanager
def _wants_lock(home: Home) -> Iterator[None]:
    fd = os.open(fleet_dir(home) / "wants.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- the keeper's state ----------------------------------------------------------------

def write_state(home: Home, state: dict[str, Any]) -> None:
    run_files.write_json(fleet_dir(home) / "state.json", state)


def read_state(home: Home) -> dict[str, Any] | None:
    """What the running keeper last wrote; None when no keeper runs (a state left by one
    that was killed is ignored)."""
    pid = keeper_pid(home)
    state = _read(run_files.run_dir(home) / "fleet" / "state.json")
    if pid is None or state is None or state.get("pid") != pid:
        return None
    return state


def remove_state(home: Home) -> None:
    with contextlib.suppress(FileNotFoundError):
        (run_files.run_dir(home) / "fleet" / "state.json").unlink()


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
