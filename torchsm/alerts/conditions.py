"""Alerts that reach a person: conditions checked now and then, each raised once, open
until it clears, then resolved.

A condition has a key (`bangs:echo`, `dead_items`, ...); the table holds at most one open
alert per key (a partial unique index), so evaluators racing each other (every supervisor
evaluates every `[alerts] evaluate_every_s`, and `torchsm alerts` before it lists) raise
it once. Raising and resolving write their entry to the coordination stream through the
outbox, in the same transaction (`alert.raised`, `alert.resolved`).

Conditions (thresholds in `[alerts]`; a count of 0 turns one off):
- `bangs:NOVA`: at least `bangs_per_hour` bangs in the last hour;
- `meditations:NOVA`: at least `meditations_per_day` meditations in the last 24 hours;
- `dead_items`: at least `dead_items` dead work items in the queue;
- `refused:NOVA`: at least `refused_requests` requests the API refused in the last hour
  (sessions that ended rate-limited or on an account error, or StopFailure hooks that
  cooled or meditated the Nova: the larger count, as both see the same refusal);
- `limit_hold:NOVA`: held by a usage limit for `limit_hold_s` (0: as soon as it is), until
  the hold's end, whether or not a supervisor resumed the Nova then;
- `heartbeat:NOVA`: its supervisor stopped: the plan it writes (HOME/run/NAME.json,
  touched at least every HEARTBEAT_EVERY_S while it waits) names a process that is gone
  (it died without cleaning up), or is older than `heartbeat_s` while waiting (older than
  the session timeout plus `heartbeat_s` while a session runs: the supervisor blocks on
  the agent then). A supervisor that exits cleanly removes its plan: no alert;
- `account:NOVA`: a billing or authentication failure (raised by the StopFailure hook and
  the supervisor through account_alert.raise_for); it resolves once the Nova has left the
  meditation that failure started (a person ran `torchsm transition NAME work`).

Delivery of a raised alert to `[alerts] command` is torchsm.alerts.delivery's (aside, one
at a time, bounded); resolutions go to the stream only.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, NamedTuple

from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.mirror import outbox, streams
from torchsm.novas import ACCOUNT_HOLD
from torchsm.outcomes import ACCOUNT_REFUSALS, sql_list
from torchsm.storage import run_files, store

HOUR, DAY = 3600.0, 86400.0
HEARTBEAT_EVERY_S = 10.0  # how often a waiting supervisor touches its plan
ACCOUNT_PREFIXES = ("account:", "legacy:")  # resolved by leaving meditation


class Finding(NamedTuple):
    """A condition that holds now."""

    key: str
    kind: str
    nova: str | None
    message: str
    details: dict[str, Any]


class Alert(NamedTuple):
    id: int
    key: str | None
    kind: str
    nova: str | None
    at: float
    message: str
    details: str | None
    resolved_at: float | None
    event_id: str | None
    delivery: str
    attempts: int
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "kind": self.kind, "nova": self.nova,
                "status": "open" if self.resolved_at is None else "resolved",
                "at": format_time(self.at), "resolved_at": format_time(self.resolved_at),
                "message": self.message, "details": json.loads(self.details or "{}"),
                "event_id": self.event_id, "delivery": self.delivery,
                "attempts": self.attempts, "last_error": self.last_error}


_COLUMNS = ("id, key, kind, nova, at, message, details, resolved_at, event_id, delivery,"
            " attempts, last_error")


class Evaluation(NamedTuple):
    raised: list[Alert]
    resolved: list[Alert]


# --- evaluation ------------------------------------------------------------------------

def evaluate(home: Home, config: Config, now: float) -> Evaluation:
    """Check every condition, raise new alerts and resolve cleared ones (with their stream
    entries, in one transaction). Delivery to `[alerts] command` is the caller's
    (torchsm.alerts.delivery)."""
    with store.open_store(home, config.db.lock_timeout_s) as db:
        names = db.read(lambda conn: [n.name for n in store.load_novas(conn)])
        beats = heartbeat_findings(home, config, names, now)
        raised, resolved = db.write(lambda conn: _apply(conn, config, beats, now))
    if raised or resolved:
        outbox.deliver(home, config, now)
    return Evaluation(raised, resolved)


def _apply(conn: sqlite3.Connection, config: Config, beats: list[Finding],
           now: float) -> tuple[list[Alert], list[Alert]]:
    found = {f.key: f for f in [*findings(conn, config.alerts, now), *beats]}
    open_rows = {row.key: row for row in load(conn, "resolved_at IS NULL")}
    raised = [_raise(conn, config, f, now) for key, f in found.items() if key not in open_rows]
    raised += [_announce(conn, config, row, now) for row in open_rows.values()
               if row.event_id is None and row.delivery == "pending"]
    resolved = [_resolve(conn, config, row, now) for key, row in open_rows.items()
                if key not in found and _cleared(conn, row)]
    return raised, resolved


def findings(conn: sqlite3.Connection, settings, now: float) -> list[Finding]:
    """The conditions of the database that hold now (aggregate queries, one each)."""
    return [*_bangs(conn, settings.bangs_per_hour, now),
            *_meditations(conn, settings.meditations_per_day, now),
            *_dead_items(conn, settings.dead_items),
            *_refused(conn, settings.refused_requests, now),
            *_limit_holds(conn, settings.limit_hold_s, now)]


def _per_nova(kind: str, rows, threshold: int, text: str) -> list[Finding]:
    return [Finding(f"{kind}:{name}", kind, name, text.format(n=n, threshold=threshold),
                    {"count": n, "threshold": threshold}) for name, n in rows]


def _bangs(conn: sqlite3.Connection, threshold: int, now: float) -> list[Finding]:
    if not threshold:
        return []
    rows = conn.execute(
        "SELECT n.name, count(*) FROM novas n JOIN hook_runs h ON h.nova_id = n.id"
        " AND h.event = 'stop' AND h.at >= ? WHERE h.outcome = 'bang' GROUP BY n.name"
        " HAVING count(*) >= ?", (now - HOUR, threshold)).fetchall()
    return _per_nova("bangs", rows, threshold, "{n} bangs in the last hour (alert at {threshold})")


def _meditations(conn: sqlite3.Connection, threshold: int, now: float) -> list[Finding]:
    if not threshold:
        return []
    rows = conn.execute(
        "SELECT n.name, count(*) FROM novas n JOIN history h ON h.nova_id = n.id"
        " AND h.at >= ? WHERE h.event = 'meditate' GROUP BY n.name HAVING count(*) >= ?",
        (now - DAY, threshold)).fetchall()
    return _per_nova("meditations", rows, threshold,
                     "{n} meditations in the last 24 hours (alert at {threshold})")


def _dead_items(conn: sqlite3.Connection, threshold: int) -> list[Finding]:
    if not threshold:
        return []
    n = conn.execute("SELECT count(*) FROM work_items WHERE status = 'dead'").fetchone()[0]
    if n < threshold:
        return []
    return [Finding("dead_items", "dead_items", None,
                    f"{n} dead work item{'s' if n != 1 else ''} in the queue (`torchsm queue "
                    f"list --status dead`)", {"count": n, "threshold": threshold})]


_REFUSED = """
SELECT n.name,
       (SELECT count(*) FROM sessions s WHERE s.nova_id = n.id AND s.started_at >= :since
           AND s.outcome IN {refusals}),
       (SELECT count(*) FROM hook_runs h WHERE h.nova_id = n.id AND h.event = 'stop-failure'
           AND h.at >= :since AND h.outcome IN ('cooled', 'meditated'))
  FROM novas n
""".format(refusals=sql_list(ACCOUNT_REFUSALS))


def _refused(conn: sqlite3.Connection, threshold: int, now: float) -> list[Finding]:
    if not threshold:
        return []
    rows = [(name, max(a, b)) for name, a, b in conn.execute(_REFUSED, {"since": now - HOUR})]
    return _per_nova("refused", [(name, n) for name, n in rows if n >= threshold], threshold,
                     "{n} requests refused by the API in the last hour (alert at {threshold})")


def _limit_holds(conn: sqlite3.Connection, hold_s: float, now: float) -> list[Finding]:
    # A hold for an account failure (billing, authentication) is the `account:` alert's.
    # A hold ends at its `until` even when no supervisor is there to move the Nova back to
    # `working` (it was stopped while the Nova was held): the row still names the limit.
    rows = conn.execute("SELECT name, limit_hold, since, until FROM novas"
                        " WHERE limit_hold IS NOT NULL AND since <= ?"
                        " AND (until IS NULL OR until > ?)"
                        " AND substr(limit_hold, 1, ?) != ?",
                        (now - hold_s, now, len(ACCOUNT_HOLD), ACCOUNT_HOLD))
    return [Finding(f"limit_hold:{name}", "limit_hold", name,
                    f"held by a usage limit since {format_time(since)} until "
                    f"{format_time(until) or '?'}: {why}",
                    {"since": format_time(since), "until": format_time(until), "why": why})
            for name, why, since, until in rows.fetchall()]


def heartbeat_findings(home: Home, config: Config, names: list[str],
                       now: float) -> list[Finding]:
    """The Novas whose supervisor stopped (see the module docstring)."""
    if not config.alerts.heartbeat_s:
        return []
    out = []
    for name in names:
        why = supervisor_silence(home, config, name, now)
        if why is not None:
            out.append(Finding(f"heartbeat:{name}", "heartbeat", name,
                               f"its supervisor stopped: {why}", {"why": why}))
    return out


def supervisor_silence(home: Home, config: Config, name: str, now: float) -> str | None:
    """Why Nova `name`'s supervisor counts as stopped, or None (running, or never ran or
    ended cleanly: no plan file)."""
    path = run_files.run_dir(home) / f"{name}.json"
    try:
        age = now - path.stat().st_mtime
        plan = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = plan.get("pid") if isinstance(plan, dict) else None
    if run_files.read_plan(home, name) is None:
        return f"pid {pid} is gone and left its plan ({path})"
    allowed = config.alerts.heartbeat_s
    if plan.get("state") == "running":
        allowed += config.supervisor.session_timeout_s + config.supervisor.stop_grace_s
    if age > allowed:
        return f"pid {pid} has not touched its plan for {age:.0f} s (allowed {allowed:g} s)"
    return None


def _cleared(conn: sqlite3.Connection, row: Alert) -> bool:
    """Whether an open alert that no condition found may resolve: an account alert once
    its Nova has left the meditation it started (or is gone); any other at once."""
    if not (row.key or "").startswith(ACCOUNT_PREFIXES):
        return True
    nova = store.load_nova(conn, row.nova) if row.nova else None
    return nova is None or (nova.state != "meditating" and nova.since >= row.at)


# --- raising and resolving ----------------------------------------------------------------

def _raise(conn: sqlite3.Connection, config: Config, finding: Finding, now: float) -> Alert:
    event_id = streams.new_event_id(now)
    delivery = "pending" if config.alerts.command else "none"
    cursor = conn.execute(
        "INSERT INTO alerts (nova, at, kind, message, key, details, event_id, delivery)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (finding.nova, now, finding.kind, finding.message, finding.key,
         json.dumps(finding.details), event_id, delivery))
    alert = load(conn, "id = ?", cursor.lastrowid)[0]
    _publish(conn, config, "alert.raised", alert, now)
    return alert


def _announce(conn: sqlite3.Connection, config: Config, row: Alert, now: float) -> Alert:
    """An alert account_alert.raise_for raised (on the hook path, which stays light): give it
    its stream entry and its delivery."""
    delivery = "pending" if config.alerts.command else "none"
    conn.execute("UPDATE alerts SET event_id = ?, delivery = ? WHERE id = ?",
                 (streams.new_event_id(now), delivery, row.id))
    alert = load(conn, "id = ?", row.id)[0]
    _publish(conn, config, "alert.raised", alert, now)
    return alert


def _resolve(conn: sqlite3.Connection, config: Config, row: Alert, now: float) -> Alert:
    conn.execute("UPDATE alerts SET resolved_at = ? WHERE id = ?", (now, row.id))
    alert = row._replace(resolved_at=now)
    _publish(conn, config, "alert.resolved", alert, now)
    return alert


def _publish(conn: sqlite3.Connection, config: Config, type_: str, alert: Alert,
             now: float) -> None:
    # the raise and the resolution of one alert are two entries: two event ids
    event_id = alert.event_id if type_ == "alert.raised" else None
    outbox.put(conn, config, streams.MESSAGES_STREAM,
               streams.Entry.new(type_, alert.nova or "all", payload(alert), now, event_id))


def payload(alert: Alert) -> dict[str, Any]:
    """What the stream entry's data and the command's stdin carry."""
    shown = alert.as_json()
    return {k: shown[k] for k in ("id", "key", "kind", "nova", "status", "at", "resolved_at",
                                  "message", "details")}


def load(conn: sqlite3.Connection, where: str, *args: Any) -> list[Alert]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE {where} ORDER BY id", args)
    return [Alert(*row) for row in rows.fetchall()]


def list_alerts(home: Home, config: Config, include_resolved: bool = False) -> list[Alert]:
    """Open alerts, oldest first; with `include_resolved` every alert."""
    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(lambda conn: load(conn, "1" if include_resolved
                                          else "resolved_at IS NULL"))


def recent(conn: sqlite3.Connection, resolved: int) -> list[Alert]:
    """Every open alert and the latest `resolved` resolved ones, newest first (what the
    dashboard lists: alerts accumulate, resolved ones for ever)."""
    rows = load(conn, "resolved_at IS NULL OR id IN (SELECT id FROM alerts WHERE resolved_at"
                " IS NOT NULL ORDER BY resolved_at DESC LIMIT ?)", resolved)
    return rows[::-1]
