"""Stdlib sqlite3 access for the latency-critical paths (transition, status, hooks).

Everything else goes through SQLAlchemy (torchsm.db); the schema itself is declared in
torchsm.storage.schema and created by migrations. This module exists because importing
SQLAlchemy costs ~170 ms, more than a whole hook call may take (FIELD-NOTES).

Locking: every read-then-write runs under BEGIN IMMEDIATE. SQLite's own busy handler is a
sleeping poll that measured p99 ~1 s under a busy writer, so the connection has
busy_timeout 0 and `write`/`read` retry with sub-millisecond sleeps until the configured
lock timeout, then raise DatabaseLocked.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from torchsm.config import Home
from torchsm.errors import (DatabaseCorrupt, DatabaseError, DatabaseFailed, DatabaseLocked,
                            DatabaseReadOnly, HomeNotInitialised, NovaNotFound,
                            SchemaOutOfDate, SchemaUnknown)
from torchsm.names import HOOK_EVENTS
from torchsm.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Callable, TypeVar

    T = TypeVar("T")

# The Alembic head this code expects; a test checks it against migrations/.
SCHEMA_REVISION = "0015"
INT64_MAX = 2**63 - 1  # SQLite's largest integer: a larger one is an OverflowError in a query


@record
class NovaRow:
    id: int
    name: str
    personality: str
    state: str
    since: float
    until: float | None
    reason: str | None
    cool_streak: int
    last_cool_until: float | None
    created_at: float
    limit_hold: str | None = None
    account: str = "default"


_NOVA_COLUMNS = ("id, name, personality, state, since, until, reason, cool_streak, "
                 "last_cool_until, created_at, limit_hold, account")


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _pause() -> None:
    """A random sub-millisecond sleep between tries on a locked database. `random` loads
    here, not at import: it costs every hook call ~2 ms and only a lock needs it."""
    import random

    time.sleep(random.uniform(0.0002, 0.001))


_SQLITE_READONLY, _SQLITE_CORRUPT, _SQLITE_NOTADB = 8, 11, 26


def is_read_only(exc: sqlite3.Error) -> bool:
    """SQLite refused to write (or to make the files it needs to read) here."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == _SQLITE_READONLY
    return "readonly database" in str(exc)


def is_corrupt(exc: sqlite3.Error) -> bool:
    """SQLite says the file is not a database, or that its pages are damaged."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(exc)
    return "malformed" in text or "not a database" in text


class Store:
    def __init__(self, conn: sqlite3.Connection, lock_timeout_s: float,
                 path: str | os.PathLike | None = None):
        self.conn = conn
        self.lock_timeout_s = lock_timeout_s
        self.path = path  # the database file, named when it turns out corrupt

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one BEGIN IMMEDIATE transaction, retrying while the db is locked."""
        return self.retrying(lambda: self._transaction(work, "BEGIN IMMEDIATE"))

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self.retrying(lambda: self._transaction(work, "BEGIN"))

    def _transaction(self, work: Callable[[sqlite3.Connection], T], begin: str) -> T:
        self.conn.execute(begin)
        try:
            result = work(self.conn)
            self.conn.execute("COMMIT")
            return result
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def retrying(self, attempt: Callable[[], T]) -> T:
        """Call `attempt` until it does not hit a lock, or the lock timeout passes."""
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc):
                    raise self._database_error(exc) from None
                if time.monotonic() >= deadline:
                    raise DatabaseLocked(gave_up_after_s=self.lock_timeout_s) from None
                _pause()
            except sqlite3.DatabaseError as exc:
                raise self._database_error(exc) from None

    def _database_error(self, exc: sqlite3.DatabaseError) -> DatabaseError:
        if self.path is not None and is_corrupt(exc):
            return DatabaseCorrupt(self.path, str(exc))
        if is_read_only(exc):
            return DatabaseReadOnly(self.path or "the database")
        return DatabaseFailed(exc)


def database_uri(path: str | os.PathLike, mode: str = "rw", immutable: bool = False) -> str:
    """The SQLite URI of the database file `path`, opened with `mode` (rw, ro): every
    character a URI gives a meaning to (`?`, `#`, `%`, ...) escaped, so that a home named
    `h?x` opens its own torchsm.db, never a file `h` beside it."""
    return f"file:{_percent_encoded(os.fsencode(path))}?mode={mode}" + "&immutable=1" * immutable


# what urllib.parse.quote leaves as it is (its default `safe="/"`); urllib itself costs the
# hot path ~3 ms to import
_URI_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def _percent_encoded(path: bytes) -> str:
    """urllib.parse.quote(path): every byte but _URI_SAFE as %XX."""
    return "".join(chr(b) if b in _URI_SAFE else f"%{b:02X}" for b in path)


def connect(path: str | os.PathLike, mode: str = "rw", **options) -> sqlite3.Connection:
    """A connection to the existing database file `path` (never a new one elsewhere).

    In a read-only home SQLite cannot make the -shm file a WAL database needs even to be
    read: the database is then opened immutable, read as it is on disk, and every change
    fails as read-only (`DatabaseReadOnly`)."""
    conn = sqlite3.connect(database_uri(path, mode), uri=True, **options)
    if not _needs_immutable(conn):
        return conn
    conn.close()
    conn = sqlite3.connect(database_uri(path, "ro", immutable=True), uri=True, **options)
    conn.execute("PRAGMA query_only = 1")  # says so to whoever gets the connection
    return conn


def is_query_only(conn: sqlite3.Connection) -> bool:
    """Whether `conn` may only read (the immutable fallback of `connect`)."""
    return conn.execute("PRAGMA query_only").fetchone()[0] == 1


def _needs_immutable(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:  # busy or corrupt: the caller's own reads say so
        return is_read_only(exc)
    return False


def open_store(home: Home, lock_timeout_s: float = 5.0) -> Store:
    """Open an initialised home's database and check that its schema is at head."""
    if not home.is_initialised():
        raise HomeNotInitialised(home.root)
    try:
        conn = connect(home.db_file, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open {home.db_file}: {exc}") from None
    store = Store(conn, lock_timeout_s, home.db_file)
    try:
        store.retrying(lambda: _configure(conn))
        revision = store.read(schema_revision)
        if revision is None and store.read(holds_foreign_tables):
            raise DatabaseCorrupt(home.db_file, FOREIGN_TABLES)
    except BaseException:
        conn.close()
        raise
    if revision != SCHEMA_REVISION:
        conn.close()
        raise schema_error(revision)
    return store


def is_known_revision(revision: str | None) -> bool:
    """Whether this torchsm knows the schema `revision` (None: an empty database).
    Revisions are numbered 0001, 0002, ... (a test keeps them so): a known one is at most
    SCHEMA_REVISION, and the hot path needs no Alembic to tell."""
    return revision is None or (revision.isdigit() and int(revision) <= int(SCHEMA_REVISION))


def schema_error(revision: str | None) -> SchemaOutOfDate | SchemaUnknown:
    """Why a database at `revision` (not the head) cannot be used, and what to do."""
    if is_known_revision(revision):
        return SchemaOutOfDate(revision, SCHEMA_REVISION)
    return SchemaUnknown(revision, SCHEMA_REVISION)


def _configure(conn: sqlite3.Connection) -> None:
    # The first statements on a new connection can find the database busy (another
    # process's last connection checkpointing the WAL as it closes): the caller retries.
    conn.execute("PRAGMA synchronous=NORMAL")  # Debian defaults to FULL even in WAL
    conn.execute("PRAGMA foreign_keys=ON")


FOREIGN_TABLES = "tables but no torchsm schema version"


def holds_foreign_tables(conn: sqlite3.Connection) -> bool:
    """Whether the database holds tables but no `alembic_version`: someone else's. (An
    empty one is a new torchsm.db; a migrated-down one keeps an empty alembic_version.)"""
    names = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    return bool(names) and "alembic_version" not in names


def schema_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return row[0] if row else None


def load_nova(conn: sqlite3.Connection, name: str) -> NovaRow | None:
    row = conn.execute(f"SELECT {_NOVA_COLUMNS} FROM novas WHERE name = ?", (name,)).fetchone()
    return NovaRow(*row) if row else None


def nova_named(conn: sqlite3.Connection, name: str) -> NovaRow:
    """Nova `name`, or NovaNotFound: the one way to load a Nova or fail."""
    row = load_nova(conn, name)
    if row is None:
        raise NovaNotFound(name)
    return row


def load_novas(conn: sqlite3.Connection) -> list[NovaRow]:
    rows = conn.execute(f"SELECT {_NOVA_COLUMNS} FROM novas ORDER BY name").fetchall()
    return [NovaRow(*row) for row in rows]


def load_novas_or_one(conn: sqlite3.Connection, name: str | None) -> list[NovaRow]:
    """Every Nova (`name` None), or the one named `name` (NovaNotFound if none is)."""
    if name is None:
        return load_novas(conn)
    from torchsm.names import check_name

    return [nova_named(conn, check_name(name))]


def save_transition(conn: sqlite3.Connection, nova: NovaRow, *, to_state: str, event: str,
                    reason: str | None, at: float, until: float | None, forced: bool,
                    cool_streak: int, last_cool_until: float | None,
                    event_id: str | None = None, limit_hold: str | None = None,
                    hold_only: bool = False) -> None:
    """The state change and its history row; the caller's transaction commits both.
    `event_id` is the id the row's mirror entry carries; `hold_only` marks a cooldown
    that only waits for a usage limit's announced reset."""
    since = at if to_state != nova.state else nova.since
    conn.execute(
        "UPDATE novas SET state = ?, since = ?, until = ?, reason = ?, cool_streak = ?,"
        " last_cool_until = ?, limit_hold = ? WHERE id = ?",
        (to_state, since, until, reason, cool_streak, last_cool_until, limit_hold, nova.id),
    )
    conn.execute(
        "INSERT INTO history (nova_id, from_state, to_state, event, reason, at, until, forced,"
        " event_id, limit_hold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (nova.id, nova.state, to_state, event, reason, at, until, forced, event_id, hold_only),
    )


def recent_cools_and_bangs(conn: sqlite3.Connection, nova_id: int, since: float) -> tuple[int, int]:
    """How many cooldowns a Nova entered, and how many bangs it had, since `since`.
    Waiting for a usage limit's reset is not overheating: those cooldowns do not count."""
    cools = conn.execute("SELECT count(*) FROM history WHERE nova_id = ? AND event = 'cool'"
                         " AND NOT limit_hold AND at >= ?", (nova_id, since)).fetchone()[0]
    bangs = conn.execute("SELECT count(*) FROM hook_runs WHERE nova_id = ? AND outcome = 'bang'"
                         " AND at >= ?", (nova_id, since)).fetchone()[0]
    return cools, bangs


@record
class MessageRow:
    id: int
    event_id: str
    sender: str
    recipient: str
    text: str
    at: float


_MESSAGE_COLUMNS = "id, event_id, sender, recipient, text, at"
# A Nova's inbox: what is addressed to it, and broadcasts from the others.
_INBOX = "(recipient = :name OR (recipient = 'all' AND sender != :name))"


def save_message(conn: sqlite3.Connection, *, event_id: str, sender: str, recipient: str,
                 text: str, at: float) -> MessageRow:
    cursor = conn.execute(
        "INSERT INTO messages (event_id, sender, recipient, text, at) VALUES (?, ?, ?, ?, ?)",
        (event_id, sender, recipient, text, at))
    return MessageRow(cursor.lastrowid, event_id, sender, recipient, text, at)


def keep_message(conn: sqlite3.Connection, *, event_id: str, sender: str, recipient: str,
                 text: str, at: float) -> bool:
    """Store a message heard from elsewhere (another host) unless its event_id is here
    already; whether it was new."""
    return conn.execute(
        "INSERT OR IGNORE INTO messages (event_id, sender, recipient, text, at)"
        " VALUES (?, ?, ?, ?, ?)", (event_id, sender, recipient, text, at)).rowcount == 1


def load_inbox(conn: sqlite3.Connection, name: str, limit: int) -> list[MessageRow]:
    """The latest `limit` messages for Nova `name`, oldest first."""
    # each branch walks ix_messages_recipient backwards and stops at `limit`: an OR would
    # gather and sort every message the Nova ever had
    rows = conn.execute(
        f"SELECT * FROM (SELECT {_MESSAGE_COLUMNS} FROM messages WHERE recipient = :name"
        " ORDER BY id DESC LIMIT :limit) UNION ALL SELECT * FROM ("
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE recipient = 'all' AND sender != :name"
        " ORDER BY id DESC LIMIT :limit) ORDER BY 1 DESC LIMIT :limit",
        {"name": name, "limit": limit})
    return [MessageRow(*row) for row in reversed(rows.fetchall())]


def load_inbox_after(conn: sqlite3.Connection, name: str, after_id: int) -> list[MessageRow]:
    """Messages for Nova `name` stored after row `after_id`, oldest first."""
    rows = conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {_INBOX}"
                        " AND id > :after ORDER BY id", {"name": name, "after": after_id})
    return [MessageRow(*row) for row in rows.fetchall()]


def last_message_id(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]


def extend_wait(conn: sqlite3.Connection, nova_id: int, until: float,
                limit_hold: str | None) -> None:
    """Make a waiting Nova wait longer, without a transition (its state does not change)."""
    conn.execute("UPDATE novas SET until = ?, limit_hold = ? WHERE id = ?",
                 (until, limit_hold, nova_id))


# --- hook runs, snapshots, alerts, restart requests (the hook path) -------------------

def record_hook_run(conn: sqlite3.Connection, *, nova_id: int, event: str,
                    session_id: str | None, at: float, duration_ms: float, outcome: str,
                    item_id: int | None, detail: str | None,
                    message_digest: str | None = None) -> None:
    conn.execute(
        "INSERT INTO hook_runs (nova_id, event, session_id, at, duration_ms, outcome, item_id,"
        " detail, message_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (nova_id, event, session_id, at, duration_ms, outcome, item_id, detail,
         message_digest))


def latest_hook_run(conn: sqlite3.Connection, nova_id: int, since: float
                    ) -> tuple[str, str, float, str | None] | None:
    """(event, outcome, at, session id) of the Nova's latest hook run after `since`."""
    found = []
    for event in HOOK_EVENTS:  # one index lookup each, (nova_id, event, at): never a scan
        row = conn.execute("SELECT at, outcome, session_id FROM hook_runs WHERE nova_id = ?"
                           " AND event = ? AND at > ? ORDER BY at DESC LIMIT 1",
                           (nova_id, event, since)).fetchone()
        if row is not None:
            found.append((row[0], event, row[1], row[2]))
    if not found:
        return None
    at, event, outcome, session_id = max(found, key=lambda f: f[0])
    return event, outcome, at, session_id


def set_account(conn: sqlite3.Connection, nova_id: int, account: str) -> None:
    conn.execute("UPDATE novas SET account = ? WHERE id = ?", (account, nova_id))


def nova_command(conn: sqlite3.Connection, name: str) -> list[str] | None:
    """The agent command Nova `name` keeps (`nova add|set --command`), None when none."""
    row = conn.execute("SELECT command FROM novas WHERE name = ?", (name,)).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def nova_commands(conn: sqlite3.Connection) -> dict[str, list[str] | None]:
    """Each Nova's kept agent command (None when it keeps none), by name."""
    rows = conn.execute("SELECT name, command FROM novas ORDER BY name")
    return {name: json.loads(words) if words else None for name, words in rows}


def set_nova_command(conn: sqlite3.Connection, nova_id: int, words: list[str] | None) -> None:
    conn.execute("UPDATE novas SET command = ? WHERE id = ?",
                 (json.dumps(words) if words else None, nova_id))


def nova_names(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM novas")}


def count_hook_runs(conn: sqlite3.Connection, nova_id: int, event: str, since: float) -> int:
    return conn.execute("SELECT count(*) FROM hook_runs WHERE nova_id = ? AND event = ?"
                        " AND at >= ?", (nova_id, event, since)).fetchone()[0]


# A session's prompt starts a chain of Stop continuations; a new prompt (or a new start)
# begins a new chain.
_CHAIN_START = """
SELECT coalesce(max(id), 0) FROM hook_runs
 WHERE nova_id = ? AND session_id = ? AND event IN ('session-start', 'user-prompt-submit')
"""


def continuation_chain(conn: sqlite3.Connection, nova_id: int, session_id: str,
                       latest: int) -> tuple[int, list[tuple[str | None, int | None]]]:
    """The session's current chain: how many continuations so far, and the (message
    digest, item id) of the `latest` ones, newest first."""
    start = conn.execute(_CHAIN_START, (nova_id, session_id)).fetchone()[0]
    where = ("FROM hook_runs WHERE nova_id = ? AND session_id = ? AND id > ?"
             " AND outcome = 'continued'")
    args = (nova_id, session_id, start)
    count = conn.execute(f"SELECT count(*) {where}", args).fetchone()[0]
    recent = conn.execute(f"SELECT message_digest, item_id {where} ORDER BY id DESC LIMIT ?",
                          (*args, latest)).fetchall()
    return count, recent


def request_restart(conn: sqlite3.Connection, nova_id: int, at: float, reason: str) -> None:
    conn.execute("UPDATE novas SET restart_requested_at = ?, restart_reason = ? WHERE id = ?",
                 (at, reason, nova_id))


def restart_request(conn: sqlite3.Connection, nova_id: int) -> tuple[float, str | None] | None:
    """(requested at, reason) of the Nova's pending restart request, if any."""
    row = conn.execute("SELECT restart_requested_at, restart_reason FROM novas WHERE id = ?",
                       (nova_id,)).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def clear_restart_request(conn: sqlite3.Connection, nova_id: int, requested_at: float) -> bool:
    """Clear the request the supervisor is honouring (not a newer one made meanwhile)."""
    return conn.execute("UPDATE novas SET restart_requested_at = NULL, restart_reason = NULL"
                        " WHERE id = ? AND restart_requested_at = ?",
                        (nova_id, requested_at)).rowcount == 1


def save_snapshot(conn: sqlite3.Connection, *, nova_id: int, at: float,
                  session_id: str | None, trigger: str | None, content: str) -> None:
    conn.execute("INSERT INTO snapshots (nova_id, at, session_id, trigger, content)"
                 " VALUES (?, ?, ?, ?, ?)", (nova_id, at, session_id, trigger, content))


def latest_snapshot(conn: sqlite3.Connection, nova_id: int) -> str | None:
    row = conn.execute("SELECT content FROM snapshots WHERE nova_id = ? ORDER BY id DESC"
                       " LIMIT 1", (nova_id,)).fetchone()
    return row[0] if row else None


def recent_history(conn: sqlite3.Connection, nova_id: int, limit: int) -> list[tuple]:
    """(from, to, event, reason, at) of the latest transitions, oldest first."""
    rows = conn.execute("SELECT from_state, to_state, event, reason, at FROM history"
                        " WHERE nova_id = ? ORDER BY id DESC LIMIT ?", (nova_id, limit)).fetchall()
    return rows[::-1]


def novas_on_account(conn: sqlite3.Connection, account: str) -> list[NovaRow]:
    rows = conn.execute(f"SELECT {_NOVA_COLUMNS} FROM novas WHERE account = ? ORDER BY name",
                        (account,)).fetchall()
    return [NovaRow(*row) for row in rows]
