"""The mirror's outbox: each stream entry is written in the same SQLite transaction as the
change it reports, and delivered from there after the commit.

Publishing after the commit loses the entry for good when the process dies in between
(kill -9, OOM, a closed terminal). So `put` adds the entry to the table `outbox` inside the
caller's transaction, and `deliver` sends what waits there: the writer itself, right after
its commit, and any later delivery (every command that writes an entry delivers what is
waiting first; `mirror flush` too). Delivery holds the mirror's lock and goes in the
outbox's id order, which is the commit order; each entry goes to its stream, or to the
file queue while the server is away, and leaves the outbox once it has. A delivery cut
short sends some entries again: the stream's dedup by `event_id` lands each exactly once.
With the mirror off nothing is written here.
"""

from __future__ import annotations

import json
import sqlite3

from torchsm.config import Config, Home
from torchsm.mirror import streams
from torchsm.storage import store

BATCH = 500


def enabled(config: Config) -> bool:
    return config.redis_url != "off"


def put(conn: sqlite3.Connection, config: Config, stream: str, entry: streams.Entry) -> None:
    """Add `entry` to the outbox in the caller's transaction (nothing when the mirror is
    off)."""
    if not enabled(config):
        return
    conn.execute("INSERT INTO outbox (stream, event_id, type, nova, at, data)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
                 (stream, entry.event_id, entry.type, entry.nova, entry.at,
                  entry.data_json()))


def deliver(home: Home, config: Config, now: float | None = None) -> dict[str, str]:
    """Send every entry waiting in the outbox, in commit order. Returns where each went
    (event id -> mirror.IN_STREAM or IN_QUEUE)."""
    if not enabled(config):
        return {}
    delivered: dict[str, str] = {}
    with streams.open_mirror(home, config, now=now) as out, out.ordered(), \
            store.open_store(home, config.db.lock_timeout_s) as db:
        while True:
            rows = db.read(_waiting)
            if not rows:
                return delivered
            for _, stream, entry in rows:
                delivered[entry.event_id] = out.publish(stream, entry, now)
            last = rows[-1][0]
            db.write(lambda conn: conn.execute("DELETE FROM outbox WHERE id <= ?", (last,)))


def where(config: Config, delivered: dict[str, str], event_id: str) -> str:
    """Where one entry went: off, the stream or queue this delivery put it in, or
    `delivered` when another process's delivery took it first."""
    return delivered.get(event_id, "delivered") if enabled(config) else streams.DISCARDED


def waiting(home: Home, config: Config) -> int:
    """How many entries wait in the outbox."""
    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(lambda conn: conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def _waiting(conn: sqlite3.Connection) -> list[tuple[int, str, streams.Entry]]:
    rows = conn.execute("SELECT id, stream, event_id, type, nova, at, data FROM outbox"
                        " ORDER BY id LIMIT ?", (BATCH,)).fetchall()
    return [(row[0], row[1], streams.Entry(row[2], row[3], row[4], row[5], json.loads(row[6])))
            for row in rows]
