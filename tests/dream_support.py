"""Crafting a Nova's history for the dreams' tests: rows written straight into SQLite, the
way the ledger, the queue, the hooks and the state machine write them, at chosen times."""

from __future__ import annotations

import sqlite3
from itertools import count

from torchsm.config import Home
from torchsm.tiers import Tier

T0 = 1_800_000_000.0  # "now" of the dreams under test
DAY = 86400.0
_event_ids = count(1)


class History:
    """Rows for Nova `nova_id` (named `nova`) in one home."""

    def __init__(self, home: Home, nova: str = "torch"):
        self.home, self.nova = home, nova
        self.conn = sqlite3.connect(home.db_path, isolation_level=None)
        self.nova_id = self.conn.execute("SELECT id FROM novas WHERE name = ?",
                                         (nova,)).fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def _insert(self, sql: str, *args) -> int:
        return self.conn.execute(sql, args).lastrowid

    def session(self, at: float, *, outcome: str = "ok", error: str | None = None,
                item: int | None = None, cost: float | None = None, kind: str = "item",
                message: str | None = None, turns: int | None = None,
                duration: float = 60.0) -> int:
        return self._insert(
            "INSERT INTO sessions (nova_id, started_at, ended_at, kind, prompt, item_id,"
            " outcome, error, cost_usd, num_turns, last_assistant_message)"
            " VALUES (?, ?, ?, ?, 'p', ?, ?, ?, ?, ?, ?)",
            self.nova_id, at, at + duration, kind, item, outcome, error, cost, turns, message)

    def item(self, created: float, *, text: str = "a task", status: str = "pending",
             attempts: int = 0, max_attempts: int = 3, finished: float | None = None,
             error: str | None = None, priority: str = "medium",
             nova: str | None = "torch", updated: float | None = None) -> int:
        claimed_by = self.nova if attempts else None
        return self._insert(
            "INSERT INTO work_items (text, nova, priority, priority_rank, status, attempts,"
            " max_attempts, claimed_by, created_at, updated_at, finished_at, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            text, nova, priority, Tier(priority).rank, status, attempts, max_attempts,
            claimed_by, created, updated or finished or created, finished, error)

    def transition(self, at: float, event: str, *, reason: str | None = None,
                   source: str = "working", until: float | None = None,
                   hold: bool = False) -> int:
        target = {"cool": "cooling", "meditate": "meditating", "work": "working",
                  "dream": "dreaming", "compact": "compacting"}[event]
        return self._insert(
            "INSERT INTO history (nova_id, from_state, to_state, event, reason, at, until,"
            " forced, event_id, limit_hold) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            self.nova_id, source, target, event, reason, at, until,
            f"ev{next(_event_ids)}", hold)

    def hook_run(self, at: float, *, event: str = "stop", outcome: str = "recorded") -> int:
        return self._insert(
            "INSERT INTO hook_runs (nova_id, event, session_id, at, duration_ms, outcome)"
            " VALUES (?, ?, 's1', ?, 1.0, ?)", self.nova_id, event, at, outcome)

    def signal(self, at: float, *, sender: str | None, tier: str = "medium",
               message: str = "ping") -> int:
        return self._insert(
            "INSERT INTO wake_signals (nova_id, message, sender, tier, status, received_at,"
            " due_at, rules) VALUES (?, ?, ?, ?, 'delivered', ?, ?, '[]')",
            self.nova_id, message, sender, tier, at, at)

    def message(self, at: float, *, sender: str, to: str | None = None,
                text: str = "hello") -> int:
        return self._insert(
            "INSERT INTO messages (event_id, sender, recipient, text, at) VALUES (?, ?, ?, ?, ?)",
            f"m{next(_event_ids)}", sender, to or self.nova, text, at)

    def window(self, window: str, *, utilization: float, resets_at: float, at: float,
               status: str = "allowed", account: str = "default") -> int:
        return self._insert(
            "INSERT INTO account_windows (account, window, status, utilization, resets_at,"
            " updated_at, source, nova) VALUES (?, ?, ?, ?, ?, ?, 'event', ?)",
            account, window, status, utilization, resets_at, at, self.nova)

    def rows(self, sql: str, *args) -> list[tuple]:
        return self.conn.execute(sql, args).fetchall()


def fill(home, rows: int) -> None:
    """`rows` rows of history over 90 days, for two Novas: transitions, sessions, hook
    runs, work items, wake signals and messages, in the proportions of a busy home (the
    week a dream reads holds more than [dreams] rows_max of most sources)."""
    from torchsm import novas
    from torchsm.config import Config

    novas.add(home, Config(redis_url="off"), "echo", now=T0 - 400 * DAY)
    conn = sqlite3.connect(home.db_path)
    start, year = T0 - 90 * DAY, 90 * DAY

    def insert(share: float, sql: str) -> None:
        n = int(rows * share)
        conn.execute(f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"
                     f" WHERE i < {n}) {sql}", {"start": start, "step": year / n})

    insert(0.35, "INSERT INTO history (nova_id, from_state, to_state, event, reason, at, forced,"
                 " limit_hold) SELECT 1 + i % 2, 'working', 'cooling', CASE i % 3 WHEN 0"
                 " THEN 'cool' ELSE 'work' END, 'session ' || i || ' failed: exit ' || i % 5,"
                 " :start + i * :step, 0, 0 FROM s")
    insert(0.2, "INSERT INTO sessions (nova_id, started_at, ended_at, kind, prompt, item_id,"
                " outcome, error, cost_usd, num_turns, last_assistant_message)"
                " SELECT 1 + i % 2, :start + i * :step, :start + i * :step + 30, 'item', 'p',"
                " i % 50000, CASE i % 4 WHEN 0 THEN 'failed' ELSE 'ok' END,"
                " CASE i % 4 WHEN 0 THEN 'error ' || i % 13 END, 0.01, 3,"
                " 'message ' || i % 11 FROM s")
    insert(0.3, "INSERT INTO hook_runs (nova_id, event, session_id, at, duration_ms, outcome)"
                " SELECT 1 + i % 2, CASE i % 3 WHEN 0 THEN 'stop' ELSE 'pre-tool-use' END,"
                " 's', :start + i * :step, 1, CASE i % 997 WHEN 0 THEN 'bang'"
                " ELSE 'recorded' END FROM s")
    insert(0.1, "INSERT INTO work_items (text, nova, priority, priority_rank, status, attempts,"
                " max_attempts, claimed_by, created_at, updated_at, finished_at, error)"
                " SELECT 'task ' || i, CASE i % 2 WHEN 0 THEN 'torch' ELSE 'echo' END,"
                " 'medium', 2, CASE WHEN i % 500 = 0 THEN 'pending' WHEN i % 7 = 0"
                " THEN 'dead' ELSE 'done' END, 1, 3, 'torch', :start + i * :step,"
                " :start + i * :step, CASE WHEN i % 500 = 0 THEN NULL"
                " ELSE :start + i * :step + 600 END,"
                " CASE WHEN i % 7 = 0 THEN 'error ' || i % 13 END FROM s")
    insert(0.03, "INSERT INTO wake_signals (nova_id, message, sender, tier, status,"
                 " received_at, due_at, rules) SELECT 1 + i % 2, 'ping', 'sender' || i % 9,"
                 " 'low', 'delivered', :start + i * :step, :start + i * :step, '[]' FROM s")
    insert(0.02, "INSERT INTO messages (event_id, sender, recipient, text, at)"
                 " SELECT 'm' || i, 'echo', CASE i % 3 WHEN 0 THEN 'all' ELSE 'torch' END,"
                 " 'hi', :start + i * :step FROM s")
    conn.commit()
    conn.close()


def of_kind(view, kind: str) -> list:
    return [i for i in view.insights if i.kind == kind]


def one(view, kind: str):
    found = of_kind(view, kind)
    assert len(found) == 1, (kind, [(i.kind, i.key, i.text) for i in view.insights])
    return found[0]


def comparable(view) -> list[tuple]:
    """A dream's insights without the ids of the rows that hold them."""
    return [(i.rank, i.phase, i.kind, i.key, i.text, i.evidence, i.action, i.work_item)
            for i in view.insights]


def add_older_history(home: Home, rows: int) -> None:
    """`rows` transitions, sessions and hook runs (and a ninth as many messages) from a
    year before the filled 90 days."""
    conn = sqlite3.connect(home.db_path)
    start, step = T0 - 450 * DAY, 300 * DAY / max(rows, 1)
    for sql in ("INSERT INTO history (nova_id, from_state, to_state, event, reason, at, forced,"
                " limit_hold) SELECT 1 + i % 2, 'working', 'cooling', 'cool', 'old ' || i,"
                " :start + i * :step, 0, 0 FROM s",
                "INSERT INTO sessions (nova_id, started_at, ended_at, kind, prompt, outcome,"
                " error) SELECT 1 + i % 2, :start + i * :step, :start + i * :step + 30, 'item',"
                " 'p', 'failed', 'old error ' || i % 7 FROM s",
                "INSERT INTO hook_runs (nova_id, event, session_id, at, outcome) SELECT"
                " 1 + i % 2, 'stop', 's', :start + i * :step, 'bang' FROM s"):
        conn.execute(f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"
                     f" WHERE i < {rows // 3}) {sql}", {"start": start, "step": step * 3})
    conn.execute("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s"
                 " WHERE i < ?) INSERT INTO messages (event_id, sender, recipient, text,"
                 " at) SELECT 'old' || i, 'echo', 'torch', 'old', ? + i FROM s",
                 (rows // 9, start))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def sqlite_steps(monkeypatch) -> list[int]:
    """Counts the SQLite virtual machine's steps (in thousands) of every connection
    torchsm opens from now on: the work its queries do, machine noise aside."""
    steps, connect = [0], sqlite3.connect

    def counted(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1) or 0, 1000)
        return conn

    monkeypatch.setattr(sqlite3, "connect", counted)
    return steps


def work_beside_older_history(tmp_path, monkeypatch, config, run, older: int = 900_000):
    """SQLite's steps (sqlite_steps) of `run(home)` in two homes with the same 90 days of
    history (100,000 rows), the second with `older` more rows from the year before:
    {0: steps, older: steps}. Work bounded by its window does the same in both."""
    from torchsm import novas
    from torchsm.storage import database

    work = {}
    for rows in (0, older):
        home = Home(tmp_path / f"older-{rows}")
        database.initialise(home)
        novas.add(home, config, "torch", now=T0 - 400 * DAY)
        fill(home, 100_000)
        add_older_history(home, rows)
        steps = sqlite_steps(monkeypatch)
        run(home)
        monkeypatch.undo()
        work[rows] = steps[0]
    return work
