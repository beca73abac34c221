"""A supervisor's turns at the cluster's work: taking a cluster item for a session, and
giving it back fenced (done, failed, released) however the supervisor ends.

A supervisor joins the cluster when its home says so (`[cluster] enabled = true`, the one
switch, shared with the accounts' sync) and has a server (`redis_url`); otherwise it runs
exactly as a single host does. A session takes
one cluster item (the Stop hook continues with local items only).

What a session holds is kept in HOME/run/NOVA.cluster.json from the claim until the
server has the item's fate: the item, the session, and the fate once decided (written
before the session's end is recorded). A supervisor killed outright leaves the file; the
next one (or another Nova's, cleaning up: recovery.py) gives the item its fate by the
same rules: done when the agent's keeper recorded a clean exit, else failed, and
released when no session was recorded. Every answer is fenced on the server (only the
consumer HOST:NOVA that holds the item counts), so giving a fate twice, or after another
host took the item over, counts nothing. A server away keeps the file for the next try;
meanwhile this Nova takes no cluster work.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from torchsm.agent import keeper, session
from torchsm.cluster import intake, membership, pending, work
from torchsm.cluster.settings import cluster_settings, enabled, server_url
from torchsm.config import Config, Home
from torchsm.outcomes import Outcome
from torchsm.storage import run_files
from torchsm.tiers import Tier

Emit = Callable[..., None]  # emit(event, message, **data)

# an item's fates
DONE, FAILED, RELEASED = "done", "failed", "released"


def fate_of(outcome: Outcome, counted: bool) -> str:
    """A settled session's item: done on success, failed when the failure counts against
    it, released otherwise (a 529, an account refusal, a stop)."""
    if outcome is Outcome.OK:
        return DONE
    return FAILED if counted else RELEASED


def fate_after_death(session_id: int | None, exit_status: int | None) -> str:
    """A dead supervisor's item: released when no session was recorded, done when the
    keeper recorded a clean exit, else failed."""
    if session_id is None:
        return RELEASED
    return DONE if exit_status == 0 else FAILED


def join(home: Home, config: Config, name: str, clock: Callable[[], float],
         emit: Emit) -> "ClusterTurns | None":
    """This Nova's turns at the cluster's work, beating; None when the home is no host."""
    if not enabled(config):
        return None
    member = membership.Membership(server_url(config), cluster_settings(config), clock, emit,
                                   config.supervisor.stop_grace_s,
                                   also=intake.with_each_beat(home, config, emit),
                                   beat_file=run_files.beat_path(home))
    return ClusterTurns(home, name, member.start(), emit)


class ClusterTurns:
    def __init__(self, home: Home, name: str, member: membership.Membership, emit: Emit):
        self.home, self.name, self.member, self.emit = home, name, member, emit

    def waiting(self, local_tier: Tier | None) -> bool:
        """Whether `claim` would find an item now (its turn: see claim), taking nothing:
        a supervisor asks admission first, and claims only once a session may start."""
        if not self._may_take():
            return False
        try:
            return self.member.work.waiting(self.member.host, self.name, local_tier)
        except membership.SERVER_ERRORS as exc:
            self.emit("warning", f"cluster: no look at its work: {exc.message}")
            return False

    def claim(self, local_tier: Tier | None) -> work.ClusterItem | None:
        """A cluster item more urgent than the local one (a local item wins a tie), while
        the lease is safe and no earlier item waits for its fate; None otherwise."""
        if not self._may_take():
            return None
        try:
            item = self.member.work.claim(self.member.host, self.name, local_tier)
        except membership.SERVER_ERRORS as exc:
            self.emit("warning", f"cluster: no claim: {exc.message}")
            return None
        if item is not None:
            _write(self.home, self.name, {"item": _fields(item), "session": None, "fate": None})
        return item

    def _may_take(self) -> bool:
        """The lease is safe and no earlier item waits for its fate; the adds kept while
        the server was away are on it."""
        if self.member.at_risk() or not self.settle_left():
            return False
        pending.deliver_kept(self.home, self.member.work,
                             lambda why: self.emit("warning", f"cluster: {why}"))
        return True

    def started(self, item: work.ClusterItem, session_id: int) -> None:
        _write(self.home, self.name, {"item": _fields(item), "session": session_id,
                                      "fate": None})

    def at_risk(self) -> bool:
        return self.member.at_risk()

    def stopped_for_the_lease(self, run: session.SessionRun) -> session.SessionRun:
        """A cluster agent that failed while this host's lease was at risk was stopped for
        it (by its keeper, which reads the beat file, or by this supervisor): a stop, not
        a failure of its item's."""
        if run.stopped or run.exit_status == 0 or not self.member.at_risk_since(run.started_at):
            return run
        return dataclasses.replace(run, stopped=True)

    def decide(self, item: work.ClusterItem, session_id: int | None, fate: str,
               error: str = "") -> None:
        """The item's fate, on disk: settle_left gives it to the server."""
        _write(self.home, self.name, {"item": _fields(item), "session": session_id,
                                      "fate": fate, "error": error})

    def settle_left(self) -> bool:
        """Give the fate on disk to the server; True when nothing is left waiting."""
        return give_fate(self.home, self.name, self.member.work, self.member.host, self.emit)

    def close(self) -> None:
        self.member.close()


def give_fate(home: Home, name: str, queue: work.ClusterWork, host: str, emit: Emit) -> bool:
    """The fate of the Nova's left item given on the server (fenced), and the file gone;
    False when the server could not be reached (the file stays)."""
    left = read_left(home, name)
    if left is None:
        return True
    item, fate = _item(left["item"]), left["fate"]
    try:
        answer = _give(queue, item, fate, host, name, left.get("error") or "")
    except membership.SERVER_ERRORS as exc:
        emit("warning", f"cluster item {item.item_id}: {fate} not told yet: {exc.message}")
        return False
    _remove(home, name)
    emit("cluster", f"cluster item {item.item_id} {fate}: {answer}", item=item.item_id,
         fate=fate, answer=answer)
    return True


def recover_left(home: Home, config: Config, name: str, emit: Emit) -> None:
    """What a dead supervisor of `name` left of a cluster item: its fate decided as
    fate_after_death and given (fenced) through a connection of its own."""
    left = read_left(home, name)
    if left is None:
        return
    if left["fate"] is None:
        session_id = left["session"]
        exit_status = (keeper.read_exit(str(run_files.exit_path(home, session_id)))
                       if session_id is not None else None)
        left = {**left, "fate": fate_after_death(session_id, exit_status),
                "error": "its supervisor died"}
        _write(home, name, left)
    if not enabled(config):  # the home left the cluster since: the file waits
        return
    from torchsm.cluster.server import connect

    with connect(server_url(config)) as server:
        give_fate(home, name, work.ClusterWork(server, cluster_settings(config)),
                  cluster_settings(config).host, emit)


def _give(queue: work.ClusterWork, item: work.ClusterItem, fate: str, host: str,
          name: str, error: str) -> str:
    if fate == DONE:
        return queue.done(item, host, name)
    if fate == FAILED:
        return queue.fail(item, host, name, error)
    return queue.release(item, host, name)


def left_path(home: Home, name: str) -> Path:
    folder = run_files.run_dir(home)
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{name}.cluster.json"


def read_left(home: Home, name: str) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(left_path(home, name).read_text())
    except FileNotFoundError:
        return None


def _write(home: Home, name: str, value: dict[str, Any]) -> None:
    run_files.write_json(left_path(home, name), value)


def _remove(home: Home, name: str) -> None:
    left_path(home, name).unlink(missing_ok=True)


def _fields(item: work.ClusterItem) -> dict[str, Any]:
    return {**item._asdict(), "priority": item.priority.value}


def _item(fields: dict[str, Any]) -> work.ClusterItem:
    return work.ClusterItem(**{**fields, "priority": Tier(fields["priority"])})
