"""The work queue: items a Nova claims under a lease, finishes, or fails.

A claim is one `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING` inside a BEGIN
IMMEDIATE transaction, so two processes can never be handed the same item (FIELD-NOTES
"Queues", the lease-table design). Order: tier first, then age. A claim is one attempt
and holds a lease. An item whose lease has expired is claimable again (the claim itself
looks for it, so the hot path needs no separate sweep); once its `max_attempts`-th lease
has expired it is `dead`. Sweeps (`requeue_expired`, listing, a claim that finds nothing)
write those outcomes down: expired items back to `pending`, exhausted ones `dead`.
`done` and `fail` are final.

This is the Stop hook's path: stdlib sqlite3 only (torchsm.storage.store), never SQLAlchemy.
"""

from __future__ import annotations

import os
import sqlite3
import time
from enum import Enum

from torchsm.clock import format_time
from torchsm.config import MAX_COUNT, MAX_DURATION_S, Config, Home, QueueConfig
from torchsm.errors import (DatabaseReadOnly, InvalidDuration, InvalidWorkItem, ItemNotFound,
                            ItemNotOpen, LeaseLost, NothingToClaim)
from torchsm.names import check_name
from torchsm.records import record
from torchsm.storage import store
from torchsm.tiers import Tier, parse_tier

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Any


class ItemStatus(str, Enum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"


OPEN_STATUSES = (ItemStatus.PENDING, ItemStatus.CLAIMED)
# an open item, in the words of the partial index on open items (the planner uses it only
# for this literal): every reader of the queue says "open" this way
OPEN_SQL = "status IN ('pending', 'claimed')"
_TIERS = {t.value: t for t in Tier}
_STATUSES = {s.value: s for s in ItemStatus}

_COLUMNS = ("id, text, nova, priority, status, attempts, max_attempts, lease_until, owner, "
            "claimed_by, created_at, updated_at, finished_at, result, error")


@record
class WorkItem:
    """One work item as stored. A NamedTuple, not a frozen dataclass: building one is a
    third of a claim's Python time otherwise, and it is immutable either way."""

    id: int
    text: str
    nova: str | None
    priority: Tier
    status: ItemStatus
    attempts: int
    max_attempts: int
    lease_until: float | None
    owner: str | None  # the token of the current claim
    claimed_by: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    result: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: tuple) -> "WorkItem":
        # dict lookups: Enum(value) costs more than the rest of a claim's Python
        return cls(*row[:3], _TIERS[row[3]], _STATUSES[row[4]], *row[5:])

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "nova": self.nova,
                "priority": self.priority.value, "status": self.status.value,
                "attempts": self.attempts, "max_attempts": self.max_attempts,
                "lease_until": format_time(self.lease_until), "owner": self.owner,
                "claimed_by": self.claimed_by, "created_at": format_time(self.created_at),
                "updated_at": format_time(self.updated_at),
                "finished_at": format_time(self.finished_at),
                "result": self.result, "error": self.error}


class WorkQueue:
    """The queue over one open store. Every method is one short transaction."""

    def __init__(self, db: store.Store, config: QueueConfig):
        self.db = db
        self.config = config

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "WorkQueue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, text: str, *, nova: str | None = None, priority: Tier | str = Tier.MEDIUM,
            max_attempts: int | None = None, now: float | None = None) -> WorkItem:
        """Add a pending item; `nova` targets one Nova (None: any Nova may take it)."""
        text = check_text(text)
        tier = priority if isinstance(priority, Tier) else parse_tier(priority)
        attempts = self._max_attempts(max_attempts)
        now = _now(now)

        def insert(conn: sqlite3.Connection) -> WorkItem:
            if nova is not None:
                _require_nova(conn, nova)
            return _insert(conn, text, nova, tier, attempts, now, source_key=None)

        return self.db.write(insert)

    def claim(self, nova: str, *, lease_s: float | None = None,
              now: float | None = None) -> WorkItem:
        """Claim the next item for `nova` (targeted at it or at no one), or NothingToClaim."""
        item = self.try_claim(nova, lease_s=lease_s, now=now)
        if item is None:
            raise NothingToClaim(nova)
        return item

    def try_claim(self, nova: str, *, lease_s: float | None = None,
                  done_first: WorkItem | None = None,
                  now: float | None = None) -> WorkItem | None:
        """Like `claim`, but None when nothing is claimable.

        `done_first`: an earlier claim to mark done in the same transaction, if it still
        holds (already finished or lost: left as it is). This is the Stop hook's step,
        "the last task is done, give me the next", at the cost of one transaction."""
        lease_s = self.config.lease_s if lease_s is None else lease_s
        if not 0 < lease_s <= MAX_DURATION_S:  # nan fails both: a lease that never ends
            raise InvalidDuration("the lease", MAX_DURATION_S)
        now = _now(now)
        owner = os.urandom(12).hex()

        def claim_next(conn: sqlite3.Connection) -> WorkItem | None:
            _require_nova(conn, nova)
            if done_first is not None:
                conn.execute(_FINISH, (ItemStatus.DONE.value, now, now, None, None,
                                       done_first.id, done_first.owner, done_first.owner))
            return claim_next_in(conn, nova, lease_s, now, owner)

        return self.db.write(claim_next)

    def done(self, item_id: int, *, owner: str | None = None, result: str | None = None,
             now: float | None = None) -> WorkItem:
        """Mark an item done. With `owner` (the claim's token) only while that claim holds."""
        return self._finish(item_id, ItemStatus.DONE, owner, result, None, _now(now))

    def fail(self, item_id: int, *, owner: str | None = None, error: str | None = None,
             now: float | None = None) -> WorkItem:
        """Mark an item failed (final; the error is kept)."""
        return self._finish(item_id, ItemStatus.FAILED, owner, None, error, _now(now))

    def _finish(self, item_id: int, status: ItemStatus, owner: str | None,
                result: str | None, error: str | None, now: float) -> WorkItem:
        def finish(conn: sqlite3.Connection) -> WorkItem:
            row = conn.execute(_FINISH, (status.value, now, now, result, error, item_id,
                                         owner, owner)).fetchone()
            if row is None:
                raise _why_not_finished(conn, item_id, owner)
            return WorkItem.from_row(row)

        return self.db.write(finish)

    def requeue_expired(self, *, now: float | None = None) -> int:
        """Return items whose lease has expired to pending (or make them dead); how many."""
        now = _now(now)
        return self.db.write(lambda conn: requeue_expired(conn, now))

    def get(self, item_id: int) -> WorkItem:
        def load(conn: sqlite3.Connection) -> WorkItem:
            item = _load(conn, item_id)
            if item is None:
                raise ItemNotFound(item_id)
            return item

        return self.db.read(load)

    def items(self, *, nova: str | None = None, status: ItemStatus | str | None = None,
              now: float | None = None) -> list[WorkItem]:
        """Items in claim order; `nova`: those addressed to it or claimed by it."""
        status = parse_status(status) if isinstance(status, str) else status
        now = _now(now)

        def select(conn: sqlite3.Connection, requeue: bool = True) -> list[WorkItem]:
            if nova is not None:
                _require_nova(conn, nova)
            if requeue:
                requeue_expired(conn, now)  # so the listing shows what a claim would see
            where, params = _list_filter(nova, status)
            rows = conn.execute(f"SELECT {_COLUMNS} FROM work_items {where} "
                                "ORDER BY priority_rank, created_at, id", params)
            return [WorkItem.from_row(r) for r in rows]

        try:
            return self.db.write(select)
        except DatabaseReadOnly:  # a read-only home: what is stored, expired leases too
            return self.db.read(lambda conn: select(conn, requeue=False))

    def import_file(self, path: str | os.PathLike, *, now: float | None = None):
        """Add every line of a legacy text queue or JSONL file (torchsm.work.queue_import).

        All lines go in one transaction. A line imported before (the same content, the same
        occurrence in its file, from whichever file) is counted as a duplicate, not added
        again."""
        from pathlib import Path

        from torchsm.work.queue_import import ImportReport, parse_import_lines, read_import_file

        path = Path(path)
        lines = read_import_file(path)
        now = _now(now)

        def ingest(conn: sqlite3.Connection) -> ImportReport:
            report = ImportReport(str(path))
            known_novas = store.nova_names(conn)
            for parsed in parse_import_lines(lines, str(path.resolve()), known_novas, report):
                attempts = self._max_attempts(parsed.max_attempts)
                item = None if _has_source_key(conn, parsed.path_key) else _insert(
                    conn, parsed.text, parsed.nova, parsed.priority, attempts, now,
                    source_key=parsed.source_key)
                if item is None:
                    report.duplicates += 1
                else:
                    report.added += 1
            return report

        return self.db.write(ingest)

    def _max_attempts(self, requested: int | None) -> int:
        attempts = self.config.max_attempts if requested is None else requested
        if not 1 <= attempts <= MAX_COUNT:
            raise InvalidWorkItem(f"max attempts must be from 1 to {MAX_COUNT}")
        return attempts


def open_queue(home: Home, config: Config) -> WorkQueue:
    """The work queue of an initialised home; close it (or use `with`) when done."""
    return WorkQueue(store.open_store(home, config.db.lock_timeout_s), config.queue)


# The whole claim, one statement: pick the first claimable row in claim order and take it.
# Run inside BEGIN IMMEDIATE, so no other writer can take the same row in between.
# Claimable: pending, or claimed with an expired lease and attempts left. The first
# `status IN (...)` term is the partial index's own condition, which lets SQLite use it.
_CLAIM_NEXT = f"""
UPDATE work_items
   SET status = 'claimed', owner = ?, claimed_by = ?, attempts = attempts + 1,
       lease_until = ?, updated_at = ?
 WHERE id = (SELECT id FROM work_items
              WHERE status IN ('pending', 'claimed')
                AND (status = 'pending' OR (lease_until <= ? AND attempts < max_attempts))
                AND (nova IS NULL OR nova = ?)
              ORDER BY priority_rank, created_at, id
              LIMIT 1)
RETURNING {_COLUMNS}
"""

# An owner token, when given, must still hold the claim; without one (an operator at the
# CLI) any open item may be finished.
_FINISH = f"""
UPDATE work_items
   SET status = ?, finished_at = ?, updated_at = ?, result = ?, error = ?,
       lease_until = NULL
 WHERE id = ? AND status IN ('pending', 'claimed')
   AND (? IS NULL OR (status = 'claimed' AND owner = ?))
RETURNING {_COLUMNS}
"""

_REQUEUE_EXPIRED = """
UPDATE work_items
   SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
       error = CASE WHEN attempts >= max_attempts
                    THEN 'lease expired on attempt ' || attempts || ' of ' || max_attempts
                    ELSE error END,
       finished_at = CASE WHEN attempts >= max_attempts THEN ? ELSE NULL END,
       owner = NULL, lease_until = NULL, updated_at = ?
 WHERE status IN ('pending', 'claimed') AND status = 'claimed' AND lease_until <= ?
"""


def claim_next_in(conn: sqlite3.Connection, nova: str, lease_s: float, now: float,
                  owner: str | None = None) -> WorkItem | None:
    """Claim the next item for `nova` inside the caller's write transaction."""
    row = conn.execute(_CLAIM_NEXT, (owner or os.urandom(12).hex(), nova, now + lease_s, now,
                                     now, nova)).fetchone()
    if row is None:
        requeue_expired(conn, now)  # an idle moment: write down the dead ones
        return None
    return WorkItem.from_row(row)


def finish_claimed_by(conn: sqlite3.Connection, item_id: int, nova: str, now: float) -> bool:
    """Mark an item done if `nova` still holds it (not when the agent already finished
    or failed it, nor when its lease went to someone else)."""
    return conn.execute(
        "UPDATE work_items SET status = 'done', finished_at = ?, updated_at = ?,"
        " lease_until = NULL WHERE id = ? AND status = 'claimed' AND claimed_by = ?",
        (now, now, item_id, nova)).rowcount == 1


def has_claimable(conn: sqlite3.Connection, nova: str, now: float,
                  finishing: int | None = None) -> bool:
    """Whether `nova` could claim an item now; `finishing`: an item `finish_claimed_by`
    is about to finish in this transaction (its lapsed lease does not make it claimable)."""
    return conn.execute(
        "SELECT 1 FROM work_items WHERE status IN ('pending', 'claimed')"
        " AND (status = 'pending' OR (lease_until <= ? AND attempts < max_attempts))"
        " AND (nova IS NULL OR nova = ?)"
        " AND NOT (id IS ? AND status = 'claimed' AND claimed_by IS ?) LIMIT 1",
        (now, nova, finishing, nova)).fetchone() is not None


def most_urgent_claimable(conn: sqlite3.Connection, nova: str, now: float) -> Tier | None:
    """The tier of the most urgent item `nova` could claim now (has_claimable's rule), to
    weigh against the cluster's work; None when there is none."""
    row = conn.execute(
        "SELECT priority FROM work_items WHERE status IN ('pending', 'claimed')"
        " AND (status = 'pending' OR (lease_until <= ? AND attempts < max_attempts))"
        " AND (nova IS NULL OR nova = ?) ORDER BY priority_rank LIMIT 1",
        (now, nova)).fetchone()
    return Tier(row[0]) if row else None


# Back to pending (or dead, when a counted attempt was the last); an attempt that was not
# the item's fault (the supervisor stopping) is given back.
_RELEASE = """
UPDATE work_items
   SET status = CASE WHEN :counted AND attempts >= max_attempts THEN 'dead' ELSE 'pending' END,
       finished_at = CASE WHEN :counted AND attempts >= max_attempts THEN :now ELSE NULL END,
       attempts = CASE WHEN :counted THEN attempts ELSE max(attempts - 1, 0) END,
       error = coalesce(:error, error), owner = NULL, lease_until = NULL, updated_at = :now
 WHERE status IN ('pending', 'claimed') AND status = 'claimed' AND claimed_by = :nova
   AND updated_at >= :since
RETURNING id, status
"""


def release_claims_in(conn: sqlite3.Connection, nova: str, *, since: float, now: float,
                      counted: bool, error: str | None = None) -> list[tuple[int, str]]:
    """Release every item `nova` claimed since `since` and still holds: a session ended
    without finishing them. (id, new status) of each."""
    return conn.execute(_RELEASE, {"nova": nova, "since": since, "now": now,
                                   "counted": counted, "error": error}).fetchall()


def current_item(conn: sqlite3.Connection, nova: str) -> WorkItem | None:
    """The item `nova` holds most recently, if any."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM work_items WHERE status = 'claimed'"
                       " AND claimed_by = ? ORDER BY updated_at DESC LIMIT 1",
                       (nova,)).fetchone()
    return WorkItem.from_row(row) if row else None


def load_item(conn: sqlite3.Connection, item_id: int) -> WorkItem | None:
    return _load(conn, item_id)


def oldest_open(conn: sqlite3.Connection, limit: int) -> list[WorkItem]:
    """The `limit` oldest open items (pending or claimed), oldest first: what has waited
    longest, whatever its tier."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM work_items WHERE {OPEN_SQL}"
                        " ORDER BY created_at, id LIMIT ?", (limit,))
    return [WorkItem.from_row(r) for r in rows]


def add_in(conn: sqlite3.Connection, text: str, *, nova: str | None, priority: Tier,
           max_attempts: int, now: float, source_key: str | None = None) -> WorkItem | None:
    """Add a pending item inside the caller's write transaction; None when `source_key`
    (a tag that makes adding the same item twice add nothing) is taken already."""
    return _insert(conn, check_text(text), nova, priority, max_attempts, now, source_key)


def added_from(conn: sqlite3.Connection, source: str, nova: str, since: float) -> int:
    """How many items whose source key starts with `source` were added for `nova` after
    `since` (a dream's daily cap)."""
    return conn.execute(f"SELECT count(*) {_FROM_SOURCE} AND created_at > ?",
                        (*_source_range(source), nova, since)).fetchone()[0]


def open_source_keys(conn: sqlite3.Connection, source: str, nova: str) -> list[str]:
    """The source keys starting with `source` of the items of `nova` still open."""
    return [key for (key,) in conn.execute(f"SELECT source_key {_FROM_SOURCE} AND {OPEN_SQL}",
                                           (*_source_range(source), nova))]


# a range of the unique source_key index, not a LIKE (which would read every key)
_FROM_SOURCE = "FROM work_items WHERE source_key >= ? AND source_key < ? AND nova = ?"


def _source_range(prefix: str) -> tuple[str, str]:
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def requeue_expired(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute(_REQUEUE_EXPIRED, (now, now, now)).rowcount


def _insert(conn: sqlite3.Connection, text: str, nova: str | None, tier: Tier,
            max_attempts: int, now: float, source_key: str | None) -> WorkItem | None:
    """Insert a pending item; None when `source_key` was imported before."""
    row = conn.execute(
        "INSERT INTO work_items (text, nova, priority, priority_rank, status, attempts,"
        " max_attempts, created_at, updated_at, source_key)"
        " VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)"
        f" ON CONFLICT (source_key) DO NOTHING RETURNING {_COLUMNS}",
        (text, nova, tier.value, tier.rank, max_attempts, now, now, source_key),
    ).fetchone()
    return WorkItem.from_row(row) if row else None


def _has_source_key(conn: sqlite3.Connection, source_key: str) -> bool:
    return conn.execute("SELECT 1 FROM work_items WHERE source_key = ?",
                        (source_key,)).fetchone() is not None


def _load(conn: sqlite3.Connection, item_id: int) -> WorkItem | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM work_items WHERE id = ?",
                       (item_id,)).fetchone()
    return WorkItem.from_row(row) if row else None


def _why_not_finished(conn: sqlite3.Connection, item_id: int, owner: str | None) -> Exception:
    item = _load(conn, item_id)
    if item is None:
        return ItemNotFound(item_id)
    if item.status not in OPEN_STATUSES:
        return ItemNotOpen(item_id, item.status.value)
    return LeaseLost(item_id, item.claimed_by if item.status is ItemStatus.CLAIMED else None)


def _require_nova(conn: sqlite3.Connection, name: str) -> None:
    check_name(name)
    store.nova_named(conn, name)


def _list_filter(nova: str | None, status: ItemStatus | None) -> tuple[str, tuple]:
    clauses, params = [], []
    if nova is not None:
        clauses.append("(nova = ? OR claimed_by = ?)")
        params += [nova, nova]
    if status is not None:
        clauses.append("status = ?")
        params.append(status.value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def parse_status(name: str) -> ItemStatus:
    try:
        return ItemStatus(name)
    except ValueError:
        known = ", ".join(s.value for s in ItemStatus)
        raise InvalidWorkItem(f"unknown status {name!r} (statuses: {known})") from None


def check_text(text: str) -> str:
    """A work item's text, stripped; refused when blank (the cluster's items too)."""
    if not text or not text.strip():
        raise InvalidWorkItem("a work item needs some text")
    return text.strip()


def _now(now: float | None) -> float:
    return time.time() if now is None else now


# --- import ---------------------------------------------------------------------------
