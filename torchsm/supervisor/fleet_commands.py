"""`torchsm up`, `down` and `restart`: change what the fleet wants (fleet_files), start the
home's keeper (torchsm.supervisor.fleet) when none runs, and wait until it has done it.

`up` checks everything it can before anything starts: the Novas exist, each has an agent
command (its own `novas.command`, else the one given, else the one `up` was given before)
and that command can be run; a Nova already supervised outside the fleet is reported
and left alone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from torchsm.config import Config, Home
from torchsm.errors import FleetRunning, NoAgentCommand, NotInFleet, NovaNotFound, TorchsmError
from torchsm.storage import fleet_files, run_files, store
from torchsm.supervisor import fleet

START_WAIT_S = 15.0  # how long `up` and `restart` wait to see the supervisors running


def up(home: Home, config: Config, names: list[str], command: list[str] | None, *,
       foreground: bool = False) -> dict[str, Any]:
    """Want the named Novas (all when none is named) in the fleet, start the keeper in
    the background (or here, until a stop signal, with `foreground`); what runs."""
    chosen = agent_commands(home, config, names, command)
    outside = _outside(home, list(chosen))
    added = [name for name in chosen if name not in outside]
    fleet_files.change_wants(home, lambda wants: _want(wants, added, command))
    keeper = fleet_files.keeper_pid(home)
    if foreground:
        if keeper is not None:
            raise FleetRunning(keeper)
        keep(home, config)
        return {"keeper": None, "novas": {}, "outside": outside}
    if not added:  # every one is supervised by hand: nothing for a keeper to do
        return {"keeper": keeper, "novas": {}, "outside": outside}
    if keeper is None:
        _start_in_background(home, config)
    return {"keeper": _wait(lambda: fleet_files.keeper_pid(home), 5.0),
            "novas": _wait_running(home, added), "outside": outside}


def down(home: Home, config: Config, names: list[str]) -> dict[str, Any]:
    """Stop the named Novas' supervisors (every one and the keeper when none is named),
    cleanly, and wait for them; what was stopped."""
    from torchsm.names import check_name

    wanted = fleet_files.read_wants(home)
    for name in names:
        if check_name(name) not in wanted:
            raise NotInFleet(name)
    stopping = names or sorted(wanted)
    fleet_files.change_wants(home, lambda wants: [wants.pop(n, None) for n in stopping])
    keeper = fleet_files.keeper_pid(home)
    if keeper is not None and not names:
        os.kill(keeper, signal.SIGTERM)
    _wait(lambda: _none_left(home, stopping) and (
        bool(names) or fleet_files.keeper_pid(home) is None), fleet.stop_timeout(config) + 10)
    return {"stopped": stopping, "keeper": keeper, "keeper_stopped":
            fleet_files.keeper_pid(home) is None}


def restart(home: Home, config: Config, name: str) -> dict[str, Any]:
    """Stop Nova `name`'s supervisor cleanly and start it again at once."""
    from torchsm.names import check_name

    if check_name(name) not in fleet_files.read_wants(home) or fleet_files.keeper_pid(home) is None:
        raise NotInFleet(name)
    before = _member(home, name).get("pid")
    fleet_files.change_wants(home, lambda wants: wants[name].update(
        generation=wants[name].get("generation", 0) + 1))
    _wait(lambda: _member(home, name).get("pid") not in (None, before),
          fleet.stop_timeout(config) + START_WAIT_S)
    return {"nova": name, "before": before, "novas": _wait_running(home, [name])}


def keep(home: Home, config: Config) -> None:
    """Be the home's keeper, here, until SIGTERM, SIGINT or SIGHUP (then stop every
    supervisor cleanly) or until nothing is wanted; FleetRunning when one already runs."""
    from torchsm.supervisor import process, systemd

    lock = fleet_files.lock_keeper(home)
    if lock is None:
        raise FleetRunning(fleet_files.keeper_pid(home))
    stop = threading.Event()
    try:
        with process.stop_on_signals(stop):
            fleet.Keeper(home, config, systemd.torchsm_executable()).run(stop)
    finally:
        lock.release()


# --- up's checks -----------------------------------------------------------------------

def agent_commands(home: Home, config: Config, names: list[str],
              given: list[str] | None) -> dict[str, list[str]]:
    """Each chosen Nova's command (all Novas when `names` is empty): its own, else
    `given`, else the one `up` remembers; checked as `torchsm run` checks one.
    NoAgentCommand names those without one (`service install --fleet` asks the same)."""
    from torchsm.names import check_name

    with store.open_store(home, config.db.lock_timeout_s) as db:
        kept = db.read(store.nova_commands)
    for name in names:
        if check_name(name) not in kept:
            raise NovaNotFound(name)
    if not kept:
        raise TorchsmError("no Novas to start (add one with `torchsm nova add NAME`)")
    remembered = fleet_files.read_wants(home)
    chosen = {name: kept[name] or given or remembered.get(name, {}).get("command")
              for name in (names or sorted(kept))}
    missing = [name for name, words in chosen.items() if not words]
    if missing:
        raise NoAgentCommand(missing)
    for words in {tuple(words) for words in chosen.values()}:
        _check(words)
    return chosen


def _check(command: tuple[str, ...]) -> None:
    """As `torchsm run` checks its command, before any supervisor starts."""
    from torchsm.agent import session
    from torchsm.supervisor import process

    session.check_template(command)
    process.check_command(command, None, dict(os.environ))


def _outside(home: Home, names: list[str]) -> dict[str, int]:
    """The Novas whose supervisor runs, but not as a child of the fleet: name -> pid."""
    ours = {name: m.get("pid") for name, m in _members(home).items()}
    found = {name: run_files.supervisor_pid(home, name) for name in names}
    return {name: pid for name, pid in found.items()
            if pid is not None and pid != ours.get(name)}


def _want(wants: dict[str, dict[str, Any]], names: list[str],
          command: list[str] | None) -> None:
    for name in names:
        entry = wants.setdefault(name, {"generation": 0})
        if command:
            entry["command"] = list(command)  # remembered: a restart uses it again


# --- the keeper in the background ------------------------------------------------------

def _start_in_background(home: Home, config: Config) -> None:
    """Start the keeper as a daemon: fork twice (the grandchild is no child of ours and in
    a session of its own, so no terminal's hangup reaches it), stdio to HOME/log/fleet.log."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        return
    code = 1
    try:
        os.setsid()
        if os.fork():
            code = 0
            return
        _to_log(home)
        keep(home, config)
        code = 0
    except FleetRunning:
        code = 0  # another `up` started one meanwhile: it reads the same wants
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _to_log(home: Home) -> None:
    log = os.open(fleet_files.log_path(home), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((null, 0), (log, 1), (log, 2)):
        os.dup2(fd, target)
    os.close(log)
    os.close(null)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


# --- waiting ---------------------------------------------------------------------------

def _members(home: Home) -> dict[str, dict[str, Any]]:
    return (fleet_files.read_state(home) or {}).get("novas", {})


def _member(home: Home, name: str) -> dict[str, Any]:
    return _members(home).get(name, {})


def _wait_running(home: Home, names: list[str]) -> dict[str, dict[str, Any]]:
    """Wait until each Nova's supervisor holds its lock, or the keeper says why it does
    not; each Nova's member row then."""
    def settled(name: str) -> bool:
        member = _member(home, name)
        if member.get("pid") is None:
            return bool(member) and member.get("why") != "starting"
        return run_files.supervisor_pid(home, name) == member["pid"]

    _wait(lambda: all(settled(name) for name in names), START_WAIT_S)
    return {name: _member(home, name) for name in names}


def _none_left(home: Home, names: list[str]) -> bool:
    members = _members(home)
    return all(name not in members and run_files.supervisor_pid(home, name) is None
               or fleet_files.keeper_pid(home) is None for name in names)


def _wait(done, timeout_s: float, every_s: float = 0.05):
    """`done()`'s first true value within `timeout_s`, else its last value."""
    deadline = time.monotonic() + timeout_s
    while not (value := done()) and time.monotonic() < deadline:
        time.sleep(every_s)
    return value
