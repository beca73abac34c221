"""What a dream reads: a Nova's recent experience, gathered with bounded SQL.

The span is [start, end): since the Nova's last finished dream, at most [dreams] span_max_s
back. Each source is read through its index, newest first, at most [dreams] rows_max rows
(`capped` names the sources that had more), and aggregated in SQL: Python sees groups and
a handful of rows, never the history itself. The present a reflection compares with (open
items, the day's cost, the usage windows) is read the same way. Reading only; the caller's
read transaction makes it one consistent snapshot. No clock is read here: `now` is given.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from typing import NamedTuple

from torchsm.config import Config, cost_limit_for
from torchsm.names import HOOK_EVENTS
from torchsm.outcomes import UNSUCCESSFUL, sql_list
from torchsm.storage import store
from torchsm.work import work_queue
from torchsm.usage import accounts, budget, ledger

LISTED = 5  # items, failures and waiting items kept as rows (the rest are counted)
REPEATED_MESSAGE = 3  # the same last assistant message this often is a pattern
DAY_S = 24 * 3600.0
TEXT_CHARS = 200  # an item's or an error's text as read (evidence, not the whole thing)



class Span(NamedTuple):
    start: float
    end: float


class Item(NamedTuple):
    id: int
    text: str
    priority: str
    status: str
    attempts: int
    max_attempts: int
    created_at: float
    updated_at: float
    finished_at: float | None
    error: str | None


class ErrorGroup(NamedTuple):
    """One error text (numbers aside) and where it appeared."""

    key: str  # a digest of the normalised text: the same across dreams
    text: str  # its most frequent wording
    sessions: tuple[int, ...]
    items: tuple[int, ...]
    first: float
    last: float

    @property
    def count(self) -> int:
        return len(self.sessions) + len(self.items)


class SessionFacts(NamedTuple):
    count: int = 0
    ids: tuple[int, int] | None = None  # the first and last id read
    first_at: float | None = None
    last_at: float | None = None
    cost: float = 0.0
    turns: int = 0
    by_outcome: dict[str, int] = {}
    by_kind: dict[str, tuple[int, float]] = {}  # kind -> (sessions, cost)
    per_item: dict[int, tuple[int, float, tuple[int, ...]]] = {}  # item -> (n, cost, ids)
    starts: tuple[tuple[float, int], ...] = ()  # (started at, id), oldest first
    repeated: tuple[tuple[str, tuple[int, ...]], ...] = ()  # last message -> session ids


class QueueFacts(NamedTuple):
    finished: dict[str, int] = {}  # status -> items finished in the span
    finished_ids: dict[str, tuple[int, ...]] = {}  # status -> the first LISTED ids
    failed: tuple[Item, ...] = ()  # failed or dead in the span, most attempts first
    done_median_s: float | None = None  # creation to done, for the items done in the span
    open_count: int = 0
    open_median_age_s: float | None = None
    oldest: tuple[Item, ...] = ()  # the longest-waiting pending items
    retrying: tuple[Item, ...] = ()  # open items that failed an attempt at least twice


class HookFacts(NamedTuple):
    count: int = 0
    by_event: dict[str, dict[str, int]] = {}  # event -> outcome -> runs
    bangs: tuple[tuple[int, float], ...] = ()  # (hook run id, at)


class RestGroup(NamedTuple):
    """Cooldowns and meditations of one cause."""

    cause: str
    cools: int
    meditations: int
    ids: tuple[int, ...]  # history rows
    first: float
    last: float
    reasons: tuple[str, ...]  # a few of the reasons, as written


class HistoryFacts(NamedTuple):
    count: int = 0
    by_event: dict[str, int] = {}
    rests: tuple[RestGroup, ...] = ()


class SenderFacts(NamedTuple):
    count: int
    low: int  # signals the classifier put at low or background
    critical: int
    ids: tuple[int, ...]
    first: float
    last: float


class BudgetFacts(NamedTuple):
    account: str
    cost_24h: float
    cost_limit: float  # 0: no daily budget
    windows: tuple[accounts.WindowRow, ...]
    sessions_last_hour: int


class Experience(NamedTuple):
    nova: str
    nova_id: int
    personality: str
    span: Span
    now: float
    sessions: SessionFacts
    queue: QueueFacts
    hooks: HookFacts
    history: HistoryFacts
    signals: dict[str, SenderFacts]  # sender ('' when none was named) -> facts
    messages: dict[str, SenderFacts]
    budget: BudgetFacts
    errors: tuple[ErrorGroup, ...]  # each text seen more than once, most frequent first
    others: tuple[str, ...]  # other Novas of the home, by name (a few)
    read: dict[str, int]  # rows read per source
    capped: tuple[str, ...]  # sources that held more than rows_max rows in the span

    @property
    def empty(self) -> bool:
        return not any(self.read.values())


def gather(conn: sqlite3.Connection, config: Config, name: str, span: Span,
           now: float) -> Experience:
    """Everything a dream of Nova `name` looks at, read in the caller's transaction."""
    nova = store.nova_named(conn, name)
    cap = config.dreams.rows_max
    args = {"nova": nova.id, "name": name, "start": span.start, "end": span.end,
            "cap": cap, "now": now}
    sessions, session_errors = _sessions(conn, args)
    queue, item_errors, items_read = _queue(conn, args)
    hooks, hooks_read, hooks_capped = _hooks(conn, args)
    history = _history(conn, args)
    signals, signals_read = _signals(conn, args)
    messages, messages_read = _messages(conn, args)
    read = {"sessions": sessions.count, "items": items_read, "history": history.count,
            "hook_runs": hooks_read, "wake_signals": signals_read, "messages": messages_read}
    capped = tuple(source for source, n in read.items()
                   if n >= cap or (source == "hook_runs" and hooks_capped))
    return Experience(
        name, nova.id, nova.personality, span, now, sessions, queue, hooks, history,
        signals, messages, _budget(conn, config, nova, now),
        recurring_errors(session_errors + item_errors), _others(conn, nova.id), read, capped)


# --- the ledger ----------------------------------------------------------------------------

_SESSIONS = """(SELECT id, started_at, ended_at, kind, item_id, outcome, error, cost_usd,
       num_turns, last_assistant_message FROM sessions
 WHERE nova_id = :nova AND started_at >= :start AND started_at < :end
 ORDER BY started_at DESC, id DESC LIMIT :cap)"""


def _sessions(conn: sqlite3.Connection, args: dict) -> tuple[SessionFacts, list]:
    count, first, last, first_at, last_at, cost, turns = conn.execute(
        "SELECT count(*), min(id), max(id), min(started_at),"
        " max(coalesce(ended_at, started_at)), coalesce(sum(cost_usd), 0),"
        # total(), not sum(): a float, where sum() of integers past 2**63 is an error
        f" total(num_turns) FROM {_SESSIONS}", args).fetchone()
    if not count:
        return SessionFacts(), []
    by_outcome = dict(conn.execute(
        f"SELECT outcome, count(*) FROM {_SESSIONS} GROUP BY outcome ORDER BY outcome", args))
    by_kind = {kind: (n, round(c, 6)) for kind, n, c in conn.execute(
        f"SELECT kind, count(*), coalesce(sum(cost_usd), 0) FROM {_SESSIONS}"
        " GROUP BY kind ORDER BY kind", args)}
    per_item = {item: (n, round(c, 6), _ids(ids)) for item, n, c, ids in conn.execute(
        f"SELECT item_id, count(*), coalesce(sum(cost_usd), 0), group_concat(id)"
        f" FROM {_SESSIONS} WHERE item_id IS NOT NULL GROUP BY item_id ORDER BY item_id",
        args)}
    starts = tuple(conn.execute(f"SELECT started_at, id FROM {_SESSIONS}"
                                " ORDER BY started_at, id", args))
    repeated = tuple((text, _ids(ids)) for text, ids in conn.execute(
        f"SELECT substr(last_assistant_message, 1, {TEXT_CHARS}), group_concat(id)"
        f" FROM {_SESSIONS} WHERE last_assistant_message IS NOT NULL"
        " GROUP BY last_assistant_message HAVING count(*) >= :repeat"
        " ORDER BY count(*) DESC, min(id) LIMIT :listed",
        {**args, "repeat": REPEATED_MESSAGE, "listed": LISTED}))
    errors = [("session", text, _ids(ids), lo, hi) for text, ids, lo, hi in conn.execute(
        f"SELECT substr(error, 1, {TEXT_CHARS}), group_concat(id), min(started_at),"
        f" max(started_at) FROM {_SESSIONS} WHERE error IS NOT NULL AND outcome IN {sql_list(UNSUCCESSFUL)}"
        " GROUP BY 1 ORDER BY 1", args)]
    facts = SessionFacts(count, (first, last), first_at, last_at, round(cost, 6), int(turns),
                         by_outcome, by_kind, per_item, starts, repeated)
    return facts, errors


# --- the work queue --------------------------------------------------------------------------

_ITEM_COLUMNS = (f"id, substr(text, 1, {TEXT_CHARS}) AS text, priority, status, attempts,"
                 " max_attempts, created_at, updated_at, finished_at,"
                 f" substr(error, 1, {TEXT_CHARS}) AS error")
# the items the Nova finished (or that died in its hands) in the span
_FINISHED = f"""(SELECT {_ITEM_COLUMNS} FROM work_items
 WHERE finished_at >= :start AND finished_at < :end AND (nova = :name OR claimed_by = :name)
 ORDER BY finished_at DESC, id DESC LIMIT :cap)"""
# the items it could claim now, in claim order (the partial index ix_work_items_open)
_OPEN = f"""(SELECT {_ITEM_COLUMNS} FROM work_items
 WHERE {work_queue.OPEN_SQL} AND (nova IS NULL OR nova = :name)
 ORDER BY priority_rank, created_at, id LIMIT :cap)"""


def _queue(conn: sqlite3.Connection, args: dict) -> tuple[QueueFacts, list, int]:
    finished, finished_ids = {}, {}
    for status, n, ids in conn.execute(f"SELECT status, count(*), group_concat(id)"
                                       f" FROM {_FINISHED} GROUP BY status ORDER BY status", args):
        finished[status], finished_ids[status] = n, _ids(ids)[:LISTED]
    failed = _items(conn, f"SELECT * FROM {_FINISHED} WHERE status IN ('failed', 'dead')"
                          " ORDER BY attempts DESC, id LIMIT :listed", args)
    done_median = _median(conn, f"SELECT finished_at - created_at AS v FROM {_FINISHED}"
                                " WHERE status = 'done'", args)
    open_count = conn.execute(f"SELECT count(*) FROM {_OPEN}", args).fetchone()[0]
    open_median = _median(conn, f"SELECT :now - created_at AS v FROM {_OPEN}", args)
    oldest = _items(conn, f"SELECT * FROM {_OPEN} WHERE status = 'pending'"
                          " ORDER BY created_at, id LIMIT :listed", args)
    retrying = _items(conn, f"SELECT * FROM {_OPEN} WHERE attempts >= 2 AND error IS NOT NULL"
                            " ORDER BY attempts DESC, id LIMIT :listed", args)
    errors = [("item", text, _ids(ids), lo, hi) for text, ids, lo, hi in conn.execute(
        "SELECT error, group_concat(id), min(at), max(at) FROM"
        f" (SELECT id, error, finished_at AS at FROM {_FINISHED}"
        "   WHERE status IN ('failed', 'dead') AND error IS NOT NULL"
        f"  UNION ALL SELECT id, error, updated_at FROM {_OPEN} WHERE error IS NOT NULL)"
        " GROUP BY 1 ORDER BY 1", args)]
    facts = QueueFacts(finished, finished_ids, failed, done_median, open_count, open_median,
                       oldest, retrying)
    return facts, errors, sum(finished.values()) + open_count


def _items(conn: sqlite3.Connection, sql: str, args: dict) -> tuple[Item, ...]:
    return tuple(Item(*row) for row in conn.execute(sql, {**args, "listed": LISTED}))


def _median(conn: sqlite3.Connection, values_sql: str, args: dict) -> float | None:
    """The median of one SQL column, in SQL (the middle row, or the mean of the two)."""
    row = conn.execute(
        f"WITH v AS ({values_sql}), n AS (SELECT count(*) AS n FROM v)"
        " SELECT avg(v) FROM (SELECT v FROM v ORDER BY v"
        "  LIMIT 2 - (SELECT n FROM n) % 2 OFFSET ((SELECT n FROM n) - 1) / 2)",
        args).fetchone()
    return row[0]


# --- hooks and transitions ---------------------------------------------------------------

_HOOK_RUNS = """(SELECT id, outcome, at FROM hook_runs
 WHERE nova_id = :nova AND event = :event AND at >= :start AND at < :end
 ORDER BY at DESC, id DESC LIMIT :cap)"""


def _hooks(conn: sqlite3.Connection, args: dict) -> tuple[HookFacts, int, bool]:
    """The hook runs per event and outcome (at most rows_max of each event), the bangs,
    and whether any event had more."""
    by_event: dict[str, dict[str, int]] = {}
    bangs: list[tuple[int, float]] = []
    for event in HOOK_EVENTS:  # one index range each: (nova_id, event, at)
        event_args = {**args, "event": event}
        outcomes = dict(conn.execute(f"SELECT outcome, count(*) FROM {_HOOK_RUNS}"
                                     " GROUP BY outcome ORDER BY outcome", event_args))
        if outcomes:
            by_event[event] = outcomes
        if outcomes.get("bang"):
            bangs += conn.execute(f"SELECT id, at FROM {_HOOK_RUNS} WHERE outcome = 'bang'"
                                  " ORDER BY at, id", event_args).fetchall()
    count = sum(sum(o.values()) for o in by_event.values())
    capped = any(sum(o.values()) >= args["cap"] for o in by_event.values())
    return HookFacts(count, by_event, tuple(sorted(bangs, key=lambda b: (b[1], b[0])))), \
        count, capped


# the Nova's transitions, but for the ones into and out of its dreams
_HISTORY = """(SELECT id, event, reason, at, limit_hold FROM history
 WHERE nova_id = :nova AND at >= :start AND at < :end
   AND event != 'dream' AND NOT (event = 'work' AND from_state = 'dreaming')
 ORDER BY at DESC, id DESC LIMIT :cap)"""

# Why a Nova rested, read from the reason written with the cooldown: first match wins.
CAUSES = (
    ("bang", re.compile(r"^bang\b")),
    ("no progress", re.compile(r"^no progress\b")),
    ("session budget", re.compile(r"^session budget spent")),
    ("cost budget", re.compile(r"^cost budget spent")),
    ("usage limit", re.compile(r"^rate limit\b|usage limit|\b429\b|rate_limited", re.I)),
    ("overloaded", re.compile(r"overloaded|\b529\b", re.I)),
    ("account", re.compile(r"billing|authentication|account refused|account_error", re.I)),
    ("failed session", re.compile(r"^session \d+ ")),
)


def rest_cause(reason: str | None, limit_hold: bool) -> str:
    """The cause of one cooldown or meditation, from its reason."""
    if limit_hold:
        return "usage limit"
    if not reason:
        return "manual"
    for cause, pattern in CAUSES:
        if pattern.search(reason):
            return cause
    return "other"


def _history(conn: sqlite3.Connection, args: dict) -> HistoryFacts:
    by_event = dict(conn.execute(f"SELECT event, count(*) FROM {_HISTORY}"
                                 " GROUP BY event ORDER BY event", args))
    groups: dict[str, list] = {}
    for event, reason, hold, n, ids, lo, hi in conn.execute(
            f"SELECT event, reason, limit_hold, count(*), group_concat(id), min(at), max(at)"
            f" FROM {_HISTORY} WHERE event IN ('cool', 'meditate')"
            " GROUP BY event, reason, limit_hold ORDER BY min(id)", args):
        group = groups.setdefault(rest_cause(reason, bool(hold)), [0, 0, [], lo, hi, []])
        group[0 if event == "cool" else 1] += n
        group[2] += _ids(ids)
        group[3], group[4] = min(group[3], lo), max(group[4], hi)
        if reason and reason not in group[5] and len(group[5]) < 3:
            group[5].append(reason[:TEXT_CHARS])
    rests = tuple(RestGroup(cause, g[0], g[1], tuple(sorted(g[2])), g[3], g[4], tuple(g[5]))
                  for cause, g in sorted(groups.items()))
    return HistoryFacts(sum(by_event.values()), by_event, rests)


# --- wake signals and messages -------------------------------------------------------------

_SIGNALS = """(SELECT id, coalesce(sender, '') AS sender, tier, received_at AS at
 FROM wake_signals WHERE nova_id = :nova AND received_at >= :start AND received_at < :end
 ORDER BY received_at DESC, id DESC LIMIT :cap)"""
# what the Nova was sent: to it, or broadcast by another (each through ix_messages_recipient)
_MESSAGES = """(SELECT * FROM (SELECT id, sender, 'medium' AS tier, at FROM messages
  WHERE recipient = :name ORDER BY id DESC LIMIT :cap)
 UNION ALL SELECT * FROM (SELECT id, sender, 'medium', at FROM messages
  WHERE recipient = 'all' AND sender != :name ORDER BY id DESC LIMIT :cap))"""


def _by_sender(conn: sqlite3.Connection, source: str,
               args: dict) -> tuple[dict[str, SenderFacts], int]:
    found = {}
    for sender, n, low, critical, ids, lo, hi in conn.execute(
            "SELECT sender, count(*), sum(tier IN ('low', 'background')),"
            " sum(tier = 'critical'), group_concat(id), min(at), max(at)"
            f" FROM {source} WHERE at >= :start AND at < :end"
            " GROUP BY sender ORDER BY sender", args):
        found[sender] = SenderFacts(n, low, critical, _ids(ids), lo, hi)
    return found, sum(f.count for f in found.values())


def _signals(conn: sqlite3.Connection, args: dict) -> tuple[dict[str, SenderFacts], int]:
    return _by_sender(conn, _SIGNALS, args)


def _messages(conn: sqlite3.Connection, args: dict) -> tuple[dict[str, SenderFacts], int]:
    return _by_sender(conn, _MESSAGES, args)


# --- budgets and windows (the present) -----------------------------------------------------

def _budget(conn: sqlite3.Connection, config: Config, nova: store.NovaRow,
            now: float) -> BudgetFacts:
    """What the supervisor's budgets count, read by the ledger's own queries."""
    costs = ledger.costs_since(conn, nova.account, now - budget.COST_WINDOW_S)
    starts = ledger.starts_since(conn, nova.id, now - budget.WINDOW_S)
    return BudgetFacts(nova.account, round(budget.cost_in_window(costs, now), 6),
                       cost_limit_for(config, nova.account),
                       tuple(accounts.load_windows(conn, nova.account)),
                       budget.sessions_in_window(starts, now))


def _others(conn: sqlite3.Connection, nova_id: int) -> tuple[str, ...]:
    return tuple(r[0] for r in conn.execute(
        "SELECT name FROM novas WHERE id != ? ORDER BY name LIMIT ?", (nova_id, LISTED)))


# --- error texts -----------------------------------------------------------------------------

_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def error_key(text: str) -> str:
    """The same error whatever its numbers ("crashed 0.1s after the start" and "... 0.2s
    ..."), as a short digest: stable across dreams."""
    normal = _NUMBERS.sub("#", " ".join(text.split()))
    return hashlib.blake2b(normal.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


def recurring_errors(groups: list[tuple[str, str, tuple[int, ...], float, float]]
                     ) -> tuple[ErrorGroup, ...]:
    """Merge (source, text, ids, first, last) groups by `error_key`; those seen more than
    once, the most frequent first."""
    merged: dict[str, dict] = {}
    for source, text, ids, first, last in groups:
        entry = merged.setdefault(error_key(text), {"session": [], "item": [], "texts": {},
                                                    "first": first, "last": last})
        entry[source] += ids
        entry["texts"][text] = entry["texts"].get(text, 0) + len(ids)
        entry["first"], entry["last"] = min(entry["first"], first), max(entry["last"], last)
    found = []
    for key, e in merged.items():
        text = min(e["texts"], key=lambda t: (-e["texts"][t], t))
        group = ErrorGroup(key, text, tuple(sorted(set(e["session"]))),
                           tuple(sorted(set(e["item"]))), e["first"], e["last"])
        if group.count >= 2:
            found.append(group)
    return tuple(sorted(found, key=lambda g: (-g.count, g.key)))


def _ids(concatenated: str | None) -> tuple[int, ...]:
    """group_concat's ids, sorted (its order is not defined)."""
    return tuple(sorted(int(i) for i in concatenated.split(","))) if concatenated else ()
