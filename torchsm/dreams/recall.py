"""What a session is given of what its Nova remembers (torchsm.dreams.memory holds the rows).

Any agent of the host can write memories (`torchsm memory add`), for itself, for another
Nova, or shared with every Nova; a session's context must not be theirs to take. So it is
given in two parts, each ranked as memory.RANKING says (strength, then kind, then recency),
one line each saying who wrote it, whole as long as they fit; the first that does not fit
is cut when a useful part of it fits, and a last line says how many more there are:
  1. its own: what the Nova, its dreams and its finished items wrote for it (and rows from
     before writers were recorded). They keep at least OWN_SHARE of the room when they
     need it, whatever the others write;
  2. the others': the shared memories and what other writers wrote for it, round by
     round (every writer's strongest, then every writer's second, ...), at most
     PER_WRITER lines of any one writer, each cut to OTHER_LINE_CHARS, in the room left.
Before them (torchsm.hooks.handlers), the latest dream's insights. Everything is measured as
prompts.json_size (what a hook prints) and reads a bounded number of rows.
"""

from __future__ import annotations

import json
import sqlite3
from typing import NamedTuple

from torchsm.clock import format_time
from torchsm.config import Config
from torchsm.dreams.memory import (COLUMNS, FROM, LIVE, OWN, RANKING, MemoryRow, nova_id_of,
                            ranking)
from torchsm.work import prompts

CUT_WORTH_CHARS = 240  # the room a memory cut to fit needs (its cut note takes ~100)
OWN_SHARE = 0.5  # of the room for memories, kept for the Nova's own when they need it
PER_WRITER = 3  # lines of any one other writer a session is given
OTHER_LINE_CHARS = 600  # a line of another writer's is cut beyond this (json_size)
INSIGHTS_SHOWN = 8  # the most of the latest dream's insights a session is given
_OTHERS = f"(m.nova_id IS NULL OR (m.nova_id = :nova AND NOT {OWN}))"
_NOT_EXCEPT = "m.key NOT IN (SELECT value FROM json_each(:keys))"


class Section(NamedTuple):
    heading: str
    rows: list[MemoryRow]  # the first ones, ranked
    total: int  # live ones in all
    line_cap: int | None = None  # json_size a line's text is cut to


def context_for(conn: sqlite3.Connection, config: Config, nova: str, budget: int,
                except_keys: tuple[str, ...] = ()) -> str:
    """What a session of Nova `nova` is given of its memory (module docstring), at most
    `budget` characters; "" when there is nothing. Those keyed by `except_keys` are left
    out (the insights the session is given already)."""
    if budget <= 0:
        return ""
    args = {"nova": nova_id_of(conn, nova), "name": nova,
            "keys": json.dumps(list(except_keys)),
            "limit": budget // 12 + 1}  # a line costs at least 12 (JSON newline, "- [")
    own, others = _own(conn, nova, args), _others(conn, nova, args)
    alone = _render(own, nova, budget)
    sep = prompts.json_size("\n")
    kept = min(prompts.json_size(alone), int(budget * OWN_SHARE)) if alone else 0
    theirs = _render(others, nova, budget - kept - (sep if kept else 0))
    mine = _render(own, nova, budget - prompts.json_size(theirs) - sep) if theirs else alone
    return "\n".join(text for text in (mine, theirs) if text)


def _own(conn: sqlite3.Connection, nova: str, args: dict) -> Section:
    where = f"{LIVE} AND m.nova_id = :nova AND {OWN} AND {_NOT_EXCEPT}"
    rows = conn.execute(f"SELECT {COLUMNS} {FROM} WHERE {where} ORDER BY {RANKING}"
                        f" LIMIT :limit", args)
    return Section(f"What Nova {nova} remembers from earlier sessions (strongest first):",
                   [MemoryRow(*row) for row in rows], _count(conn, where, args))


def _others(conn: sqlite3.Connection, nova: str, args: dict) -> Section:
    where = f"{LIVE} AND {_OTHERS} AND {_NOT_EXCEPT}"
    ranked = (f"SELECT {COLUMNS}, m.strength AS s, m.kind AS k, m.updated_at AS u,"
              f" row_number() OVER (PARTITION BY coalesce(m.writer, '') ORDER BY {RANKING})"
              f" AS nth {FROM} WHERE {where}")
    # round by round: every writer's strongest, then every writer's second, ...
    rows = conn.execute(f"SELECT * FROM ({ranked}) AS m WHERE nth <= {PER_WRITER}"
                        f" ORDER BY nth, {ranking('m.', strength='s', kind='k', updated='u')}"
                        f" LIMIT :limit", args)
    return Section(f"Shared with every Nova, or written for {nova} by others (each "
                   f"writer's strongest first, at most {PER_WRITER} of each):",
                   [MemoryRow(*row[:12]) for row in rows], _count(conn, where, args),
                   OTHER_LINE_CHARS)


def _count(conn: sqlite3.Connection, where: str, args: dict) -> int:
    return conn.execute(f"SELECT count(*) FROM memories m WHERE {where}", args).fetchone()[0]


def _render(section: Section, nova: str, budget: int) -> str:
    """The section's lines within `budget`: whole while they fit, then the first that
    does not is cut in when CUT_WORTH_CHARS fit, and a last line counts the rest; ""
    when not even one fits."""
    sep = prompts.json_size("\n")
    parts = [prompts.Part(section.heading)]
    used = prompts.json_size(section.heading)
    for shown, row in enumerate(section.rows):
        prefix, text, command = _line(row, section.line_cap)
        rest = section.total - shown - 1  # the memories after this one
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
    left = section.total - (len(parts) - 1)
    if left:
        parts.append(prompts.Part(_more_line(nova, left)))
    # everything fits already; this only guards a budget smaller than the heading
    context = prompts.fit(parts, budget)
    return context if prompts.json_size(context) <= budget else ""


def _line(row: MemoryRow, cap: int | None) -> tuple[str, str, str]:
    """A memory's line: its prefix, its text on one line (cut to `cap`), and the command
    that shows it whole."""
    command = f"torchsm memory show {row.id}"
    text = " ".join(row.text.split())
    if cap is not None:
        text = prompts.cut(text, cap, "memory", command)
    return _line_prefix(row), text, command


def _line_prefix(row: MemoryRow) -> str:
    what = [row.kind]
    if row.kind == "episode":
        what[0] += " " + (format_time(row.updated_at) or "")[:10]
    if row.nova is None:
        what.append("shared")
    what.append(written_by(row.writer))
    if row.strength > 1:
        what.append(f"strength {row.strength}")
    return f"- [{', '.join(what)}] "


def written_by(writer: str | None) -> str:
    """Who wrote a memory, in words: `by torch`, `by dream 7`, `by user root`."""
    if writer is None:
        return "writer unknown"  # written before torchsm recorded writers
    return "by " + writer.replace(":", " ", 1)


def _more_line(nova: str, count: int) -> str:
    return f"({count} more: `torchsm memory list {nova}`)"


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
