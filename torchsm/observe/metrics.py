"""`torchsm metrics`: the eight metric families of each Nova over a window of stored
history, plus its account's usage, read with aggregate SQL (stdlib sqlite3 only).

The window is [now - since, now). Every family is a dict of plain numbers; a key ending
in `_by_<label>` holds a {label value: number} dict (the Prometheus collector turns those
into labels). Counts are over the window; `queue_*` and usage windows are as of `now`.

Families (what each measures, and from which table):
  uptime      sessions: starts, restarts, failures, stability (1 - failed/finished);
              history: transitions per event (operation counts)
  work        work_items finished in the window by the Nova (done, failed, dead),
              throughput per hour, success rate; the open queue it may claim (depth, age)
  wake        wake_signals received per tier and status; sessions started for a signal:
              due -> started latency per tier
  hooks       hook_runs per event, per hour, errors, bangs, safety actions; recoveries
              (an emergency cool followed by a return to work)
  coordination messages sent, received, broadcasts, distinct senders and partners
  dreams      dreams and their insights; proposals, applied, acted on (the item is done)
  rhythm      the gap between sessions against the personality's floor: compliance,
              mean gap, adaptation (mean gap / base cycle)
  recovery    history: cooldowns, emergencies (bangs), meditations, limit holds,
              recoveries and the time from a cooldown or meditation to the next `work`
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.errors import UnknownPersonality
from torchsm.names import HOOK_EVENTS
from torchsm.outcomes import OWN_FAILURES, REFUSALS, REFUSED_STATUSES, sql_list
from torchsm.personalities import get_personality
from torchsm.storage import store
from torchsm.work import work_queue
from torchsm.supervisor.rhythm import BURST_PACE, MEASURED_PACE

FAMILIES = ("uptime", "work", "wake", "hooks", "coordination", "dreams", "rhythm",
            "recovery", "usage")
HOUR_S, DAY_S = 3600.0, 86400.0
QUANTILE = 0.9
# a session the API refused: by its outcome, or by the status of its last API error
_REFUSED = (f"{{s}}outcome IN {sql_list(REFUSALS)}"
            f" OR {{s}}api_error_status IN {tuple(REFUSED_STATUSES)}")


@dataclass(frozen=True)
class Span:
    start: float
    end: float

    @property
    def hours(self) -> float:
        return (self.end - self.start) / HOUR_S

    def previous(self) -> "Span":
        """The window of the same length just before this one (for trends)."""
        return Span(2 * self.start - self.end, self.start)


@dataclass
class NovaMetrics:
    nova: str
    personality: str
    account: str
    state: str
    families: dict[str, dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"nova": self.nova, "personality": self.personality, "account": self.account,
                "state": self.state, **self.families}


@dataclass
class Metrics:
    span: Span
    now: float
    novas: list[NovaMetrics]
    accounts: list[dict[str, Any]]
    queue: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # health, added by torchsm.observe.health

    def as_json(self) -> dict[str, Any]:
        return {"since": format_time(self.span.start), "until": format_time(self.span.end),
                "since_s": self.span.end - self.span.start,
                "novas": [n.as_json() for n in self.novas], "accounts": self.accounts,
                "queue": self.queue, **self.extra}


def collect(home: Home, config: Config, name: str | None, since_s: float,
            now: float) -> Metrics:
    """The metrics of Nova `name` (every Nova when None) over [now - since_s, now)."""
    span = Span(now - since_s, now)
    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(lambda conn: read_metrics(conn, config, name, span, now))


def read_metrics(conn, config: Config, name: str | None, span: Span, now: float) -> Metrics:
    """The same as `collect`, inside a read transaction the caller holds (one snapshot)."""
    novas = store.load_novas_or_one(conn, name)
    sessions = {n.id: _session_facts(conn, n.id, span, _floor(_personality(config, n)))
                for n in novas}
    per_nova = [nova_metrics(conn, config, n, span, now, sessions=sessions[n.id])
                for n in novas]
    wanted = sorted({n.account for n in novas})
    # every Nova measured: an account's sessions are its Novas' (already summed above)
    mine = None if name is not None else {
        a: [sessions[n.id] for n in novas if n.account == a] for a in wanted}
    return Metrics(span, now, per_nova,
                   [account_usage(conn, a, span, sessions=None if mine is None else mine[a])
                    for a in wanted], queue_metrics(conn, None, now))


def nova_metrics(conn, config: Config, nova: store.NovaRow, span: Span, now: float, *,
                 sessions: dict[str, Any] | None = None) -> NovaMetrics:
    history = _history_facts(conn, nova.id, span)
    if sessions is None:
        sessions = _session_facts(conn, nova.id, span, _floor(_personality(config, nova)))
    families = {
        "uptime": uptime(conn, nova.id, span, sessions=sessions,
                         operations=history.pop("transitions_by_event")),
        "work": {**work(conn, nova.name, span), **queue_metrics(conn, nova.name, now)},
        "wake": wake(conn, nova.id, span),
        "hooks": {**hooks(conn, nova.id, span), "recoveries": history.pop("bang_recoveries")},
        "coordination": coordination(conn, nova.name, span),
        "dreams": dreams(conn, nova.id, span),
        "rhythm": rhythm(conn, config, nova, span, sessions=sessions),
        "recovery": history,
        "usage": nova_usage(conn, nova.id, span, sessions=sessions),
    }
    return NovaMetrics(nova.name, nova.personality, nova.account, nova.state, families)


def read_score_inputs(conn, config: Config, name: str | None, span: Span,
                      now: float) -> Metrics:
    """Only the metrics the health score reads (torchsm.observe.health.COMPONENTS), for the window
    before the one shown (the trend): no coordination, wake, dreams, usage, nor the
    history's recovery pass."""
    per_nova = []
    for nova in store.load_novas_or_one(conn, name):
        sessions = _session_facts(conn, nova.id, span, _floor(_personality(config, nova)))
        cooldowns, meditations = conn.execute(
            "SELECT total(event = 'cool' AND NOT limit_hold), total(event = 'meditate')"
            " FROM history WHERE nova_id = ? AND at >= ? AND at < ?",
            (nova.id, span.start, span.end)).fetchone()
        families = {
            "uptime": {"stability": sessions["stability"]},
            "work": {**work(conn, nova.name, span), **queue_metrics(conn, nova.name, now)},
            "hooks": hooks(conn, nova.id, span),
            "rhythm": {"compliance": sessions["compliance"]},
            "recovery": {"cooldowns": int(cooldowns), "meditations": int(meditations)},
        }
        per_nova.append(NovaMetrics(nova.name, nova.personality, nova.account, nova.state,
                                    families))
    return Metrics(span, now, per_nova, [], {})


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if not whole else round((part or 0) / whole, 4)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def uptime(conn, nova_id: int, span: Span, *, sessions: dict[str, Any] | None = None,
           operations: dict[str, int] | None = None) -> dict[str, Any]:
    facts = sessions or _session_facts(conn, nova_id, span, None)
    if operations is None:
        operations = dict(conn.execute(
            "SELECT event, count(*) FROM history WHERE nova_id = ? AND at >= ? AND at < ?"
            " GROUP BY event ORDER BY event", (nova_id, span.start, span.end)).fetchall())
    return {**{k: facts[k] for k in ("sessions", "restarts", "sessions_ok", "sessions_failed",
                                      "stability")},
            "transitions": sum(operations.values()), "transitions_by_event": operations}


def _session_facts(conn, nova_id: int, span: Span, floor: float | None) -> dict[str, Any]:
    """The Nova's sessions started in the window, through the covering (nova_id,
    started_at, id, ...) index: uptime and usage in one pass, the rhythm's gaps (a
    session's start minus the end of the one before, against `floor`) in another (a window
    function materialises its rows: it carries the gap only, measured faster than one
    pass for all; `first_value` over a one-row frame measured 20% faster than `lag`)."""
    started, restarts, finished, failed, ok, cost, refused = conn.execute(
        "SELECT count(*), total(kind = 'restart'), total(outcome != 'running'),"
        f" total(outcome IN {sql_list(OWN_FAILURES)}), total(outcome = 'ok'), total(cost_usd),"
        f" total({_REFUSED.format(s='')})"
        " FROM sessions WHERE nova_id = ? AND started_at >= ? AND started_at < ?",
        (nova_id, span.start, span.end)).fetchone()
    gaps, kept, mean = conn.execute(
        "SELECT count(gap), total(gap >= ?), avg(gap) FROM (SELECT started_at"
        " - first_value(ended_at) OVER (ORDER BY started_at, id ROWS BETWEEN 1 PRECEDING"
        " AND 1 PRECEDING) AS gap FROM sessions"
        " WHERE nova_id = ? AND started_at >= ? AND started_at < ?)",
        (None if floor is None else floor - 1e-6, nova_id, span.start, span.end)).fetchone()
    return {"sessions": started, "restarts": int(restarts), "sessions_ok": int(ok),
            "sessions_failed": int(failed),
            "stability": None if not finished else round(1 - failed / finished, 4),
            "cost_usd": cost, "refused": int(refused), "gaps": gaps,
            "compliance": None if floor is None else _ratio(kept, gaps), "gap_mean_s": mean}


def work(conn, nova: str, span: Span) -> dict[str, Any]:
    """Items this Nova finished (the one that claimed them) within the window."""
    done, failed, dead = conn.execute(
        "SELECT total(status = 'done'), total(status = 'failed'), total(status = 'dead')"
        " FROM work_items WHERE finished_at >= ? AND finished_at < ? AND claimed_by = ?",
        (span.start, span.end, nova)).fetchone()
    finished = done + failed + dead
    return {"items_done": int(done), "items_failed": int(failed), "items_dead": int(dead),
            "throughput_per_hour": round(done / span.hours, 4),
            "success_rate": _ratio(done, finished)}


def queue_metrics(conn, nova: str | None, now: float) -> dict[str, Any]:
    """The open items (pending or claimed) a Nova may claim (its own and the unaddressed
    ones; every open item when `nova` is None): how many, and how old (p90, max)."""
    where = work_queue.OPEN_SQL
    args: tuple = ()
    if nova is not None:
        where += " AND (nova = ? OR nova IS NULL)"
        args = (nova,)
    depth, oldest = conn.execute(f"SELECT count(*), min(created_at) FROM work_items"
                                 f" WHERE {where}", args).fetchone()
    p90 = None
    if depth:
        # the nearest-rank p90 of the ages: ages ascending are creation times descending
        offset = math.ceil(QUANTILE * depth) - 1
        p90 = conn.execute(f"SELECT created_at FROM work_items WHERE {where}"
                           f" ORDER BY created_at DESC LIMIT 1 OFFSET ?",
                           (*args, offset)).fetchone()[0]
    return {"queue_depth": depth,
            "queue_age_p90_s": None if p90 is None else _round(max(0.0, now - p90)),
            "queue_age_max_s": None if oldest is None else _round(max(0.0, now - oldest))}


def wake(conn, nova_id: int, span: Span) -> dict[str, Any]:
    received = conn.execute(
        "SELECT tier, status, count(*) FROM wake_signals WHERE nova_id = ?"
        " AND received_at >= ? AND received_at < ? GROUP BY tier, status",
        (nova_id, span.start, span.end)).fetchall()
    by_tier: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for tier, status, n in received:
        by_tier[tier] = by_tier.get(tier, 0) + n
        by_status[status] = by_status.get(status, 0) + n
    # the sessions started for a signal, through the (nova_id, started_at) index
    latency = conn.execute(
        "SELECT w.tier, count(*), avg(max(0, s.started_at - w.due_at)),"
        " max(max(0, s.started_at - w.due_at)) FROM sessions s"
        " JOIN wake_signals w ON w.id = s.signal_id WHERE s.nova_id = ?"
        " AND s.started_at >= ? AND s.started_at < ? GROUP BY w.tier",
        (nova_id, span.start, span.end)).fetchall()
    return {"signals": sum(by_tier.values()), "signals_by_tier": by_tier,
            "signals_by_status": by_status,
            "sessions_started": sum(r[1] for r in latency),
            "sessions_started_by_tier": {r[0]: r[1] for r in latency},
            "latency_avg_s_by_tier": {r[0]: _round(r[2]) for r in latency},
            "latency_max_s_by_tier": {r[0]: _round(r[3]) for r in latency}}


def hooks(conn, nova_id: int, span: Span) -> dict[str, Any]:
    marks = ", ".join("?" * len(HOOK_EVENTS))
    rows = conn.execute(
        "SELECT event, count(*), total(outcome = 'error'), total(outcome = 'bang'),"
        " total(outcome IN ('cooled', 'meditated')), avg(duration_ms) FROM hook_runs"
        f" WHERE nova_id = ? AND event IN ({marks}) AND at >= ? AND at < ? GROUP BY event",
        (nova_id, *HOOK_EVENTS, span.start, span.end)).fetchall()
    runs = sum(r[1] for r in rows)
    mean_ms = sum(r[1] * (r[5] or 0.0) for r in rows) / runs if runs else None
    return {"runs": runs, "runs_per_hour": round(runs / span.hours, 4),
            "runs_by_event": {r[0]: r[1] for r in rows},
            "errors": int(sum(r[2] for r in rows)), "bangs": int(sum(r[3] for r in rows)),
            "safety_actions": int(sum(r[4] for r in rows)),
            "duration_mean_ms": _round(mean_ms)}


def coordination(conn, nova: str, span: Span) -> dict[str, Any]:
    sent, broadcasts, received, senders = conn.execute(
        "SELECT total(sender = :n), total(sender = :n AND recipient = 'all'),"
        " total(recipient IN (:n, 'all') AND sender != :n),"
        " count(DISTINCT CASE WHEN recipient IN (:n, 'all') AND sender != :n THEN sender END)"
        " FROM messages WHERE at >= :a AND at < :b",
        {"n": nova, "a": span.start, "b": span.end}).fetchone()
    partners = conn.execute(
        "SELECT count(*) FROM (SELECT recipient FROM messages WHERE sender = :n"
        " AND recipient NOT IN (:n, 'all') AND at >= :a AND at < :b UNION"
        " SELECT sender FROM messages WHERE recipient IN (:n, 'all') AND sender != :n"
        " AND at >= :a AND at < :b)", {"n": nova, "a": span.start, "b": span.end}).fetchone()[0]
    return {"sent": int(sent), "broadcasts": int(broadcasts), "received": int(received),
            "senders": senders, "partners": partners}


def dreams(conn, nova_id: int, span: Span) -> dict[str, Any]:
    count, done, interrupted = conn.execute(
        "SELECT count(*), total(status = 'done'), total(status != 'done') FROM dreams"
        " WHERE nova_id = ? AND started_at >= ? AND started_at < ?",
        (nova_id, span.start, span.end)).fetchone()
    insights, proposals, applied, acted = conn.execute(
        "SELECT count(i.id), total(i.phase = 2 AND i.action IS NOT NULL),"
        " total(i.work_item_id IS NOT NULL), total(w.status = 'done') FROM dreams d"
        " JOIN insights i ON i.dream_id = d.id LEFT JOIN work_items w ON w.id = i.work_item_id"
        " WHERE d.nova_id = ? AND d.started_at >= ? AND d.started_at < ?",
        (nova_id, span.start, span.end)).fetchone()
    return {"dreams": count, "dreams_done": int(done), "dreams_interrupted": int(interrupted),
            "insights": insights, "proposals": int(proposals), "proposals_applied": int(applied),
            "proposals_acted_on": int(acted), "acted_on_rate": _ratio(acted, proposals)}


def rhythm_floor_s(base_cycle_s: float, energy: str) -> float:
    """The shortest gap the personality ever allows (torchsm.supervisor.rhythm: a burst Nova's quick
    sessions run at half its base cycle, a measured one at 1.5 times)."""
    pace = {"burst": BURST_PACE, "measured": MEASURED_PACE}.get(energy, 1.0)
    return base_cycle_s * pace


def _personality(config: Config, nova: store.NovaRow):
    try:
        return get_personality(nova.personality, config.personalities)
    except UnknownPersonality:  # a personality removed from the config: no cycle to compare with
        return None


def _floor(personality) -> float | None:
    return None if personality is None else rhythm_floor_s(personality.base_cycle_s,
                                                           personality.energy)


def rhythm(conn, config: Config, nova: store.NovaRow, span: Span, *,
           sessions: dict[str, Any] | None = None) -> dict[str, Any]:
    personality = _personality(config, nova)
    if personality is None:
        return {"base_cycle_s": None, "floor_s": None, "gaps": 0, "compliance": None,
                "gap_mean_s": None, "adaptation": None}
    floor = _floor(personality)
    facts = sessions or _session_facts(conn, nova.id, span, floor)
    mean = facts["gap_mean_s"]
    return {"energy": personality.energy, "base_cycle_s": personality.base_cycle_s,
            "floor_s": floor, "gaps": facts["gaps"], "compliance": facts["compliance"],
            "gap_mean_s": _round(mean),
            "adaptation": None if mean is None else round(mean / personality.base_cycle_s, 4)}


def _history_facts(conn, nova_id: int, span: Span) -> dict[str, Any]:
    """The error-recovery family and the transitions per event, from the Nova's
    transitions in the window, through the covering (nova_id, at, id, event, limit_hold,
    reason) index: each cooldown or meditation is recovered from when the next transition
    (in `at, id` order, within the window) is `work`. Only cooldowns and meditations are
    visited, each with one index seek for the transition after it (measured, 30 days of
    the benchmark's home: 100 ms, against 146 ms visiting every row and 250 ms for
    `lead()`, whose window materialises every row); `LIMIT -1` keeps the subquery a
    co-routine, so that the seek runs once per row, not once per use."""
    (cooldowns, emergencies, meditations, holds, recoveries, total_s, worst,
     bangs) = conn.execute(
        "SELECT total(cool), total(bang), total(meditate), total(hold), count(work_at),"
        " total(work_at - at), max(work_at - at), total(bang AND work_at IS NOT NULL)"
        " FROM (SELECT h.at, h.event = 'cool' AND NOT h.limit_hold AS cool,"
        " h.event = 'cool' AND h.reason LIKE 'bang:%' AS bang,"
        " h.event = 'meditate' AS meditate, h.event = 'cool' AND h.limit_hold AS hold,"
        " CASE WHEN NOT h.limit_hold THEN"
        " (SELECT CASE WHEN n.event = 'work' THEN n.at END FROM history n"
        "  WHERE n.nova_id = h.nova_id AND n.at >= h.at AND n.at < :end"
        "  AND (n.at > h.at OR n.id > h.id) ORDER BY n.at, n.id LIMIT 1) END AS work_at"
        " FROM history h WHERE h.nova_id = :nova AND h.at >= :start AND h.at < :end"
        " AND h.event IN ('cool', 'meditate') LIMIT -1)",
        {"nova": nova_id, "start": span.start, "end": span.end}).fetchone()
    # every transition, by event (the covering index again: no table row read)
    operations = dict(conn.execute(
        "SELECT event, count(*) FROM history WHERE nova_id = ? AND at >= ? AND at < ?"
        " GROUP BY event ORDER BY event", (nova_id, span.start, span.end)).fetchall())
    return {"cooldowns": int(cooldowns), "emergencies": int(emergencies),
            "meditations": int(meditations), "limit_holds": int(holds),
            "recoveries": recoveries,
            "time_to_recover_mean_s": _round(total_s / recoveries if recoveries else None),
            "time_to_recover_max_s": _round(worst), "bang_recoveries": int(bangs),
            "transitions_by_event": operations}


def nova_usage(conn, nova_id: int, span: Span, *,
               sessions: dict[str, Any] | None = None) -> dict[str, Any]:
    facts = sessions or _session_facts(conn, nova_id, span, None)
    cost = facts["cost_usd"]
    return {"cost_usd": round(cost, 6), "cost_usd_per_day": _per_day(cost, span),
            "refused": facts["refused"]}


def _per_day(cost: float, span: Span) -> float:
    return round(cost / ((span.end - span.start) / DAY_S), 6)


def account_usage(conn, account: str, span: Span, *,
                  sessions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An account's usage: its windows as last reported, and what its Novas' sessions cost
    and were refused within the span (summed from `sessions`, the session facts of every
    Nova of the account, when the caller has them)."""
    windows = conn.execute(
        "SELECT window, utilization, status, resets_at FROM account_windows"
        " WHERE account = ? ORDER BY window", (account,)).fetchall()
    if sessions is None:
        cost, refused, count = conn.execute(
            f"SELECT total(s.cost_usd), total({_REFUSED.format(s='s.')}), count(s.id)"
            " FROM novas n JOIN sessions s"
            " ON s.nova_id = n.id AND s.started_at >= ? AND s.started_at < ?"
            " WHERE n.account = ?", (span.start, span.end, account)).fetchone()
    else:
        cost = sum(f["cost_usd"] for f in sessions)
        refused = sum(f["refused"] for f in sessions)
        count = sum(f["sessions"] for f in sessions)
    return {"account": account, "sessions": count, "cost_usd": round(cost, 6),
            "cost_usd_per_day": _per_day(cost, span), "refused": int(refused),
            "windows_used": len(windows),
            "utilization_by_window": {w[0]: w[1] for w in windows if w[1] is not None},
            "status_by_window": {w[0]: w[2] for w in windows if w[2] is not None},
            "resets_at_by_window": {w[0]: format_time(w[3]) for w in windows
                                    if w[3] is not None}}
