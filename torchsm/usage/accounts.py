"""Accounts: what the Novas sharing one subscription learn about its usage windows.

The provider's limits belong to the account, not to the Nova that ran into them: each
window (five_hour, seven_day, ...) is stored once per account, whichever Nova heard of it
last, and so is what one request costs of it. Near a window's end the account's Novas
share what remains through grants: a request torchsm let a Nova send whose answer has not
been read yet (torchsm.usage.pacing decides on them).

The SQL of `account_windows` and `usage_grants` lives here; stdlib sqlite3 only (the hook
path reads it).
"""

from __future__ import annotations

import json
import sqlite3

from torchsm.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Any, Iterable

    from torchsm.config import Config, Home

GRANT_TTL_S = 300.0  # a grant whose answer never came (an API-key session, a crash) lapses
DELTAS_KEPT = 7  # the per-request estimate is the median of this many latest rises


@record
class WindowRow:
    window: str
    status: str | None
    utilization: float | None
    resets_at: float | None
    updated_at: float
    # event: a rate_limit_event; retry: an api_retry's 429; text: read from a limit message;
    # backoff: a refusal nobody announced a reset for
    source: str = "event"
    nova: str | None = None  # who heard it
    per_request: float | None = None  # the utilization one request costs, once known

    @property
    def structured(self) -> bool:
        return self.source in ("event", "retry")


_COLUMNS = "window, status, utilization, resets_at, updated_at, source, nova, per_request"


def load_windows(conn: sqlite3.Connection, account: str) -> list[WindowRow]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM account_windows WHERE account = ?"
                        " ORDER BY window", (account,))
    return [WindowRow(*row) for row in rows]


def load_all_windows(conn: sqlite3.Connection) -> dict[str, list[WindowRow]]:
    """Every account's windows, by account."""
    found: dict[str, list[WindowRow]] = {}
    for account, *row in conn.execute(f"SELECT account, {_COLUMNS} FROM account_windows"
                                      " ORDER BY account, window"):
        found.setdefault(account, []).append(WindowRow(*row))
    return found


def learn(conn: sqlite3.Connection, account: str, rows: Iterable[WindowRow],
          now: float) -> list[WindowRow]:
    """Store what was heard of the account's windows; returns the rows that changed.

    A structured word (a rate_limit_event) beats a reading of a message's text: a text
    reset never replaces a live structured one, while a structured one replaces every
    guess (text or backoff) of the account, whatever window it was filed under: the
    provider has said what its windows are. Within one window period the utilization only
    rises: a reading that arrives late (another Nova's older answer) does not lower it.
    """
    rows = list(rows)
    if any(row.structured for row in rows):
        conn.execute("DELETE FROM account_windows WHERE account = ? AND source NOT IN"
                     " ('event', 'retry')", (account,))
    changed = []
    for row in rows:
        old = _window(conn, account, row.window)
        if old is not None and _keeps(old, row, now):
            continue
        per_request, deltas = _estimate(conn, account, old, row)
        conn.execute(
            "INSERT INTO account_windows (account, window, status, utilization, resets_at,"
            " updated_at, source, nova, per_request, deltas) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?) ON CONFLICT (account, window) DO UPDATE SET status = excluded.status,"
            " utilization = excluded.utilization, resets_at = excluded.resets_at,"
            " updated_at = excluded.updated_at, source = excluded.source,"
            " nova = excluded.nova, per_request = excluded.per_request,"
            " deltas = excluded.deltas",
            (account, row.window, row.status, row.utilization, row.resets_at, row.updated_at,
             row.source, row.nova, per_request, deltas))
        changed.append(row._replace(per_request=per_request))
    return changed


def _window(conn: sqlite3.Connection, account: str, window: str) -> WindowRow | None:
    found = conn.execute(f"SELECT {_COLUMNS} FROM account_windows WHERE account = ? AND"
                         " window = ?", (account, window)).fetchone()
    return WindowRow(*found) if found else None


def _keeps(old: WindowRow, new: WindowRow, now: float) -> bool:
    """Whether the stored word stands against the new one."""
    live = old.resets_at is not None and old.resets_at > now
    if not new.structured and old.structured and live:
        return True
    same_period = old.structured and new.structured and old.resets_at == new.resets_at
    return (same_period and new.status != "rejected" and None not in (
        old.utilization, new.utilization) and new.utilization < old.utilization)


def _estimate(conn: sqlite3.Connection, account: str, old: WindowRow | None,
              new: WindowRow) -> tuple[float | None, str | None]:
    """The per-request cost after this reading: the median of the latest rises from one
    reading to the next (one reading follows every request; a new period starts at 0)."""
    stored = conn.execute("SELECT deltas FROM account_windows WHERE account = ? AND"
                          " window = ?", (account, new.window)).fetchone()
    deltas = _deltas(stored[0] if stored else None)
    if new.structured and new.utilization is not None and old is not None and old.structured:
        before = old.utilization if old.resets_at == new.resets_at else 0.0
        rise = new.utilization - (before or 0.0)
        if 0 < rise <= 1:
            deltas = (deltas + [round(rise, 6)])[-DELTAS_KEPT:]
    if not deltas:
        return None, None
    return _median(deltas), json.dumps(deltas)


def _median(values: list[float]) -> float:
    ordered, middle = sorted(values), len(values) // 2
    return ordered[middle] if len(values) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _deltas(raw: str | None) -> list[float]:
    try:
        values = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [float(v) for v in values if isinstance(v, (int, float))][-DELTAS_KEPT:]


# --- grants: the requests in flight on an account --------------------------------------

def in_flight(conn: sqlite3.Connection, account: str, nova_id: int, now: float) -> int:
    """Requests other Novas of the account were granted and whose answers are not in,
    on this host and, as last heard from the cluster, on the others."""
    here = conn.execute("SELECT count(*) FROM usage_grants WHERE account = ? AND nova_id != ?"
                        " AND granted_at > ?", (account, nova_id, now - GRANT_TTL_S)).fetchone()[0]
    peers = load_peers(conn, account)
    fresh = peers is not None and peers.answered_at > now - GRANT_TTL_S
    return here + (peers.in_flight if fresh else 0)


def grant_tokens(conn: sqlite3.Connection, account: str, now: float) -> list[str]:
    """This host's requests of the account in flight, as the cluster names them:
    NOVA@TOKEN, the token being the grant's time (torchsm.usage.server_grants)."""
    return [f"{name}@{grant_token(granted_at)}" for name, granted_at in conn.execute(
        "SELECT n.name, g.granted_at FROM usage_grants g JOIN novas n ON n.id = g.nova_id"
        " WHERE g.account = ? AND g.granted_at > ? ORDER BY n.name",
        (account, now - GRANT_TTL_S))]


def grant_token(granted_at: float) -> str:
    """A grant's token: its time, exact (the grant's row and its member on the server
    name it alike)."""
    return repr(granted_at)


def pending(conn: sqlite3.Connection, nova_id: int, now: float) -> bool:
    """Whether the Nova's latest request is still in flight (its answer not read)."""
    return conn.execute("SELECT 1 FROM usage_grants WHERE nova_id = ? AND granted_at > ?",
                        (nova_id, now - GRANT_TTL_S)).fetchone() is not None


def grant(conn: sqlite3.Connection, account: str, nova_id: int, now: float) -> None:
    """A Nova sends one request at a time: a new grant replaces its earlier one."""
    conn.execute("DELETE FROM usage_grants WHERE nova_id = ? OR granted_at <= ?",
                 (nova_id, now - GRANT_TTL_S))
    conn.execute("INSERT INTO usage_grants (account, nova_id, granted_at) VALUES (?, ?, ?)",
                 (account, nova_id, now))


def answered(conn: sqlite3.Connection, nova_id: int) -> None:
    """The Nova's request was answered (its rate_limit_event was read) or its session
    ended: the account's reading includes it now."""
    conn.execute("DELETE FROM usage_grants WHERE nova_id = ?", (nova_id,))


# --- the cluster's other hosts on the account (written by torchsm.cluster.accounts) -------

@record
class Peers:
    """What the other hosts do on the account, as last heard from the cluster's server."""

    in_flight: int  # their requests granted and not answered yet
    running: int  # their sessions of the account running
    last_start: float | None  # their latest session start (this host's clock)
    answered_at: float  # when the server last answered (this host's clock)


def load_peers(conn: sqlite3.Connection, account: str) -> Peers | None:
    """None: the account is not shared through a cluster (no sync has written it)."""
    found = conn.execute("SELECT in_flight, running, last_start, answered_at FROM"
                         " account_peers WHERE account = ?", (account,)).fetchone()
    return Peers(*found) if found else None


def store_peers(conn: sqlite3.Connection, account: str, peers: Peers) -> None:
    conn.execute("INSERT INTO account_peers (account, in_flight, running, last_start,"
                 " answered_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET"
                 " in_flight = excluded.in_flight, running = excluded.running,"
                 " last_start = excluded.last_start, answered_at = excluded.answered_at",
                 (account, *peers))


def share(conn: sqlite3.Connection, account: str, now: float) -> None:
    """The account is shared from `now` on: a host that never reaches the server is cut
    off `lease_s` after it began to try, as one that lost it is."""
    conn.execute("INSERT INTO account_peers (account, answered_at) VALUES (?, ?)"
                 " ON CONFLICT (account) DO NOTHING", (account, now))


def heard_locally(row: WindowRow) -> bool:
    """Heard on this host: what another host heard is stored with its `HOST:NOVA`."""
    return ":" not in (row.nova or "")


def news(conn: sqlite3.Connection, account: str, rows: Iterable[WindowRow]) -> list[WindowRow]:
    """The rows that say something the account's stored windows do not."""
    def said(row: WindowRow) -> tuple:
        return row.status, row.utilization, row.resets_at

    stored = {w.window: said(w) for w in load_windows(conn, account)}
    return [row for row in rows if stored.get(row.window) != said(row)]


# --- reading the provider's words ------------------------------------------------------

def windows_from_event(info: dict[str, Any], now: float, nova: str | None = None,
                       source: str = "event") -> tuple[list[WindowRow], list[str]]:
    """The windows a `rate_limit_event`'s `rate_limit_info` describes, and a warning per
    field that could not be read. A reset beyond what the window can last is capped;
    one in the past is kept (that window has simply reset)."""
    if not isinstance(info, dict):
        return [], ["a rate_limit_event without rate_limit_info"]
    windows = info.get("unifiedWindows")
    if isinstance(windows, dict) and windows:
        parts = [(name, w) for name, w in windows.items() if isinstance(w, dict)]
    else:
        parts = [(info.get("rateLimitType") or "unified", info)]
    rows, warnings = [], []
    for name, part in parts:
        row, said = checked_window(str(name), part, now, now, source, nova)
        rows.append(row)
        warnings.extend(said)
    return rows, warnings


def checked_window(name: str, part: dict[str, Any], now: float, heard_at: float,
                   source: str, nova: str | None) -> tuple[WindowRow, list[str]]:
    """One window as heard from outside (`utilization`, `resetsAt`, `status`), every
    number checked: a utilization outside 0..1 or a reset that is no time is dropped, a
    reset beyond what the window can last is capped; with a warning for each."""
    from torchsm.usage.resets import cap_reset

    name, warnings = name[:32], []
    utilization, resets_at = _number(part.get("utilization")), _number(part.get("resetsAt"))
    if part.get("utilization") is not None and (utilization is None or
                                                not 0 <= utilization <= 1):
        warnings.append(f"{name}: utilization {part.get('utilization')!r} is not a number"
                        " from 0 to 1; ignored")
        utilization = None
    if part.get("resetsAt") is not None and (resets_at is None or resets_at <= 0):
        warnings.append(f"{name}: resetsAt {part.get('resetsAt')!r} is not a time; ignored")
        resets_at = None
    if resets_at is not None:
        resets_at, warning = cap_reset(resets_at, name, now)
        if warning:
            warnings.append(warning)
    status = part.get("status") if isinstance(part.get("status"), str) else None
    return WindowRow(name, status[:32] if status else None, utilization, resets_at, heard_at,
                     source, nova), warnings


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def move_nova(home: Home, config: Config, name: str, account: str,
              now: float | None = None) -> dict[str, Any]:
    """Move a Nova to another account: from now on it shares that account's windows,
    holds and cost budget. What it was granted by the old account, and a hold it had for
    that account's limit, end."""
    # a command's path, not the hooks': what it needs loads here
    import time

    from torchsm import novas
    from torchsm.mirror import outbox, streams
    from torchsm.names import check_account, check_name
    from torchsm.storage import store

    check_name(name)
    check_account(account)
    now = time.time() if now is None else now

    def move(conn: sqlite3.Connection) -> store.NovaRow:
        nova = store.nova_named(conn, name)
        if nova.account != account:
            store.set_account(conn, nova.id, account)
            conn.execute("DELETE FROM usage_grants WHERE nova_id = ?", (nova.id,))
            novas.release_limit_hold(conn, nova, now, forget=True)
            outbox.put(conn, config, streams.OPS_STREAM, streams.Entry.new(
                "nova.account", name, {"from": nova.account, "to": account}, now))
        return nova

    with store.open_store(home, config.db.lock_timeout_s) as db:
        before = db.write(move)
    if before.account != account:
        outbox.deliver(home, config)
    return novas.show(home, config, name)
