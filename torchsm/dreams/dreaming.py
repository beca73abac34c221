"""Dreams: a Nova's idle time turned into insight, without a single API request.

A dream is deterministic analysis of the stored history. It reads the span since the
Nova's last finished dream (at most [dreams] span_max_s back, at most [dreams] rows_max
rows of any source: torchsm.dreams.experience), then runs three phases:
  0. patterns: what happened, counted (torchsm.dreams.patterns);
  1. reflection: what it means, against thresholds and budgets (torchsm.dreams.reflection);
  2. plan: proposals, memory consolidation, optional work items (torchsm.dreams.plan).
Every insight cites its evidence; the same history gives the same insights.

Writing, so that nothing is ever half written:
  - the dream row (`running`) and the Nova's `dream` transition commit together;
  - the insights, what phase 2 changes (memory, work items), the status, the mirror entry
    (type `dream` on nova.coordination.messages) and the `work` transition back commit
    together, in one transaction.
`should_continue` is asked between the phases: when it says no (a critical wake, new
work), the dream ends early as `interrupted`, with the insights of the phases it finished,
and the Nova goes back to work. A dream whose process died (kill -9) stays `running` in the
table, and is shown as `interrupted`: its flock (HOME/run/NAME.dream.lock) is free; the next
dream of the Nova writes it down so.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple

from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.errors import DreamNotFound, DreamRunning, NovaNotFound, TransitionRefused
from torchsm.mirror import outbox, streams
from torchsm.names import check_name
from torchsm.storage import run_files, store
from torchsm.usage import ledger

RUNNING, DONE, INTERRUPTED = "running", "done", "interrupted"
DREAM_TYPE = "dream"  # the mirror entry of a dream, on nova.coordination.messages
DIED = "its process ended before the dream was written"
_WAITING = ("cooling", "meditating")


class InsightView(NamedTuple):
    id: int
    dream_id: int
    rank: int
    phase: int
    kind: str
    key: str
    text: str
    evidence: dict[str, Any]
    action: dict[str, Any] | None
    work_item: int | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "dream": self.dream_id, "rank": self.rank, "phase": self.phase,
                "kind": self.kind, "key": self.key, "text": self.text,
                "evidence": self.evidence, "action": self.action, "work_item": self.work_item}


class DreamView(NamedTuple):
    id: int
    nova: str
    status: str  # as shown: a `running` row nobody runs any more is `interrupted`
    trigger: str
    started_at: float
    ended_at: float | None
    span_from: float
    span_to: float
    summary: str | None
    read: dict[str, Any]
    event_id: str | None
    insight_count: int
    insights: tuple[InsightView, ...] | None = None  # None: not loaded (a listing)

    def as_json(self) -> dict[str, Any]:
        data = {"id": self.id, "nova": self.nova, "status": self.status,
                "trigger": self.trigger, "started_at": format_time(self.started_at),
                "ended_at": format_time(self.ended_at),
                "span": {"from": format_time(self.span_from), "to": format_time(self.span_to)},
                "summary": self.summary, "read": self.read, "event_id": self.event_id,
                "insight_count": self.insight_count}
        if self.insights is not None:
            data["insights"] = [i.as_json() for i in self.insights]
        return data


class _Begun(NamedTuple):
    id: int
    nova: str
    trigger: str
    started_at: float
    span: Any  # experience.Span


# --- dreaming --------------------------------------------------------------------------------

def dream(home: Home, config: Config, name: str, now: float, *, trigger: str = "command",
          should_continue: Callable[[], bool] = lambda: True,
          clock: Callable[[], float] = time.time) -> DreamView:
    """Dream for Nova `name` at `now`: the whole dream, written at once (module docstring).
    NovaNotFound, TransitionRefused (its state does not allow a dream now, or a session of
    it is live), DreamRunning."""
    check_name(name)
    with _dream_lock(home, name):
        with store.open_store(home, config.db.lock_timeout_s) as db:
            begun = db.write(lambda conn: _begin(conn, home, config, name, now, trigger))
        outbox.deliver(home, config)  # the `dream` transition
        try:
            exp, found, complete = _phases(home, config, begun, now, should_continue)
            ended = max(now, clock())
            with store.open_store(home, config.db.lock_timeout_s) as db:
                view = db.write(lambda conn: _finish(conn, config, begun, exp, found,
                                                     complete, now, ended))
        except BaseException as exc:
            _give_up(home, config, begun, max(now, clock()), exc)
            raise
    outbox.deliver(home, config)
    return view


def _begin(conn: sqlite3.Connection, home: Home, config: Config, name: str, now: float,
           trigger: str) -> _Begun:
    from torchsm import novas
    from torchsm.dreams.experience import Span
    from torchsm.machine import Event

    nova = store.nova_named(conn, name)
    _check_may_dream(nova, now)
    _check_no_live_session(conn, home, nova, now)
    # we hold the dream lock: a `running` row of this Nova is one whose process died
    conn.execute("UPDATE dreams SET status = ?, summary = ? WHERE nova_id = ? AND status = ?",
                 (INTERRUPTED, DIED, nova.id, RUNNING))
    span = Span(span_start(conn, config, nova.id, now), now)
    dream_id = conn.execute(
        "INSERT INTO dreams (nova_id, started_at, status, trigger, span_from, span_to)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (nova.id, now, RUNNING, trigger, span.start, span.end)).fetchone()[0]
    novas.transition_in(conn, config, name, Event.DREAM, reason=f"dream {dream_id}", now=now)
    return _Begun(dream_id, name, trigger, now, span)


def _check_may_dream(nova: store.NovaRow, now: float) -> None:
    """Refuse plainly what the state machine would word for `transition` (whose --force a
    dream does not have): a rest that is not over, or a hold a dream would end."""
    if nova.state in _WAITING and nova.limit_hold:
        raise TransitionRefused("dream", nova.name, f"{nova.state} and held "
                                f"({nova.limit_hold}); a dream would end the hold")
    if nova.state in _WAITING and nova.until is not None and nova.until > now:
        raise TransitionRefused("dream", nova.name, f"{nova.state} until "
                                f"{format_time(nova.until)}; dream after that")


def _check_no_live_session(conn: sqlite3.Connection, home: Home, nova: store.NovaRow,
                           now: float) -> None:
    """A dream moves the Nova to `dreaming` and rewrites its memory: never beside a
    session of it that is running (torchsm.agent.live says what counts)."""
    from torchsm.agent.live import live_session

    why = live_session(conn, home, nova.id, nova.name, now)
    if why is not None:
        raise TransitionRefused("dream", nova.name, f"{why}; dream when it has ended")


def span_start(conn: sqlite3.Connection, config: Config, nova_id: int, now: float) -> float:
    """Where the next dream's span begins: the end of the Nova's last finished dream, at
    most [dreams] span_max_s back (an interrupted dream's span is read again)."""
    row = conn.execute("SELECT span_to FROM dreams WHERE nova_id = ? AND status = ?"
                       " ORDER BY started_at DESC, id DESC LIMIT 1", (nova_id, DONE)).fetchone()
    start = max(row[0] if row else -math.inf, now - config.dreams.span_max_s)
    return min(start, now)


def _phases(home: Home, config: Config, begun: _Begun, now: float,
            should_continue: Callable[[], bool]):
    """Phases 0, 1 and the planning of 2; (experience, insights, whether all ran)."""
    from torchsm.dreams import experience, patterns, plan, reflection

    with store.open_store(home, config.db.lock_timeout_s) as db:
        exp = db.read(lambda conn: experience.gather(conn, config, begun.nova,
                                                           begun.span, now))
    found = patterns.recognise(exp)
    if not should_continue():
        return exp, found, False
    found += reflection.reflect(exp, config)
    if not should_continue():
        return exp, found, False
    found += plan.propose(exp, config, found, begun.id)
    return exp, found, should_continue()


def _finish(conn: sqlite3.Connection, config: Config, begun: _Begun, exp, found: list,
            complete: bool, now: float, ended: float) -> DreamView:
    from torchsm.dreams import plan

    if complete:
        found = plan.apply(conn, config, begun.id, exp, found, now)
    ranked = rank(found)
    status = DONE if complete else INTERRUPTED
    summary = summarise(exp, ranked, status)
    read = {**exp.read, "capped": list(exp.capped)}
    views = tuple(_save_insight(conn, begun.id, n, i) for n, i in enumerate(ranked, 1))
    event_id = streams.new_event_id(ended)
    changed = conn.execute(
        "UPDATE dreams SET status = ?, ended_at = ?, summary = ?, read_counts = ?, event_id = ?"
        " WHERE id = ? AND status = ?",
        (status, ended, summary, json.dumps(read), event_id, begun.id, RUNNING)).rowcount
    if not changed:
        raise NovaNotFound(begun.nova, " (removed while it dreamt)")
    view = DreamView(begun.id, begun.nova, status, begun.trigger, begun.started_at, ended,
                     begun.span.start, begun.span.end, summary, read, event_id, len(views),
                     views)
    outbox.put(conn, config, streams.MESSAGES_STREAM,
               streams.Entry.new(DREAM_TYPE, begun.nova, entry_data(view), ended, event_id))
    _wake_up(conn, config, begun, f"dream {begun.id} {status}", ended)
    return view


def entry_data(view: DreamView) -> dict[str, Any]:
    """The mirror entry's data: the dream and its insights. Its status is `outcome`: a
    `status` in an entry's data sets the Nova's nova.status key (torchsm.mirror.streams)."""
    data = view.as_json()
    data["dream"], data["outcome"] = data.pop("id"), data.pop("status")
    return data


def rank(found: list) -> list:
    """The dream's insights, the most important first: weight, then phase, then key."""
    return sorted(found, key=lambda i: (-i.weight, i.phase, i.key))


def summarise(exp, ranked: list, status: str) -> str:
    read = ", ".join(f"{source.replace('_', ' ')} {n}" for source, n in exp.read.items() if n)
    if not ranked:
        found = "no insights"
    else:
        proposals = sum(1 for i in ranked if i.phase == 2 and i.action)
        found = (f"{len(ranked)} insight{'s' if len(ranked) != 1 else ''}"
                 + (f" ({proposals} proposal{'s' if proposals != 1 else ''})"
                    if proposals else ""))
    text = f"read {read or 'nothing'}; {found}"
    return text if status == DONE else f"interrupted after phase {_last_phase(ranked)}; {text}"


def _last_phase(ranked: list) -> int:
    return max((i.phase for i in ranked), default=0)


def _save_insight(conn: sqlite3.Connection, dream_id: int, rank_: int, insight) -> InsightView:
    evidence = json.dumps(insight.evidence, ensure_ascii=False, sort_keys=True)
    action = (json.dumps(insight.action, ensure_ascii=False, sort_keys=True)
              if insight.action is not None else None)
    insight_id = conn.execute(
        "INSERT INTO insights (dream_id, phase, kind, key, rank, text, evidence, action,"
        " work_item_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (dream_id, insight.phase, insight.kind, insight.key, rank_, insight.text, evidence,
         action, insight.work_item)).fetchone()[0]
    return InsightView(insight_id, dream_id, rank_, insight.phase, insight.kind, insight.key,
                       insight.text, json.loads(evidence),
                       json.loads(action) if action else None, insight.work_item)


def _wake_up(conn: sqlite3.Connection, config: Config, begun: _Begun, reason: str,
             at: float) -> None:
    """Back to work, if the Nova still dreams (a person or a wake may have moved it)."""
    from torchsm import novas
    from torchsm.machine import Event

    nova = store.load_nova(conn, begun.nova)
    if nova is not None and nova.state == "dreaming":
        novas.transition_in(conn, config, begun.nova, Event.WORK, reason=reason, now=at)


def _give_up(home: Home, config: Config, begun: _Begun, at: float,
             exc: BaseException) -> None:
    """The dream failed (the database stayed locked, a bug, ^C): write it down as
    interrupted and send the Nova back to work, if the database lets us."""
    why = f"failed: {getattr(exc, 'message', None) or type(exc).__name__}"[:300]

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE dreams SET status = ?, ended_at = ?, summary = ?"
                     " WHERE id = ? AND status = ?", (INTERRUPTED, at, why, begun.id, RUNNING))
        _wake_up(conn, config, begun, f"dream {begun.id} {why}", at)

    try:
        with store.open_store(home, config.db.lock_timeout_s) as db:
            db.write(write)
        outbox.deliver(home, config)
    except Exception:
        pass  # the row stays `running`, shown as interrupted; the next dream settles it


# --- one dream of a Nova at a time -----------------------------------------------------------

def _lock_path(home: Home, name: str):
    return run_files.run_dir(home) / f"{name}.dream.lock"


@contextmanager
def _dream_lock(home: Home, name: str) -> Iterator[None]:
    fd = run_files.try_lock(_lock_path(home, name))
    if fd is None:
        raise DreamRunning(name, _holder(home, name))
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock; so does the process dying, however it dies


def _holder(home: Home, name: str) -> str:
    """The pid the dream lock's file names (its holder writes it), or `unknown`."""
    try:
        return _lock_path(home, name).read_text(errors="replace").strip()[:32] or "unknown"
    except OSError:
        return "unknown"


def running(home: Home, name: str) -> bool:
    """Whether a process is dreaming for Nova `name` now (it holds the dream lock)."""
    try:
        fd = os.open(_lock_path(home, name), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# --- when the supervisor dreams, and what ends a dream early ---------------------------------

def due(conn: sqlite3.Connection, config: Config, nova_id: int, reflection_every: int,
        now: float) -> str | None:
    """Why an idle Nova's supervisor may not dream now, or None when it may: at most one
    dream per [dreams] interval_s (counted from the last dream's start, whoever started
    it), and only after `reflection_every` sessions (the personality's) ended since the
    span of its last finished dream."""
    last = conn.execute("SELECT started_at FROM dreams WHERE nova_id = ?"
                        " ORDER BY started_at DESC, id DESC LIMIT 1", (nova_id,)).fetchone()
    if last is not None and now - last[0] < config.dreams.interval_s:
        return f"dreamt at {format_time(last[0])}; next one after [dreams] interval_s"
    since = span_start(conn, config, nova_id, now)
    ended = ledger.ended_since(conn, nova_id, since, reflection_every)
    if ended < reflection_every:
        return f"{ended} of {reflection_every} sessions ended since the last dream"
    return None


def undisturbed(home: Home, config: Config, name: str,
                clock: Callable[[], float] = time.time) -> Callable[[], bool]:
    """A dream's `should_continue` for a person's `torchsm dream`: until a critical wake
    is due (new work does not end a dream someone asked for; it takes a second)."""
    from torchsm.tiers import Tier
    from torchsm.work import wake

    def check() -> bool:
        with store.open_store(home, config.db.lock_timeout_s) as db:
            signal = db.read(lambda conn: wake.next_due_in(conn, name, clock()))
        return signal is None or signal.tier is not Tier.CRITICAL

    return check


# --- reading -------------------------------------------------------------------------------

_DREAM_COLUMNS = ("d.id, n.name, d.status, d.trigger, d.started_at, d.ended_at, d.span_from,"
                  " d.span_to, d.summary, d.read_counts, d.event_id,"
                  " (SELECT count(*) FROM insights i WHERE i.dream_id = d.id)")
_INSIGHT_COLUMNS = "id, dream_id, rank, phase, kind, key, text, evidence, action, work_item_id"


def list_dreams(home: Home, config: Config, nova: str | None = None,
                limit: int = 20) -> list[DreamView]:
    """The latest `limit` dreams (of one Nova, or of all), oldest first."""
    def read(conn: sqlite3.Connection) -> list[DreamView]:
        where, args = "", []
        if nova is not None:
            row = store.nova_named(conn, check_name(nova))
            where, args = "WHERE d.nova_id = ?", [row.id]
        rows = conn.execute(f"SELECT {_DREAM_COLUMNS} FROM dreams d JOIN novas n"
                            f" ON n.id = d.nova_id {where}"
                            " ORDER BY d.started_at DESC, d.id DESC LIMIT ?", (*args, limit))
        return [_dream_view(home, row) for row in reversed(rows.fetchall())]

    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(read)


def show(home: Home, config: Config, dream_id: int) -> DreamView:
    """One dream with its insights, ranked."""
    def read(conn: sqlite3.Connection) -> DreamView:
        row = conn.execute(f"SELECT {_DREAM_COLUMNS} FROM dreams d JOIN novas n"
                           " ON n.id = d.nova_id WHERE d.id = ?", (dream_id,)).fetchone()
        if row is None:
            raise DreamNotFound(dream_id)
        insights = conn.execute(f"SELECT {_INSIGHT_COLUMNS} FROM insights WHERE dream_id = ?"
                                " ORDER BY rank, id", (dream_id,))
        return _dream_view(home, row)._replace(
            insights=tuple(_insight_view(r) for r in insights))

    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(read)


def latest_insights(conn: sqlite3.Connection, nova: str, limit: int) -> list[InsightView]:
    """The insights of Nova `nova`'s latest finished dreams, the newest dream first and
    the most important first within it (what a session may start with)."""
    # the latest dreams that found anything (at most `limit` of them), newest first
    dream_ids = [r[0] for r in conn.execute(
        "SELECT d.id FROM dreams d JOIN novas n ON n.id = d.nova_id WHERE n.name = ?"
        " AND d.status = ? AND EXISTS (SELECT 1 FROM insights i WHERE i.dream_id = d.id)"
        " ORDER BY d.started_at DESC, d.id DESC LIMIT ?", (nova, DONE, limit))]
    found: list[InsightView] = []
    for dream_id in dream_ids:
        rows = conn.execute(f"SELECT {_INSIGHT_COLUMNS} FROM insights WHERE dream_id = ?"
                            " ORDER BY rank, id LIMIT ?", (dream_id, limit - len(found)))
        found += [_insight_view(r) for r in rows]
        if len(found) >= limit:
            break
    return found


def _dream_view(home: Home, row: tuple) -> DreamView:
    (dream_id, nova, status, trigger, started, ended, span_from, span_to, summary, read,
     event_id, count) = row
    if status == RUNNING and not running(home, nova):
        status, summary = INTERRUPTED, summary or DIED
    return DreamView(dream_id, nova, status, trigger, started, ended, span_from, span_to,
                     summary, json.loads(read) if read else {}, event_id, count)


def _insight_view(row: tuple) -> InsightView:
    values = list(row)
    values[7] = json.loads(values[7])
    values[8] = json.loads(values[8]) if values[8] else None
    return InsightView(*values)
