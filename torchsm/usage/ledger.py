"""The session ledger: one row per agent session the supervisor starts (table `sessions`).

A row is written when a session starts (outcome `running`) and completed when it ends, so
the budget counts a session that is still running, and a supervisor that died leaves a
row behind that the next one closes. Functions run inside the caller's transaction.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from torchsm.clock import format_time

RUNNING = "running"
# What one session may report, at most; beyond it a number is a misreading (a long Opus
# session costs tens of dollars), and sums over years of sessions stay within SQLite's
# integers.
MAX_COST_USD = 10_000.0
MAX_TURNS = 1_000_000
MAX_TOKENS = 10**10
ABANDONED_ERROR = "the supervisor ended before the session did"


@dataclass(frozen=True)
class SessionEnd:
    """What the ledger keeps about a finished session."""

    ended_at: float
    exit_status: int | None
    outcome: str
    error: str | None = None
    agent_session_id: str | None = None
    cost_usd: float | None = None
    num_turns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_tokens: int | None = None
    cache_read_tokens: int | None = None
    model: str | None = None
    api_error_status: int | None = None
    limit_events: list[dict[str, Any]] | None = None
    last_assistant_message: str | None = None


def start(conn: sqlite3.Connection, *, nova_id: int, kind: str, prompt: str,
          item_id: int | None, signal_id: int | None, at: float) -> int:
    """Record a session as running; its id."""
    return conn.execute(
        "INSERT INTO sessions (nova_id, started_at, kind, prompt, item_id, signal_id, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (nova_id, at, kind, prompt, item_id, signal_id, RUNNING)).fetchone()[0]


def finish(conn: sqlite3.Connection, session_id: int, end: SessionEnd,
           only_running: bool = False) -> None:
    """Complete a session's row with how it ended (with `only_running`, only while it is
    still `running`)."""
    limit_events = json.dumps(end.limit_events) if end.limit_events else None
    conn.execute(
        "UPDATE sessions SET ended_at = ?, exit_status = ?, outcome = ?, error = ?,"
        " agent_session_id = ?, cost_usd = ?, num_turns = ?, input_tokens = ?,"
        " output_tokens = ?, cache_creation_tokens = ?, cache_read_tokens = ?, model = ?,"
        " api_error_status = ?, limit_events = ?,"
        " last_assistant_message = ? WHERE id = ?" + (f" AND outcome = '{RUNNING}'"
                                                      if only_running else ""),
        (end.ended_at, end.exit_status, end.outcome, end.error, end.agent_session_id,
         end.cost_usd, end.num_turns, end.input_tokens, end.output_tokens,
         end.cache_creation_tokens, end.cache_read_tokens, end.model,
         end.api_error_status, limit_events, end.last_assistant_message, session_id))


def starts_since(conn: sqlite3.Connection, nova_id: int, since: float) -> list[float]:
    """Start times of the Nova's sessions after `since`, oldest first."""
    rows = conn.execute("SELECT started_at FROM sessions WHERE nova_id = ? AND started_at > ?"
                        " ORDER BY started_at", (nova_id, since))
    return [r[0] for r in rows]


def costs_since(conn: sqlite3.Connection, account: str, since: float) -> list[tuple[float, float]]:
    """(ended at, cost in USD) of the sessions of the account's Novas that ended after
    `since` and reported a cost: the daily cost budget is the account's. A cost outside
    what `reported` accepts (stored by an older torchsm: negative, infinite) is left
    out: one such row would switch the budget off, or hold the account for good."""
    return conn.execute("SELECT s.ended_at, s.cost_usd FROM sessions s JOIN novas n"
                        " ON n.id = s.nova_id WHERE n.account = ? AND s.ended_at > ?"
                        " AND s.cost_usd BETWEEN 0 AND ? ORDER BY s.ended_at",
                        (account, since, MAX_COST_USD)).fetchall()


def recent_endings(conn: sqlite3.Connection, nova_id: int, limit: int) -> list[tuple]:
    """The Nova's latest `limit` finished sessions, newest first: (outcome, error,
    api_error_status, last_assistant_message, its item's status), breaker.Ending's fields."""
    rows = conn.execute(
        "SELECT s.outcome, s.error, s.api_error_status, s.last_assistant_message, w.status"
        " FROM sessions s LEFT JOIN work_items w ON w.id = s.item_id"
        " WHERE s.nova_id = ? AND s.outcome NOT IN (?, 'stopped')"
        " ORDER BY s.started_at DESC, s.id DESC LIMIT ?", (nova_id, RUNNING, limit)).fetchall()
    return rows


def running(conn: sqlite3.Connection, nova_id: int) -> list[tuple[int, int | None, int | None]]:
    """(id, agent pid, agent start ticks) of the Nova's sessions still `running`."""
    # the literal matches the partial index ix_sessions_running (a parameter would not)
    return conn.execute(f"SELECT id, agent_pid, agent_start_ticks FROM sessions"
                        f" WHERE nova_id = ? AND outcome = '{RUNNING}' ORDER BY id",
                        (nova_id,)).fetchall()


def running_on_account(conn: sqlite3.Connection,
                       account: str) -> list[tuple[int, int | None, int | None]]:
    """(id, agent pid, agent start ticks) of the sessions still `running` of every Nova
    on the account: what its cap of sessions at once counts."""
    return conn.execute(f"SELECT s.id, s.agent_pid, s.agent_start_ticks FROM sessions s"
                        f" JOIN novas n ON n.id = s.nova_id WHERE n.account = ?"
                        f" AND s.outcome = '{RUNNING}' ORDER BY s.id", (account,)).fetchall()


def latest_start_of_others(conn: sqlite3.Connection, account: str, nova_id: int,
                           since: float) -> float | None:
    """When the latest session after `since` of another Nova on the account started (None:
    none did): the account's starts are spaced; the Nova's own, by its rhythm."""
    return conn.execute("SELECT max(s.started_at) FROM sessions s JOIN novas n"
                        " ON n.id = s.nova_id WHERE n.account = ? AND n.id != ?"
                        " AND s.started_at > ?", (account, nova_id, since)).fetchone()[0]


def latest_starts_of_others(conn: sqlite3.Connection, account: str, nova_id: int,
                            since: float) -> list[float]:
    """The latest session start after `since` of each other Nova on the account: the
    stagger's turns go to the Nova whose own latest start is oldest."""
    return [at for (at,) in conn.execute(
        "SELECT max(s.started_at) FROM sessions s JOIN novas n ON n.id = s.nova_id"
        " WHERE n.account = ? AND n.id != ? AND s.started_at > ? GROUP BY s.nova_id",
        (account, nova_id, since))]


def novas_running(conn: sqlite3.Connection) -> list[str]:
    """The names of the Novas with a session still `running`."""
    return [name for (name,) in conn.execute(
        f"SELECT DISTINCT n.name FROM sessions s JOIN novas n ON n.id = s.nova_id"
        f" WHERE s.outcome = '{RUNNING}' ORDER BY n.name")]


def ended_since(conn: sqlite3.Connection, nova_id: int, since: float, enough: int) -> int:
    """How many of the Nova's sessions started since `since` have ended, counting up to
    `enough` at most (a dream asks only whether there were enough)."""
    return conn.execute("SELECT count(*) FROM (SELECT 1 FROM sessions WHERE nova_id = ?"
                        " AND started_at >= ? AND ended_at IS NOT NULL LIMIT ?)",
                        (nova_id, since, enough)).fetchone()[0]


def answer_of(conn: sqlite3.Connection, session_id: int, nova_id: int) -> tuple | None:
    """(answer,) of the Nova's session `session_id` (None: not answered yet); None when
    the Nova has no such session."""
    return conn.execute("SELECT answer FROM sessions WHERE id = ? AND nova_id = ?",
                        (session_id, nova_id)).fetchone()


def record_answer(conn: sqlite3.Connection, session_id: int, answer: str, at: float) -> None:
    """Store how the session was answered (torchsm.endings.answers decides which)."""
    conn.execute("UPDATE sessions SET answer = ?, answered_at = ? WHERE id = ?",
                 (answer, at, session_id))


def count(conn: sqlite3.Connection, nova_id: int) -> int:
    """How many sessions the Nova has had, ever (the rhythm's reflections count them)."""
    return conn.execute("SELECT count(*) FROM sessions WHERE nova_id = ?",
                        (nova_id,)).fetchone()[0]


def last_end(conn: sqlite3.Connection, nova_id: int) -> float | None:
    """When the Nova's latest session ended (its start, while one is still running)."""
    row = conn.execute("SELECT coalesce(ended_at, started_at) FROM sessions WHERE nova_id = ?"
                       " ORDER BY started_at DESC, id DESC LIMIT 1", (nova_id,)).fetchone()
    return row[0] if row else None


def record_agent(conn: sqlite3.Connection, session_id: int, pid: int,
                 start_ticks: int | None) -> None:
    """The session's agent process (it leads its own group), for a later supervisor."""
    conn.execute("UPDATE sessions SET agent_pid = ?, agent_start_ticks = ? WHERE id = ?",
                 (pid, start_ticks, session_id))


def abandoned(conn: sqlite3.Connection, nova_id: int) -> list[tuple]:
    """(id, started at, agent pid, agent start ticks, item id) of the rows still
    `running`: a supervisor that holds the Nova's lock finds only rows a dead one left."""
    return conn.execute("SELECT id, started_at, agent_pid, agent_start_ticks, item_id"
                        " FROM sessions WHERE nova_id = ? AND outcome = ? ORDER BY id",
                        (nova_id, RUNNING)).fetchall()


FINISHED_ALONE = "the agent finished; its supervisor ended before it settled the session"


def close_finished(conn: sqlite3.Connection, session_id: int, at: float,
                   result: dict[str, Any] | None = None,
                   last_assistant_message: str | None = None,
                   started_model: str | None = None) -> None:
    """Close as `ok` a row a dead supervisor left whose agent exited 0 (its keeper said
    so), with what its `result` line reported (and the model it started with) and its
    last message when the keeper kept them. Any other end may be the agent stopped with
    its supervisor: `close_abandoned`."""
    finish(conn, session_id, SessionEnd(ended_at=at, exit_status=0, outcome="ok",
                                        error=FINISHED_ALONE,
                                        **reported(result or {}, started_model),
                                        last_assistant_message=last_assistant_message),
           only_running=True)


def note_last_message(conn: sqlite3.Connection, session_id: int, text: str | None) -> None:
    """The last assistant message of a session still `running` whose supervisor died,
    read from what its keeper kept (None: nothing to note)."""
    if text is not None:
        conn.execute(f"UPDATE sessions SET last_assistant_message = ? WHERE id = ?"
                     f" AND outcome = '{RUNNING}'", (text, session_id))


# SessionEnd field <- (where in the result line, a whole number?, least, most)
_REPORTED = {
    "cost_usd": (("total_cost_usd",), False, 0, MAX_COST_USD),
    "num_turns": (("num_turns",), True, 0, MAX_TURNS),
    "input_tokens": (("usage", "input_tokens"), True, 0, MAX_TOKENS),
    "output_tokens": (("usage", "output_tokens"), True, 0, MAX_TOKENS),
    "cache_creation_tokens": (("usage", "cache_creation_input_tokens"), True, 0, MAX_TOKENS),
    "cache_read_tokens": (("usage", "cache_read_input_tokens"), True, 0, MAX_TOKENS),
    "api_error_status": (("api_error_status",), True, 100, 599),  # an HTTP status
}


def reported(result: dict[str, Any], started_model: Any = None) -> dict[str, Any]:
    """The SessionEnd fields Claude Code's `result` line reports (absent, mistyped or out
    of range: None); the model: the result's main one, else `started_model` (the
    stream's system init names it)."""
    return checked_report(result, started_model)[0]


def checked_report(result: dict[str, Any],
                   started_model: Any = None) -> tuple[dict[str, Any], list[str]]:
    """`reported`, and a warning for each number (or model name) it left out. A cost that
    is negative would switch the daily budget off, one of 1e308 hold the account for a
    day; turns of 2**62 would overflow every sum of them."""
    session_id = result.get("session_id")
    fields = {"agent_session_id": session_id if isinstance(session_id, str)
              and len(session_id) <= 64 else None}
    fields["model"], warnings = main_model(result.get("modelUsage"))
    if fields["model"] is None and started_model is not None:
        fields["model"] = model_name(started_model)
        if fields["model"] is None:
            warnings.append(f"model {str(started_model)[:80]!r} is not a model name; ignored")
    for name, (path, whole, low, high) in _REPORTED.items():
        value = _at(result, path)
        fields[name] = bounded(value, whole, low, high)
        if value is not None and fields[name] is None:
            kind = "a whole number" if whole else "a number"
            warnings.append(f"{'.'.join(path)} {value!r} is not {kind} from {low:g} to "
                            f"{high:g}; ignored")
    return fields, warnings


# Claude Code's model ids: claude-opus-4-1-20250805, claude-sonnet-4-5[1m], a Bedrock or
# Vertex id (us.anthropic.claude-..., claude-opus-4@20250514)
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/\[\]-]{0,63}")


def model_name(value: Any) -> str | None:
    """`value` when it reads as a model id (at most 64 characters of a name), else None:
    the name is printed in tables and stored, and one that is anything else is a
    misreading."""
    return value if isinstance(value, str) and _MODEL_NAME.fullmatch(value) else None


def main_model(model_usage: Any) -> tuple[str | None, list[str]]:
    """The model that wrote the most output tokens in a result's `modelUsage` ({model:
    {outputTokens, ...}}): Claude Code also calls a small model for chores (titles,
    summaries), which may read much and write little. A warning per name left out."""
    if not isinstance(model_usage, dict):
        return None, []
    written: dict[str, int] = {}
    warnings = []
    for name, used in model_usage.items():
        if model_name(name) is None:
            warnings.append(f"model {str(name)[:80]!r} is not a model name; ignored")
            continue
        out = used.get("outputTokens") if isinstance(used, dict) else None
        written[name] = bounded(out, True, 0, MAX_TOKENS) or 0
    return (max(written, key=written.__getitem__) if written else None), warnings


def _at(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path[:-1]:
        result = result.get(key) if isinstance(result.get(key), dict) else {}
    return result.get(path[-1])


def bounded(value: Any, whole: bool, low: float, high: float) -> Any:
    """`value` when it is a finite number (an int when `whole`; a bool is none) from
    `low` to `high`, else None."""
    kind = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # (an int of any size is)
        return None
    return value if low <= value <= high else None


def close_abandoned(conn: sqlite3.Connection, nova_id: int, at: float) -> int:
    """Close the rows a supervisor left `running` when it died; how many."""
    return conn.execute(
        "UPDATE sessions SET outcome = 'stopped', error = ?, ended_at = ?"
        " WHERE nova_id = ? AND outcome = ?",
        (ABANDONED_ERROR, at, nova_id, RUNNING)).rowcount


@dataclass(frozen=True)
class SessionRow:
    """One session as `torchsm sessions` lists it. The listing's columns are in one
    place: these fields, each read by its expression in _LISTED (a column the ledger
    gains, tokens or the model, say, is listed by adding it to both)."""

    id: int
    started_at: float
    nova: str
    kind: str
    item_id: int | None
    outcome: str
    ended_at: float | None
    exit_status: int | None
    cost_usd: float | None
    num_turns: int | None
    input_tokens: int | None
    output_tokens: int | None
    cache_creation_tokens: int | None
    cache_read_tokens: int | None
    model: str | None

    @property
    def duration_s(self) -> float | None:
        """How long it ran (None while it runs)."""
        return None if self.ended_at is None else max(self.ended_at - self.started_at, 0.0)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "started_at": format_time(self.started_at), "nova": self.nova,
                "kind": self.kind, "item": self.item_id, "outcome": self.outcome,
                "ended_at": format_time(self.ended_at), "duration_s": self.duration_s,
                "exit_status": self.exit_status, "cost_usd": self.cost_usd,
                "turns": self.num_turns, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cache_creation_tokens": self.cache_creation_tokens,
                "cache_read_tokens": self.cache_read_tokens, "model": self.model}


_LISTED = {"id": "s.id", "started_at": "s.started_at", "nova": "n.name", "kind": "s.kind",
           "item_id": "s.item_id", "outcome": "s.outcome", "ended_at": "s.ended_at",
           "exit_status": "s.exit_status", "cost_usd": "s.cost_usd",
           "num_turns": "s.num_turns", "input_tokens": "s.input_tokens",
           "output_tokens": "s.output_tokens",
           "cache_creation_tokens": "s.cache_creation_tokens",
           "cache_read_tokens": "s.cache_read_tokens", "model": "s.model"}
_LISTED_COLUMNS = ", ".join(_LISTED[name] for name in SessionRow.__dataclass_fields__)


def latest(conn: sqlite3.Connection, nova_id: int | None, limit: int) -> list[SessionRow]:
    """The latest `limit` sessions of one Nova (of every Nova: `nova_id` None), newest
    first."""
    only = "WHERE s.nova_id = ?" if nova_id is not None else ""
    rows = conn.execute(
        f"SELECT {_LISTED_COLUMNS} FROM sessions s JOIN novas n ON n.id = s.nova_id {only}"
        " ORDER BY s.started_at DESC, s.id DESC LIMIT ?",
        (*([nova_id] if nova_id is not None else []), limit)).fetchall()
    return [SessionRow(*row) for row in rows]


@dataclass(frozen=True)
class SessionUsage:
    """What one session used, as `torchsm usage` sums it (torchsm.usage.totals)."""

    started_at: float
    nova: str
    account: str
    outcome: str
    api_error_status: int | None
    num_turns: int | None
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_creation_tokens: int | None
    cache_read_tokens: int | None
    model: str | None


_USAGE_COLUMNS = ", ".join({"nova": "n.name", "account": "n.account"}.get(name, f"s.{name}")
                           for name in SessionUsage.__dataclass_fields__)


def usage_since(conn: sqlite3.Connection, since: float, until: float) -> list[SessionUsage]:
    """What every session started in (since, until] used, oldest first."""
    rows = conn.execute(
        f"SELECT {_USAGE_COLUMNS} FROM sessions s JOIN novas n ON n.id = s.nova_id"
        " WHERE s.started_at > ? AND s.started_at <= ? ORDER BY s.started_at, s.id", (since, until)).fetchall()
    return [SessionUsage(*row) for row in rows]


def nova_of(conn: sqlite3.Connection, session_id: int) -> int | None:
    """The id of the Nova session `session_id` was of (None: no such session)."""
    row = conn.execute("SELECT nova_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return row[0] if row else None
