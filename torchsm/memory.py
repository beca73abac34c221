"""What a Nova remembers from one session to the next: notes, episodes, insights.

A memory is one row of `memories`: a note (`torchsm memory add`, most often the agent's
own, from inside a session), an episode (a finished work item leaves one, keyed `item:ID`:
the item and the session's last message, shortened) or an insight (a dream's). The same memory again
(the same key: by default a digest of the text, case and whitespace aside) strengthens
the one there instead of adding a row. A shared memory (no Nova) reaches every Nova of
the home through SQLite, and its outbox entry (type `memory` on
`nova.coordination.messages`, written in the same transaction) takes it to other hosts,
or to the file queue while the server is away. Nothing is deleted: forgetting marks the
row, with why.

What a session is given (`context_for`): the Nova's live memories and the shared ones,
ranked by
  1. strength, highest first (remembered again, or merged by a dream, counts more);
  2. kind: insight, then note, then episode (what was distilled before what happened);
  3. recency: the latest updated first, then the newest row;
one line each, whole as long as they fit the budget; the first that does not fit is cut
when a useful part of it fits, and a last line says how many more there are.

Bounded: a session's context reads at most the live rows of one Nova, which the cap keeps
at `[memory] max_per_nova` (and as many shared ones), with a LIMIT from the budget;
consolidation is a few SQL statements, never a Python loop over rows. Stdlib and light torchsm modules only: the
Stop hook records episodes.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any, NamedTuple

from torchsm import prompts, store
from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.errors import InvalidMemory, MemoryNotFound, NovaNotFound
from torchsm.names import check_name

KINDS = ("note", "episode", "insight")
MEMORY_TYPE = "memory"  # the mirror entry of a shared memory added or strengthened
FORGOTTEN_TYPE = "memory.forgotten"  # ... and of one forgotten
EPISODE_TASK_CHARS = 300  # an episode keeps this much of its item's text
EPISODE_MESSAGE_CHARS = 600  # ... and of the session's last message
CUT_WORTH_CHARS = 240  # the room a memory cut to fit needs (its cut note takes ~100)
ELLIPSIS = "\u2026"

# the ranking rule (module docstring), as SQL over `memories m`
RANKING = ("m.strength DESC, CASE m.kind WHEN 'insight' THEN 0 WHEN 'note' THEN 1 ELSE 2 END,"
           " m.updated_at DESC, m.id DESC")
_LIVE = "m.forgotten_at IS NULL"
_COLUMNS = ("m.id, n.name, m.kind, m.text, m.key, m.source, m.strength, m.created_at,"
            " m.updated_at, m.forgotten_at, m.forgotten_why")
_FROM = "FROM memories m LEFT JOIN novas n ON n.id = m.nova_id"


class MemoryRow(NamedTuple):  # (NamedTuples: dataclasses cost the hook path ~12 ms)
    id: int
    nova: str | None  # None: shared by every Nova of the home
    kind: str
    text: str
    key: str
    source: str | None  # agent | cli | item:ID | dream:ID | ...
    strength: int
    created_at: float
    updated_at: float
    forgotten_at: float | None
    forgotten_why: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "nova": self.nova, "kind": self.kind, "text": self.text,
                "key": self.key, "source": self.source, "strength": self.strength,
                "created_at": format_time(self.created_at),
                "updated_at": format_time(self.updated_at),
                "forgotten_at": format_time(self.forgotten_at),
                "forgotten_why": self.forgotten_why}


class Added(NamedTuple):
    memory: MemoryRow
    created: bool  # False: a live memory with the same key was strengthened instead
    cut: bool  # the text was cut to [memory] max_text_chars
    event_id: str | None = None  # the mirror entry's, for a shared memory


class Consolidated(NamedTuple):
    merged: int  # duplicates forgotten into the memory they repeat
    strengthened: int  # memories that took duplicates' strength
    aged_out: int  # episodes past [memory] episode_ttl_s that nothing strengthened
    capped: int  # forgotten beyond [memory] max_per_nova


# --- text --------------------------------------------------------------------------------

# a lone surrogate: a byte that was not UTF-8 in argv (surrogateescape), or a `\ud800` escape
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, what: str = "memory text") -> str:
    """`text`, or InvalidMemory when it is empty or not valid UTF-8."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidMemory(f"{what} is empty")
    bad = _SURROGATE.search(text)
    if bad is not None:
        offset = len(text[:bad.start()].encode("utf-8"))
        code = ord(bad.group())
        found = (f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF
                 else f"a lone surrogate U+{code:04X}")
        raise InvalidMemory(f"{what} is not valid UTF-8 ({found} at offset {offset})")
    return text


def text_key(text: str) -> str:
    """The default key: a digest of the text with case and whitespace normalised."""
    import hashlib

    normal = " ".join(text.casefold().split())
    return hashlib.blake2b(normal.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def shorten(text: str, limit: int) -> str:
    """`text` on one line (whitespace runs as one space), at most `limit` characters: a
    longer one ends with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:max(limit - 1, 0)].rstrip() + ELLIPSIS


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:max(limit - 1, 0)] + ELLIPSIS, True


# --- writing -----------------------------------------------------------------------------

def add(conn: sqlite3.Connection, config: Config, *, nova: str | None, kind: str, text: str,
        now: float, source: str | None = None, key: str | None = None,
        author: str | None = None) -> Added:
    """Remember `text` for Nova `nova` (None: shared by every Nova), in the caller's
    transaction. A live memory with the same key (default: `text_key(text)`) is
    strengthened instead (strength + 1, updated now). A text longer than [memory]
    max_text_chars is cut. A shared memory puts its mirror entry in the outbox; `author`
    names the Nova that shares it (the entry's `nova`; "all" when None). Beyond [memory]
    max_per_nova live memories, the weakest and oldest are forgotten."""
    if kind not in KINDS:
        raise InvalidMemory(f"unknown memory kind {kind!r} (kinds: {', '.join(KINDS)})")
    check_text(text)
    nova_id = None if nova is None else _nova_id(conn, nova)
    if author is not None:
        _nova_id(conn, author)
    key = key or text_key(text)
    stored, cut = _cut(text, config.memory.max_text_chars)
    same = conn.execute("SELECT id FROM memories WHERE nova_id IS ? AND key = ?"
                        " AND forgotten_at IS NULL ORDER BY id LIMIT 1",
                        (nova_id, key)).fetchone()
    event_id = _new_event_id(now) if nova is None else None
    if same is not None:
        conn.execute("UPDATE memories SET strength = strength + 1, updated_at = ?"
                     " WHERE id = ?", (now, same[0]))
        memory_id = same[0]
    else:
        memory_id = conn.execute(
            "INSERT INTO memories (nova_id, kind, text, key, source, strength, created_at,"
            " updated_at, event_id) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (nova_id, kind, stored, key, source, now, now, event_id)).lastrowid
        _cap(conn, config, nova_id, now)
    row = get(conn, memory_id)
    if nova is None:
        _publish(conn, config, MEMORY_TYPE, row, author, now, event_id,
                 created=same is None)
    return Added(row, same is None, cut, event_id)


def forget(conn: sqlite3.Connection, memory_id: int, now: float, why: str,
           config: Config | None = None, event_id: str | None = None) -> MemoryRow:
    """Mark a live memory forgotten (never deleted). With `config`, forgetting a shared
    one is mirrored too (as `event_id`, when given)."""
    row = get(conn, memory_id)
    if row.forgotten_at is not None:
        raise InvalidMemory(f"memory {memory_id} is already forgotten "
                            f"({format_time(row.forgotten_at)}: {row.forgotten_why})")
    conn.execute("UPDATE memories SET forgotten_at = ?, forgotten_why = ? WHERE id = ?",
                 (now, why, memory_id))
    row = get(conn, memory_id)
    if row.nova is None and config is not None:
        _publish(conn, config, FORGOTTEN_TYPE, row, None, now,
                 event_id or _new_event_id(now))
    return row


def remember_episode(conn: sqlite3.Connection, config: Config, nova: str, item,
                     last_message: str | None, now: float) -> None:
    """Leave the episode of a finished work item: its text and the session's last message,
    each shortened. One per item: its key is `item:ID`, and an item that has one (even
    forgotten) gets no other. Runs in the transaction that finishes the item, so odd text
    (a lone surrogate from a JSON escape) is replaced, never refused."""
    key = f"item:{item.id}"
    if conn.execute("SELECT 1 FROM memories WHERE nova_id = ? AND key = ? LIMIT 1",
                    (_nova_id(conn, nova), key)).fetchone():
        return
    task = shorten(_clean(item.text), EPISODE_TASK_CHARS) or "(no text)"
    said = shorten(_clean(last_message or ""), EPISODE_MESSAGE_CHARS)
    text = f"Finished work item {item.id}: {task}" + (f" | Last message: {said}" if said else "")
    add(conn, config, nova=nova, kind="episode", text=text, now=now, source=key, key=key)


def consolidate(conn: sqlite3.Connection, config: Config, nova: str,
                now: float) -> Consolidated:
    """Tidy Nova `nova`'s own memories (shared ones are left alone): live duplicates (the
    same key) merge into the oldest, which takes their summed strength; episodes that
    nothing strengthened fade after [memory] episode_ttl_s; beyond [memory] max_per_nova
    the weakest and oldest are forgotten. Each forgotten row says why."""
    nova_id = _nova_id(conn, nova)
    strengthened = conn.execute(_STRENGTHEN_KEEPERS, {"nova": nova_id}).rowcount
    merged = conn.execute(_FORGET_DUPLICATES, {"nova": nova_id, "now": now}).rowcount
    ttl = config.memory.episode_ttl_s
    aged = conn.execute(_AGE_OUT, {
        "nova": nova_id, "now": now, "before": now - ttl,
        "why": f"an episode nothing strengthened in {ttl / 86400:g} days "
               "([memory] episode_ttl_s)"}).rowcount
    return Consolidated(merged, strengthened, aged, _cap(conn, config, nova_id, now))


# live duplicates: each key of the Nova's that more than one live memory holds
_DUPLICATES = """
SELECT key, min(id) AS keep, sum(strength) AS total, max(updated_at) AS latest
  FROM memories WHERE nova_id = :nova AND forgotten_at IS NULL
 GROUP BY key HAVING count(*) > 1
"""
_STRENGTHEN_KEEPERS = f"""
UPDATE memories AS m SET strength = d.total, updated_at = max(m.updated_at, d.latest)
  FROM ({_DUPLICATES}) AS d WHERE m.id = d.keep
"""
_FORGET_DUPLICATES = f"""
UPDATE memories AS m SET forgotten_at = :now, forgotten_why = 'merged into memory ' || d.keep
  FROM ({_DUPLICATES}) AS d
 WHERE m.nova_id = :nova AND m.forgotten_at IS NULL AND m.key = d.key AND m.id != d.keep
"""
_AGE_OUT = """
UPDATE memories SET forgotten_at = :now, forgotten_why = :why
 WHERE nova_id = :nova AND forgotten_at IS NULL AND kind = 'episode' AND strength <= 1
   AND updated_at < :before
"""
# the weakest first, then the least recently updated, then the oldest row
_CAP = """
UPDATE memories SET forgotten_at = :now, forgotten_why = :why
 WHERE id IN (SELECT id FROM memories WHERE nova_id IS :nova AND forgotten_at IS NULL
               ORDER BY strength, updated_at, id LIMIT :over)
"""


def _cap(conn: sqlite3.Connection, config: Config, nova_id: int | None, now: float) -> int:
    """Forget what is beyond [memory] max_per_nova live memories of `nova_id` (None: the
    shared ones); how many."""
    cap = config.memory.max_per_nova
    over = conn.execute("SELECT count(*) FROM memories WHERE nova_id IS ?"
                        " AND forgotten_at IS NULL", (nova_id,)).fetchone()[0] - cap
    if over <= 0:
        return 0
    why = f"more than {cap} live memories ([memory] max_per_nova): the weakest and oldest go"
    return conn.execute(_CAP, {"nova": nova_id, "now": now, "over": over, "why": why}).rowcount


def _publish(conn: sqlite3.Connection, config: Config, type: str, row: MemoryRow,
             author: str | None, now: float, event_id: str | None, **extra: Any) -> None:
    from torchsm import mirror, outbox

    data = {"memory": row.id, "kind": row.kind, "text": row.text, "key": row.key,
            "source": row.source, "strength": row.strength, **extra}
    if row.forgotten_at is not None:
        data["why"] = row.forgotten_why
    outbox.put(conn, config, mirror.MESSAGES_STREAM,
               mirror.Entry.new(type, author or "all", data, now, event_id))


def _new_event_id(now: float) -> str:
    from torchsm.mirror import new_event_id

    return new_event_id(now)


def _clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


# --- reading -----------------------------------------------------------------------------

def get(conn: sqlite3.Connection, memory_id: int) -> MemoryRow:
    row = conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE m.id = ?", (memory_id,)).fetchone()
    if row is None:
        raise MemoryNotFound(f"no memory {memory_id}")
    return MemoryRow(*row)


def live(conn: sqlite3.Connection, nova: str, *, limit: int | None = None,
         include_shared: bool = True, except_keys: tuple[str, ...] = ()) -> list[MemoryRow]:
    """Nova `nova`'s live memories (and the shared ones), in ranking order, but for those
    keyed by one of `except_keys`."""
    nova_id = _nova_id(conn, nova)
    whose = "(m.nova_id = :nova OR m.nova_id IS NULL)" if include_shared else "m.nova_id = :nova"
    rows = conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE {_LIVE} AND {whose}"
                        f" AND m.key NOT IN (SELECT value FROM json_each(:keys))"
                        f" ORDER BY {RANKING} LIMIT :limit",
                        {"nova": nova_id, "limit": -1 if limit is None else limit,
                         "keys": json.dumps(list(except_keys))})
    return [MemoryRow(*row) for row in rows]


def listing(conn: sqlite3.Connection, nova: str | None = None, *,
            include_forgotten: bool = False, limit: int | None = None) -> list[MemoryRow]:
    """What `memory list` shows: Nova `nova`'s memories and the shared ones (None: every
    memory of the home, by Nova), live ones in ranking order, then forgotten ones (with
    `include_forgotten`), the latest forgotten first."""
    where, args = ["1"], {"limit": -1 if limit is None else limit}
    if nova is not None:
        where.append("(m.nova_id = :nova OR m.nova_id IS NULL)")
        args["nova"] = _nova_id(conn, nova)
    if not include_forgotten:
        where.append(_LIVE)
    order = "" if nova is not None else "n.name IS NOT NULL, n.name, "
    rows = conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(where)}"
                        f" ORDER BY m.forgotten_at IS NOT NULL, {order}m.forgotten_at DESC,"
                        f" {RANKING} LIMIT :limit", args)
    return [MemoryRow(*row) for row in rows]


def count_live(conn: sqlite3.Connection, nova: str, include_shared: bool = True,
               except_keys: tuple[str, ...] = ()) -> int:
    nova_id = _nova_id(conn, nova)
    whose = "(nova_id = ? OR nova_id IS NULL)" if include_shared else "nova_id = ?"
    return conn.execute(f"SELECT count(*) FROM memories WHERE forgotten_at IS NULL"
                        f" AND {whose} AND key NOT IN (SELECT value FROM json_each(?))",
                        (nova_id, json.dumps(list(except_keys)))).fetchone()[0]


def context_for(conn: sqlite3.Connection, config: Config, nova: str, budget: int,
                except_keys: tuple[str, ...] = ()) -> str:
    """What a session of Nova `nova` is given: its live memories and the shared ones in
    ranking order (module docstring), a line each, at most `budget` characters as
    prompts.json_size measures them (what a hook prints); "" when there are none. Those
    keyed by `except_keys` are left out (the insights the session is given already)."""
    if budget <= 0:
        return ""
    # a line costs at least 12: the newline (2, JSON-escaped), "- [note] " and a character
    rows = live(conn, nova, limit=budget // 12 + 1, except_keys=except_keys)
    if not rows:
        return ""
    return render_context(nova, rows, count_live(conn, nova, except_keys=except_keys), budget)


def render_context(nova: str, rows: list[MemoryRow], total: int, budget: int) -> str:
    """`rows` (ranked; `total` live in all) as context lines within `budget`: whole while
    they fit, then the first that does not is cut in when CUT_WORTH_CHARS fit, and a last
    line counts the rest."""
    sep = prompts.json_size("\n")
    parts = [prompts.Part(f"What Nova {nova} remembers from earlier sessions "
                          "(strongest first):")]
    used = prompts.json_size(parts[0].prefix)
    for shown, row in enumerate(rows):
        prefix, text = _line_prefix(row), " ".join(row.text.split())
        command = f"torchsm memory show {row.id}"
        rest = total - shown - 1  # the memories after this one
        reserve = sep + prompts.json_size(_more_line(nova, rest)) if rest else 0
        room = budget - used - sep - prompts.json_size(prefix) - reserve
        if prompts.json_size(text) <= room:
            parts.append(prompts.Part(prefix, text, "memory", command))
            used += sep + prompts.json_size(prefix + text)
            continue
        if room >= CUT_WORTH_CHARS:
            parts.append(prompts.Part(prefix, prompts.cut(text, room, "memory", command),
                                      "memory", command))
        break
    if len(parts) == 1:  # not even one memory fits: nothing rather than a heading alone
        return ""
    left = total - (len(parts) - 1)
    if left:
        parts.append(prompts.Part(_more_line(nova, left)))
    # everything fits already; this only guards a budget smaller than the heading
    context = prompts.fit(parts, budget)
    return context if prompts.json_size(context) <= budget else ""


INSIGHTS_SHOWN = 8  # the most of the latest dream's insights a session is given


def insights_context(conn: sqlite3.Connection, nova: str,
                     budget: int) -> tuple[str, tuple[str, ...]]:
    """The latest finished dream's insights, most important first, at most `budget`
    characters (prompts.json_size), and their keys; "" when the Nova never finished a
    dream."""
    rows = conn.execute(
        "SELECT d.id, d.ended_at, i.text, i.key FROM dreams d JOIN novas n ON n.id = d.nova_id"
        " JOIN insights i ON i.dream_id = d.id WHERE n.name = ? AND d.id = ("
        "  SELECT d2.id FROM dreams d2 WHERE d2.nova_id = n.id AND d2.status = 'done'"
        "  ORDER BY d2.started_at DESC, d2.id DESC LIMIT 1)"
        " ORDER BY i.rank LIMIT ?", (nova, INSIGHTS_SHOWN)).fetchall()
    if not rows or budget <= 0:
        return "", ()
    dream_id, ended = rows[0][0], format_time(rows[0][1])
    parts = [prompts.Part(f"What Nova {nova}'s latest dream (dream {dream_id}, {ended}) "
                          "found in its history:")]
    parts += [prompts.Part("- ", " ".join(text.split()), "insight",
                           f"torchsm dream show {dream_id}") for _, _, text, _ in rows]
    context = prompts.fit(parts, budget)
    if prompts.json_size(context) > budget:
        return "", ()
    return context, tuple(key for *_, key in rows)


def _line_prefix(row: MemoryRow) -> str:
    what = [row.kind]
    if row.kind == "episode":
        what[0] += " " + (format_time(row.updated_at) or "")[:10]
    if row.nova is None:
        what.append("shared")
    if row.strength > 1:
        what.append(f"strength {row.strength}")
    return f"- [{', '.join(what)}] "


def _more_line(nova: str, count: int) -> str:
    return f"({count} more: `torchsm memory list {nova}`)"


def _nova_id(conn: sqlite3.Connection, name: str) -> int:
    nova = store.load_nova(conn, check_name(name))
    if nova is None:
        raise NovaNotFound(f"no Nova named '{name}'")
    return nova.id


# --- from the command line: one transaction, then the mirror -------------------------

def remember(home: Home, config: Config, name: str, text: str, *, kind: str = "note",
             shared: bool = False, source: str | None = None,
             now: float | None = None) -> tuple[Added, str | None]:
    """`memory add`: remember `text` for Nova `name` (with `shared`, for every Nova, as
    shared by `name`). Returns what was added and where its mirror entry went (None for a
    Nova's own memory, which stays in this home)."""
    now = time.time() if now is None else now
    who = {"nova": None, "author": name} if shared else {"nova": name}
    with store.open_store(home, config.db.lock_timeout_s) as db:
        added = db.write(lambda conn: add(conn, config, kind=kind, text=text, now=now,
                                          source=source, **who))
    return added, _delivered(home, config, added.event_id)


def forget_one(home: Home, config: Config, memory_id: int, why: str,
               now: float | None = None) -> tuple[MemoryRow, str | None]:
    """`memory forget`: mark one memory forgotten; a shared one's mirror entry goes out."""
    now = time.time() if now is None else now
    check_text(why, "the reason")
    event_id = _new_event_id(now)
    with store.open_store(home, config.db.lock_timeout_s) as db:
        row = db.write(lambda conn: forget(conn, memory_id, now, why, config, event_id))
    return row, _delivered(home, config, event_id if row.nova is None else None)


def _delivered(home: Home, config: Config, event_id: str | None) -> str | None:
    if event_id is None:
        return None
    from torchsm import outbox

    return outbox.where(config, outbox.deliver(home, config), event_id)
