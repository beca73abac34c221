"""What a dead supervisor left behind: its agent, its session, its claims.

A supervisor killed outright (kill -9, OOM, a crashed host) leaves its session `running` in
the ledger and its work items claimed. Whether the claimant is alive is decided by its
lock (HOME/run/NAME.lock), not by the lease: a Nova's supervisor cleans up after its
predecessor before it starts anything, and any supervisor cleans up after another Nova's
dead one (holding that Nova's lock meanwhile), so a shared item it held is free at once.
Cleaning up: an agent of the session that still runs is stopped, its whole group
(torchsm.agent.orphans); then the session is closed and the items it still holds go back to the
queue, uncounted (the item is not to blame for the crash). An item the agent finished
stays done, and so does the session's own item when its keeper (torchsm.agent.keeper) recorded a
clean exit: the agent finished it even though nobody settled the session. What the agent
printed after its supervisor died, as its keeper kept it, is read for the session's
result and last message, and added to the Nova's log before the keeper's files go.
A cluster item the session held gets its fate by the same rules, fenced on the server
(cluster_turns.recover_left).
"""

from __future__ import annotations

import time
from typing import Callable

from torchsm.agent import keeper, orphans, session
from torchsm.agent.log import AgentLog, exit_words
from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.dreams import memory
from torchsm.storage import run_files, store
from torchsm.supervisor import cluster_turns
from torchsm.usage import accounts, ledger
from torchsm.work import work_queue

Emit = Callable[..., None]  # emit(event, message, **data)
ORPHAN_POLL_S = 0.1
ORPHAN_MARGIN_S = 30  # beyond the keeper's own deadline, before a wait gives up


def recover(home: Home, config: Config, name: str, now: float, emit: Emit,
            own: bool = False, should_stop: Callable[[], bool] = lambda: False,
            on_wait: Callable[[str], None] = lambda why: None) -> list:
    """Clean up after Nova `name`'s dead supervisor; the caller holds `name`'s lock.
    `own`: the caller is `name`'s new supervisor, before it starts anything: then it waits
    for an agent that outlived its supervisor to end its session (`should_stop` cuts the
    wait short and stops the agent), and a claim of `name`'s made before any session row
    (a supervisor killed between claiming and recording the start) goes back too. Anyone
    else leaves alone a Nova whose agent still runs: its claims are alive. `on_wait(why)`
    is told what the wait is for (the supervisor's plan shows it). Returns the
    (item id, status) of the items that went back."""
    with store.open_store(home, config.db.lock_timeout_s) as db:  # a write: a database
        left = db.write(lambda conn: ledger.abandoned(conn, _nova_id(conn, name)))  # it
        if not left and own:  # cannot write is an error at once
            cluster_turns.recover_left(home, config, name, emit)
            released = db.write(lambda conn: work_queue.release_claims_in(
                conn, name, since=0, now=now, counted=False))
            if released:
                emit("warning", "".join([f"{name}: claims a supervisor left without a "
                                         "session"] + [f"; item {i} back to {status}"
                                                       for i, status in released]))
            return released
    if not left:
        return []
    left = [_with_keeper(home, row) for row in left]
    running = [row for row in left if orphans.alive_as_recorded(row[2], row[3])]
    if running and not own:
        return []  # its agent works on: the next supervisor of `name` settles it
    for session_id, started_at, pid, ticks, _ in running:
        _wait_for_orphan(config, name, session_id, started_at, pid, ticks, emit, should_stop,
                         on_wait)
    for session_id, _, pid, _, _ in left:
        if pid is not None and orphans.group_alive(pid):  # what the agent left running
            orphans.stop_group(pid, config.supervisor.stop_grace_s)
    now = max(now, time.time()) if running else now
    since = min(row[1] for row in left)
    # how each agent ended, as its keeper recorded it (None: no record)
    ended = {row[0]: keeper.read_exit(str(run_files.exit_path(home, row[0]))) for row in left}
    kept = {row[0]: _kept(home, row[0]) for row in left}  # (stdout, stderr)
    said = {session_id: _understood(home, session_id, out)
            for session_id, (out, _) in kept.items()}

    def close(conn):
        finished = [row for row in left if ended[row[0]] == 0]
        for session_id, _, _, _, item_id in finished:
            ledger.close_finished(conn, session_id, now, said[session_id].result,
                                  said[session_id].last_assistant_text,
                                  said[session_id].started_model)
            if item_id is not None and work_queue.finish_claimed_by(conn, item_id, name, now):
                # done, not rerun; its episode has what the agent said last
                memory.remember_episode(conn, config, name, work_queue.load_item(conn, item_id),
                                        said[session_id].last_assistant_text, now)
        account = store.load_nova(conn, name).account
        for output in said.values():
            for info in output.rate_limit_events:
                rows, _ = accounts.windows_from_event(info, now, name)
                accounts.learn(conn, account, rows, now)
        for session_id, output in said.items():  # the others: closed as abandoned next
            ledger.note_last_message(conn, session_id, output.last_assistant_text)
        closed = ledger.close_abandoned(conn, _nova_id(conn, name), now) + len(finished)
        return closed, work_queue.release_claims_in(conn, name, since=0 if own else since,
                                                   now=now, counted=False)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        closed, released = db.write(close)
    _log_orphans(home, config, name, kept, ended, now)
    cluster_turns.recover_left(home, config, name, emit)  # before the keeper's files go
    for session_id in ended:
        run_files.remove_session_files(home, session_id)
    back = "".join(f"; item {item_id} back to {status}" for item_id, status in released)
    emit("warning", f"closed {closed} session(s) of {name} a supervisor left running{back}")
    return released


def _wait_for_orphan(config: Config, name: str, session_id: int, started_at: float,
                     pid: int, ticks: int, emit: Emit, should_stop: Callable[[], bool],
                     on_wait: Callable[[str], None]):
    """Wait for the keeper of a session whose supervisor died to end: the agent finishes
    its session, and its keeper stops it at the session timeout. Past that (a keeper that
    cannot stop it), or on a stop of this supervisor, its group is stopped."""
    cfg = config.supervisor
    latest = started_at + cfg.session_timeout_s + 2 * cfg.stop_grace_s + ORPHAN_MARGIN_S
    why = (f"the agent of session {session_id} of {name} (pid {pid}) outlived its "
           f"supervisor: waiting for it to end its session (at the latest "
           f"{format_time(latest)}) before anything starts")
    on_wait(why)
    emit("warning", why)
    while orphans.alive_as_recorded(pid, ticks):
        if should_stop() or time.time() >= latest:
            why = "stopping" if should_stop() else "out of time: stopping"
            emit("warning", f"the agent of session {session_id} of {name} (pid {pid}): {why} it")
            orphans.stop_group(pid, cfg.stop_grace_s)
            return
        time.sleep(ORPHAN_POLL_S)


def _with_keeper(home: Home, row: tuple) -> tuple:
    """A left session's row with its keeper as its file names it when the ledger does
    not (a supervisor killed before it recorded the agent)."""
    session_id, started_at, pid, ticks, item_id = row
    if pid is None:
        pid, ticks = keeper.read_keeper(str(run_files.keeper_path(home, session_id))) or (None,
                                                                                      None)
    return session_id, started_at, pid, ticks, item_id


def _kept(home: Home, session_id: int) -> tuple[str, str]:
    """What an agent wrote to stdout and to stderr after its supervisor died, as its
    keeper kept it (at most keeper.ORPHAN_OUTPUT_MAX in all)."""
    return (_read(run_files.orphan_output_path(home, session_id)),
            _read(run_files.orphan_errors_path(home, session_id)))


def _read(path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _understood(home: Home, session_id: int, text: str) -> session.SessionOutput:
    """An orphan's stdout read as a session's (as Claude Code's JSON only when its
    supervisor said the agent speaks it)."""
    output = session.SessionOutput(claude_code=run_files.spoke_claude_code(home, session_id))
    if text:
        output.feed_block(text if text.endswith("\n") else text + "\n")
    return output


def _log_orphans(home: Home, config: Config, name: str, kept: dict[int, tuple[str, str]],
                 ended: dict[int, int | None], now: float) -> None:
    """Close each left session's part of the Nova's log, with what its agent printed
    after its supervisor died (stdout, then stderr: their order between them is lost)."""
    with AgentLog(home, name, config.logs) as log:
        for session_id, (out, err) in kept.items():
            if out or err:
                log.header(session_id, "after its supervisor died: what its agent printed "
                                       "then, as its keeper kept it")
                log.write(out)
                log.write(err)
            log.footer(session_id, f"{format_time(now)} {exit_words(ended[session_id])}, "
                                   "settled after its supervisor died")


def recover_others(home: Home, config: Config, me: str, now: float, emit: Emit) -> list:
    """Clean up after every other Nova whose supervisor died with a session running."""
    with store.open_store(home, config.db.lock_timeout_s) as db:
        names = [n for n in db.read(ledger.novas_running) if n != me]
    released = []
    for name in names:
        lock = run_files.lock_if_free(home, name)
        if lock is None:
            continue  # its supervisor lives
        try:
            released += recover(home, config, name, now, emit)
        finally:
            lock.release()
    return released


def _nova_id(conn, name: str) -> int:
    nova = store.nova_named(conn, name)
    return nova.id
