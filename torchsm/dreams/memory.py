"""What a Nova remembers from one session to the next: notes, episodes, insights.

A memory is one row of `memories`: a note (`torchsm memory add`, most often the agent's
own, from inside a session), an episode (a finished work item leaves one, keyed `item:ID`:
the item and the session's last message, shortened) or an insight (a dream's: only dreams
write them). Each records its writer: the Nova whose session wrote it, `dream:ID`, or
`user:NAME` (the Unix user at the command line). The same memory again (the same key: by
default a digest of the text, case and whitespace aside) from a writer it has not had
yet strengthens it (strength + 1: strength counts distinct writers, `memory_writers`); from
one it has had, it changes nothing, so no writer outranks others by repeating itself.
Any process of the host's user can claim to be any Nova (TORCHSM_NOVA) or run as that
user: writers are told apart, not authenticated, and are at most the home's Novas, its
dreams and the host's users. A shared memory (no Nova) reaches every Nova of
the home through SQLite, and its outbox entry (type `memory` on
`nova.coordination.messages`, written in the same transaction) takes it to other hosts,
or to the file queue while the server is away. Nothing is deleted: forgetting marks the
row, with why.

What a session is given of them: torchsm.dreams.recall.

Bounded: a session's context reads at most the live rows of one Nova, which the cap keeps
at `[memory] max_per_nova` per writer (its own counted as one writer; and as many shared
ones per writer: a writer flooding the home forgets only its own), with a LIMIT;
consolidation is a few SQL statements, never a Python loop over rows. Stdlib and light torchsm modules only: the
Stop hook records episodes.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any, NamedTuple

from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.errors import InvalidMemory, InvalidName, MemoryNotFound, NovaNotFound
from torchsm.names import check_name
from torchsm.storage import store

KINDS = ("note", "episode", "insight")
# what writes the kinds no one may add by hand (`memory add` writes notes)
ORIGINS = {"insight": "dreams", "episode": "finished work items"}
MEMORY_TYPE = "memory"  # the mirror entry of a shared memory added or strengthened
FORGOTTEN_TYPE = "memory.forgotten"  # ... and of one forgotten
EPISODE_TASK_CHARS = 300  # an episode keeps this much of its item's text
EPISODE_MESSAGE_CHARS = 600  # ... and of the session's last message
ELLIPSIS = "\u2026"


def ranking(alias: str = "m.", *, strength: str = "strength", kind: str = "kind",
            updated: str = "updated_at") -> str:
    """The ranking rule (module docstring), as SQL over `memories` named `alias` (or a
    query of it whose columns are named `strength`, `kind`, `updated`)."""
    return (f"{alias}{strength} DESC, CASE {alias}{kind} WHEN 'insight' THEN 0 WHEN 'note'"
            f" THEN 1 ELSE 2 END, {alias}{updated} DESC, {alias}id DESC")


RANKING = ranking()
LIVE = "m.forgotten_at IS NULL"
# A Nova's own memories: written by it, by its dreams, or before writers were recorded.
# (A Nova's name never holds a colon: `dream:ID` and `user:NAME` are no Nova's.)
OWN = "(m.writer IS NULL OR m.writer = :name OR m.writer LIKE 'dream:%')"
COLUMNS = ("m.id, n.name, m.kind, m.text, m.key, m.source, m.strength, m.created_at,"
            " m.updated_at, m.forgotten_at, m.forgotten_why, m.writer")
FROM = "FROM memories m LEFT JOIN novas n ON n.id = m.nova_id"


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
    writer: str | None  # a Nova's name, dream:ID, user:NAME; None: from before 0011

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "nova": self.nova, "kind": self.kind, "text": self.text,
                "key": self.key, "source": self.source, "writer": self.writer,
                "strength": self.strength,
                "created_at": format_time(self.created_at),
                "updated_at": format_time(self.updated_at),
                "forgotten_at": format_time(self.forgotten_at),
                "forgotten_why": self.forgotten_why}


class Added(NamedTuple):
    memory: MemoryRow
    created: bool  # False: a live memory with the same key was there already
    cut: bool  # the text was cut to [memory] max_text_chars
    event_id: str | None = None  # the mirror entry's, for a shared memory
    strengthened: bool = False  # it was there, and this writer is a new one of it


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
        now: float, writer: str, source: str | None = None, key: str | None = None,
        author: str | None = None) -> Added:
    """Remember `text` for Nova `nova` (None: shared by every Nova), written by `writer`,
    in the caller's transaction. A live memory with the same key (default:
    `text_key(text)`) is strengthened instead when `writer` is new to it (strength + 1,
    updated now), else left as it is. A text longer than [memory] max_text_chars is cut.
    A shared memory created or strengthened puts its mirror entry in the outbox; `author`
    names the Nova that shares it (the entry's `nova`; "all" when None). Beyond [memory]
    max_per_nova live memories of the writer, its weakest and oldest are forgotten."""
    if kind not in KINDS:
        raise InvalidMemory(f"unknown memory kind {kind!r} (kinds: {', '.join(KINDS)})")
    check_text(text)
    nova_id = None if nova is None else nova_id_of(conn, nova)
    if author is not None:
        nova_id_of(conn, author)
    key = key or text_key(text)
    same = conn.execute("SELECT id FROM memories WHERE nova_id IS ? AND key = ?"
                        " AND forgotten_at IS NULL ORDER BY id LIMIT 1",
                        (nova_id, key)).fetchone()
    if same is not None:
        return _again(conn, config, same[0], writer, now, author)
    stored, cut = _cut(text, config.memory.max_text_chars)
    event_id = _new_event_id(now) if nova is None else None
    memory_id = conn.execute(
        "INSERT INTO memories (nova_id, kind, text, key, source, writer, strength, created_at,"
        " updated_at, event_id) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
        (nova_id, kind, stored, key, source, writer, now, now, event_id)).lastrowid
    _count_writer(conn, memory_id, writer, now)
    _cap(conn, config, nova_id, nova, writer, now)
    row = get(conn, memory_id)
    if nova is None:
        _publish(conn, config, MEMORY_TYPE, row, author, now, event_id, created=True)
    return Added(row, True, cut, event_id)


def _again(conn: sqlite3.Connection, config: Config, memory_id: int, writer: str,
           now: float, author: str | None) -> Added:
    """The same memory again: stronger when `writer` is new to it, else unchanged."""
    stronger = _strengthen(conn, memory_id, writer, now)
    row = get(conn, memory_id)
    event_id = _new_event_id(now) if row.nova is None and stronger else None
    if event_id is not None:
        _publish(conn, config, MEMORY_TYPE, row, author, now, event_id, created=False,
                 strengthened_by=writer)  # (`writer` is the row's first)
    return Added(row, False, False, event_id, stronger)


def _count_writer(conn: sqlite3.Connection, memory_id: int, writer: str, now: float) -> bool:
    """Record `writer` as one of the memory's; whether it is a new one."""
    return conn.execute("INSERT OR IGNORE INTO memory_writers (memory_id, writer, at)"
                        " VALUES (?, ?, ?)", (memory_id, writer, now)).rowcount == 1


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
                    (nova_id_of(conn, nova), key)).fetchone():
        return
    task = shorten(_clean(item.text), EPISODE_TASK_CHARS) or "(no text)"
    said = shorten(_clean(last_message or ""), EPISODE_MESSAGE_CHARS)
    text = f"Finished work item {item.id}: {task}" + (f" | Last message: {said}" if said else "")
    add(conn, config, nova=nova, kind="episode", text=text, now=now, writer=nova,
        source=key, key=key)


def consolidate(conn: sqlite3.Connection, config: Config, nova: str,
                now: float) -> Consolidated:
    """Tidy Nova `nova`'s own memories (shared ones are left alone): live duplicates (the
    same key) merge into the oldest, which takes their summed strength; episodes that
    nothing strengthened fade after [memory] episode_ttl_s; beyond [memory] max_per_nova
    the weakest and oldest are forgotten. Each forgotten row says why."""
    nova_id = nova_id_of(conn, nova)
    strengthened = conn.execute(_STRENGTHEN_KEEPERS, {"nova": nova_id}).rowcount
    conn.execute(_MOVE_WRITERS, {"nova": nova_id})
    merged = conn.execute(_FORGET_DUPLICATES, {"nova": nova_id, "now": now}).rowcount
    ttl = config.memory.episode_ttl_s
    aged = conn.execute(_AGE_OUT, {
        "nova": nova_id, "now": now, "before": now - ttl,
        "why": f"an episode nothing strengthened in {ttl / 86400:g} days "
               "([memory] episode_ttl_s)"}).rowcount
    return Consolidated(merged, strengthened, aged, _cap(conn, config, nova_id, nova, nova, now))


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
# the duplicates' writers become the keeper's, so that none of them counts twice later
_MOVE_WRITERS = f"""
INSERT OR IGNORE INTO memory_writers (memory_id, writer, at)
SELECT d.keep, w.writer, w.at FROM ({_DUPLICATES}) AS d
  JOIN memories m ON m.nova_id = :nova AND m.forgotten_at IS NULL AND m.key = d.key
                 AND m.id != d.keep
  JOIN memory_writers w ON w.memory_id = m.id
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
# the weakest first, then the least recently updated, then the oldest row, of one writer
_CAP = """
UPDATE memories SET forgotten_at = :now, forgotten_why = :why
 WHERE id IN (SELECT id FROM memories m WHERE nova_id IS :nova AND forgotten_at IS NULL
                 AND {whose} ORDER BY strength, updated_at, id LIMIT :over)
"""


def _cap(conn: sqlite3.Connection, config: Config, nova_id: int | None, name: str | None,
         writer: str, now: float) -> int:
    """Forget what is beyond [memory] max_per_nova live memories that `writer` wrote for
    Nova `name` (`nova_id`; None: the shared ones); a Nova's own (OWN) count as one
    writer's. How many were forgotten: only the writer's own, whoever else writes."""
    cap = config.memory.max_per_nova
    whose = OWN if nova_id is not None and _is_own(writer, name) else "m.writer IS :writer"
    args = {"nova": nova_id, "name": name, "writer": writer}
    over = conn.execute(f"SELECT count(*) FROM memories m WHERE nova_id IS :nova"
                        f" AND forgotten_at IS NULL AND {whose}", args).fetchone()[0] - cap
    if over <= 0:
        return 0
    why = (f"more than {cap} live memories of one writer ([memory] max_per_nova): the "
           "weakest and oldest go")
    return conn.execute(_CAP.format(whose=whose),
                        {**args, "now": now, "over": over, "why": why}).rowcount


def _is_own(writer: str | None, nova: str | None) -> bool:
    """Whether `writer` writes Nova `nova`'s own memories (the Python side of OWN)."""
    return writer is None or writer == nova or writer.startswith("dream:")


def _publish(conn: sqlite3.Connection, config: Config, type: str, row: MemoryRow,
             author: str | None, now: float, event_id: str | None, **extra: Any) -> None:
    from torchsm.mirror import outbox, streams

    data = {"memory": row.id, "kind": row.kind, "text": row.text, "key": row.key,
            "source": row.source, "writer": row.writer, "strength": row.strength, **extra,
            **streams.origin(config)}
    if row.forgotten_at is not None:
        data["why"] = row.forgotten_why
    outbox.put(conn, config, streams.MESSAGES_STREAM,
               streams.Entry.new(type, author or "all", data, now, event_id))


def _new_event_id(now: float) -> str:
    from torchsm.mirror.streams import new_event_id

    return new_event_id(now)


def _clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


# --- from other hosts (torchsm.cluster.intake) --------------------------------------------

def take_in_shared(conn: sqlite3.Connection, config: Config, *, event_id: str, kind: str,
                   text: str, key: str, source: str | None, writer: str, at: float) -> bool:
    """A shared memory another host added or strengthened (its entry `event_id`, written
    by `writer`, named with its host), kept here with no mirror entry of its own (every
    host hears the first one). Idempotent, as an entry may come twice: the entry that
    created a row is its event_id, and a writer counts once. Whether it changed anything.
    (Strength here counts the writers this host has heard of.)"""
    if conn.execute("SELECT 1 FROM memories WHERE event_id = ?", (event_id,)).fetchone():
        return False
    same = conn.execute("SELECT id FROM memories WHERE nova_id IS NULL AND key = ?"
                        " AND forgotten_at IS NULL ORDER BY id LIMIT 1", (key,)).fetchone()
    if same is not None:
        return _strengthen(conn, same[0], writer, at)
    stored, _ = _cut(text, config.memory.max_text_chars)
    memory_id = conn.execute(
        "INSERT INTO memories (nova_id, kind, text, key, source, writer, strength, created_at,"
        " updated_at, event_id) VALUES (NULL, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
        (kind, stored, key, source, writer, at, at, event_id)).lastrowid
    _count_writer(conn, memory_id, writer, at)
    _cap(conn, config, None, None, writer, at)
    return True


def _strengthen(conn: sqlite3.Connection, memory_id: int, writer: str, at: float) -> bool:
    if not _count_writer(conn, memory_id, writer, at):
        return False
    conn.execute("UPDATE memories SET strength = strength + 1,"
                 " updated_at = max(updated_at, ?) WHERE id = ?", (at, memory_id))
    return True


def forget_shared(conn: sqlite3.Connection, key: str, why: str, now: float) -> int:
    """Forget the live shared memories keyed `key` (another host forgot its own), with no
    mirror entry: how many (0 when forgotten already)."""
    return conn.execute("UPDATE memories SET forgotten_at = ?, forgotten_why = ?"
                        " WHERE nova_id IS NULL AND key = ? AND forgotten_at IS NULL",
                        (now, why, key)).rowcount


# --- reading -----------------------------------------------------------------------------

def get(conn: sqlite3.Connection, memory_id: int) -> MemoryRow:
    row = conn.execute(f"SELECT {COLUMNS} {FROM} WHERE m.id = ?", (memory_id,)).fetchone()
    if row is None:
        raise MemoryNotFound(memory_id)
    return MemoryRow(*row)


def live(conn: sqlite3.Connection, nova: str, *, limit: int | None = None,
         include_shared: bool = True, except_keys: tuple[str, ...] = ()) -> list[MemoryRow]:
    """Nova `nova`'s live memories (and the shared ones), in ranking order, but for those
    keyed by one of `except_keys`."""
    nova_id = nova_id_of(conn, nova)
    whose = "(m.nova_id = :nova OR m.nova_id IS NULL)" if include_shared else "m.nova_id = :nova"
    rows = conn.execute(f"SELECT {COLUMNS} {FROM} WHERE {LIVE} AND {whose}"
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
        args["nova"] = nova_id_of(conn, nova)
    if not include_forgotten:
        where.append(LIVE)
    order = "" if nova is not None else "n.name IS NOT NULL, n.name, "
    rows = conn.execute(f"SELECT {COLUMNS} {FROM} WHERE {' AND '.join(where)}"
                        f" ORDER BY m.forgotten_at IS NOT NULL, {order}m.forgotten_at DESC,"
                        f" {RANKING} LIMIT :limit", args)
    return [MemoryRow(*row) for row in rows]


def nova_id_of(conn: sqlite3.Connection, name: str) -> int:
    """The id of Nova `name`, or NovaNotFound."""
    nova = store.nova_named(conn, check_name(name))
    return nova.id


# --- from the command line: one transaction, then the mirror -------------------------

def remember(home: Home, config: Config, name: str, text: str, *, writer: str,
             kind: str = "note", shared: bool = False, source: str | None = None,
             now: float | None = None) -> tuple[Added, str | None]:
    """`memory add`: remember `text`, written by `writer` (command_line_writer), for Nova
    `name` (with `shared`, for every Nova, as shared by `name`). Only notes: insights come
    from dreams, episodes from finished items. Returns what was added and where its mirror
    entry went (None for a Nova's own memory, which stays in this home)."""
    if kind in ORIGINS:
        raise InvalidMemory(f"{kind} memories come only from {ORIGINS[kind]}: add a note "
                            "instead")
    now = time.time() if now is None else now
    who = {"nova": None, "author": name} if shared else {"nova": name}

    def write(conn: sqlite3.Connection) -> Added:
        _check_writer(conn, writer)
        return add(conn, config, kind=kind, text=text, now=now, writer=writer,
                   source=source, **who)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        added = db.write(write)
    return added, _delivered(home, config, added.event_id)


def command_line_writer(session_nova: str | None) -> str:
    """Who runs `memory add`: the Nova whose session it is (its supervisor sets
    TORCHSM_NOVA for the agent), else the Unix user at the command line (`user:NAME`)."""
    if session_nova:
        try:  # a Nova's name never holds a colon: `dream:ID` is never the session's
            return check_name(session_nova)
        except InvalidName:
            raise _not_a_nova(session_nova) from None
    import os
    import pwd

    try:
        return f"user:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:  # a uid with no name (a container's)
        return f"user:{os.getuid()}"


def _check_writer(conn: sqlite3.Connection, writer: str) -> None:
    """A writer that claims to be a Nova must be one of this home's: else any name would
    be one more writer, and strength (distinct writers) unbounded again."""
    if writer.startswith("user:"):
        return
    try:
        nova_id_of(conn, writer)
    except (NovaNotFound, InvalidName):
        raise _not_a_nova(writer) from None


def _not_a_nova(name: str) -> InvalidMemory:
    return InvalidMemory(f"TORCHSM_NOVA={name!r} names no Nova of this home: unset it to "
                         "write as yourself")


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
    from torchsm.mirror import outbox

    return outbox.where(config, outbox.deliver(home, config), event_id)
