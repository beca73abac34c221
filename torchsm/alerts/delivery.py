"""Delivering alerts to `[alerts] command`, one at a time, never in the way.

An alert waiting for the command (`delivery = 'pending'`) is claimed (`sending`, its
attempt counted, so two evaluators never send it twice), given to the command as JSON on
stdin (torchsm.shell_command: its own process group, bounded in time and output), and
recorded: `sent`; or, on a failure, a timeout or a cut, `pending` again with `last_error`,
tried once per later evaluation until `command_attempts` (then `failed`). An alert is
raised once; a delivery is retried, as a mail queue does.

`torchsm alerts` delivers in its own process (deliver_pending). A supervisor must never
wait for a person's webhook (issue 20: `sleep 30` delayed a critical wake by 70 s and a
stop by 47 s), so it hands the deliveries to a Courier: one thread, one delivery at a
time, cut at once when the supervisor is told to stop, and given at most CLOSE_GRACE_S
to finish when it ends on its own.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from typing import Callable

from torchsm import shell_command
from torchsm.alerts.conditions import Alert, load, payload
from torchsm.config import AlertsConfig, Config, Home
from torchsm.storage import store

SENDING_STALE_S = 30.0  # a delivery claimed this long past its timeout was cut short
DELIVERIES_PER_EVALUATION = 20
CLOSE_GRACE_S = 1.0  # a supervisor ending on its own lets a delivery finish this long
CUT_WAIT_S = 2.0  # then cuts it, and waits this long for the record
STOPPED = "the supervisor stopped"
INTERRUPTED = "interrupted"

Clock = Callable[[], float]


def deliver_pending(home: Home, config: Config, clock: Clock,
                    should_stop: Callable[[], bool] = lambda: False) -> list[str]:
    """Give each alert that waits for it to `[alerts] command`, one after the other (one
    attempt each); returns one line per failure. `should_stop` (a supervisor told to
    stop) ends the round, cutting a delivery under way."""
    settings = config.alerts
    if not settings.command:
        return []
    failures, after = [], 0
    with store.open_store(home, config.db.lock_timeout_s) as db:
        for _ in range(DELIVERIES_PER_EVALUATION):
            if should_stop():
                break
            alert = db.write(lambda conn: _claim(conn, settings.command_timeout_s, after,
                                                 clock()))
            if alert is None:
                break
            after = alert.id  # one attempt per alert per round
            error = _attempt(db, settings, alert, should_stop)
            if error is not None:
                failures.append(failure_line(alert, error, _gives_up(settings, alert)))
    return failures


def _attempt(db: store.Store, settings: AlertsConfig, alert: Alert,
             should_stop: Callable[[], bool]) -> str | None:
    """Run the command for `alert` and record how it went; the error, or None."""
    try:
        error = run_command(settings, should_stop, json.dumps(payload(alert)))
    except KeyboardInterrupt:  # Ctrl-C on `torchsm alerts`: the group is gone, say so
        _record_on(db, alert, f"cut short: {INTERRUPTED}", _gives_up(settings, alert))
        raise
    _record_on(db, alert, error, error is not None and _gives_up(settings, alert))
    return error


def run_command(settings: AlertsConfig, should_stop: Callable[[], bool],
                stdin_text: str) -> str | None:
    """Run the command once: None when it exited 0, else what went wrong in a few words."""
    try:
        ended = shell_command.run(settings.command, stdin_text, settings.command_timeout_s,
                                 should_stop)
    except OSError as exc:
        return f"could not start: {exc.strerror}"
    if ended.cut:
        return f"cut short: {STOPPED}"
    if ended.timed_out:
        return f"timed out after {settings.command_timeout_s:g} s (killed)"
    if ended.status != 0:
        last = ended.last_line[:200]
        return f"exited {ended.status}" + (f": {last}" if last else "")
    return None


def _gives_up(settings: AlertsConfig, alert: Alert) -> bool:
    return alert.attempts >= settings.command_attempts


def failure_line(alert: Alert, error: str, gave_up: bool) -> str:
    then = f"gave up after {alert.attempts} attempts" if gave_up else "will try again"
    return f"alert {alert.id} ({alert.key}): [alerts] command {error}; {then}"


def _claim(conn: sqlite3.Connection, timeout_s: float, after: int,
           now: float) -> Alert | None:
    """The next alert after id `after` waiting for the command, marked as being sent (so
    that two evaluators never send it twice); one whose sender died mid-way is taken
    again."""
    stale = now - timeout_s - SENDING_STALE_S
    row = conn.execute("SELECT id FROM alerts WHERE id > ? AND (delivery = 'pending' OR"
                       " (delivery = 'sending' AND delivery_at < ?)) ORDER BY id LIMIT 1",
                       (after, stale)).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE alerts SET delivery = 'sending', attempts = attempts + 1,"
                 " delivery_at = ? WHERE id = ?", (now, row[0]))
    return load(conn, "id = ?", row[0])[0]


def _record_on(db: store.Store, alert: Alert, error: str | None, gave_up: bool) -> None:
    state = "sent" if error is None else ("failed" if gave_up else "pending")
    db.write(lambda conn: conn.execute("UPDATE alerts SET delivery = ?, last_error = ?"
                                       " WHERE id = ?", (state, error, alert.id)))


class Courier:
    """A supervisor's deliveries, aside: at most one round (one delivery at a time) runs,
    in a thread; its failure lines wait in `reports()` for the supervisor to log."""

    def __init__(self, home: Home, config: Config, clock: Clock, stop: threading.Event):
        self.home, self.config, self.clock, self.stop = home, config, clock, stop
        self._closing, self._cut = threading.Event(), threading.Event()
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start_round(self) -> None:
        """Deliver what waits, unless a round still runs (it is one at a time)."""
        if not self.config.alerts.command or self.busy() or self._closing.is_set():
            return
        self._thread = threading.Thread(target=self._round, name="torchsm-alerts",
                                        daemon=True)
        self._thread.start()

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _round(self) -> None:
        try:
            lines = deliver_pending(self.home, self.config, self.clock, self._should_cut)
        except Exception as exc:  # noqa: BLE001 - reported; the next round tries again
            lines = [f"alerts not delivered: {type(exc).__name__}: {exc}"]
        for line in lines:
            self._lines.put(line)

    def _should_cut(self) -> bool:
        return self.stop.is_set() or self._cut.is_set()

    def reports(self) -> list[str]:
        """The failure lines of the rounds so far, each once."""
        lines = []
        while not self._lines.empty():
            lines.append(self._lines.get())
        return lines

    def close(self) -> None:
        """No new round; a delivery under way may finish within CLOSE_GRACE_S (none when
        the supervisor was told to stop), then is cut (its group killed) and recorded."""
        self._closing.set()
        if not self.busy():
            return
        self._thread.join(0 if self.stop.is_set() else CLOSE_GRACE_S)
        self._cut.set()
        self._thread.join(CUT_WAIT_S)
