"""When the supervisor will start the session a wake signal asks for, and why: what
`torchsm wake` answers.

The answer is the supervisor's own rule, not a copy of it: admission.why_not on facts
read now, asked at the signal's due time and again at the end of each refusal, as the
supervisor's loop asks after each wait. A refusal that no time ends (a hold only a person
lifts) ends the search. A Nova that dreams or compacts is asked as working: the supervisor
ends an idle dream when work arrives and resumes the Nova before it asks. What the
database cannot tell is read from the supervisor's plan and lock: no supervisor at all
(nothing starts), a session running now (the wake waits for its end), a wait that only a
critical wake cuts short (other signals wait for its end). An overload's backoff, which
the loop keeps in memory, stays out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.machine import State
from torchsm.mirror import streams
from torchsm.storage import run_files, store
from torchsm.supervisor import admission
from torchsm.supervisor.admission import Rule
from torchsm.tiers import Tier
from torchsm.work import wake

MAX_ASKS = 14  # each ask moves past one refusal; twelve rules, so this is never the limit

# what lets the session start when a rule held it back, for "starts when ..."
_ALLOWS = {
    Rule.WAITING: "the wait ends", Rule.USAGE_LIMIT: "the account's usage limit resets",
    Rule.SESSION_BUDGET: "the session budget has room",
    Rule.COST_BUDGET: "the cost budget has room", Rule.OVERLOAD: "the overload backoff ends",
    Rule.USAGE_PACING: "usage pacing allows", Rule.RHYTHM: "the rhythm allows",
    Rule.QUIET_HOURS: "quiet hours end",
    Rule.RUNNING_SESSIONS: "a session of the account ends",
    Rule.START_STAGGER: "the account's start stagger allows",
}
DUE = "due"  # the rule of a start that only waits for the signal's own due time
NEXT_LOOK = "next look"  # ... that waits for the supervisor's wait to end


@dataclass(frozen=True)
class Start:
    """When the session for a signal starts (None: nothing plans it), the rule that sets
    that time, and why in words."""

    at: float | None
    rule: str | None  # an admission rule, `due`, `next look`, `running`; None: now or never
    why: str
    now: float
    supervisor_pid: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"at": format_time(self.at), "rule": self.rule, "why": self.why,
                "in_s": None if self.at is None else round(max(0.0, self.at - self.now), 3),
                "supervised": self.supervisor_pid is not None,
                "supervisor_pid": self.supervisor_pid}


def first_start(facts: admission.Facts, due_at: float,
                now: float) -> tuple[float | None, admission.Refusal | None]:
    """The first time from the signal's due time on that admission lets the session
    start (None: only a person can let it), and the last refusal that pushed it there."""
    at, last = max(due_at, now), None
    for _ in range(MAX_ASKS):
        refusal = admission.why_not(facts, at)
        if refusal is None:
            return at, last
        if refusal.until is None:
            return None, refusal
        if refusal.rule is Rule.NOT_WORKING:
            facts = _as_working(facts)  # the supervisor resumes it before it asks
            continue
        if refusal.until <= at:
            return at, refusal  # a rule that names no later time: do not ask for ever
        if refusal.rule is Rule.RUNNING_SESSIONS:
            return refusal.until, refusal  # its time is only the next look: asking on
            # facts read now would move past it for ever
        at, last = refusal.until, refusal
    return at, last


def _as_working(facts: admission.Facts) -> admission.Facts:
    return dataclasses.replace(facts, nova=facts.nova._replace(state=State.WORKING.value))


def describe(at: float | None, refusal: admission.Refusal | None, critical: bool,
             now: float) -> Start:
    """The start in words: `starts now`, `starts when the rhythm floor allows, in 42 s
    (at ...)`, or what a person must do."""
    if at is None:
        return Start(None, refusal.rule.value, f"waits: {refusal.why}", now)
    if at <= now:
        return Start(at, None, "starts now", now)
    rule = refusal.rule.value if refusal is not None else DUE
    allows = _allows(refusal, critical)
    why = f"starts when {allows}, in {_seconds(at - now)} (at {format_time(at)})"
    if refusal is not None:
        why += f": {refusal.why}"
    return Start(at, rule, why, now)


def _allows(refusal: admission.Refusal | None, critical: bool) -> str:
    if refusal is None:
        return "it is due"
    if refusal.rule is Rule.RHYTHM and critical:
        return "the rhythm floor allows"
    return _ALLOWS.get(refusal.rule, f"{refusal.rule.value} allows")


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def for_signal(home: Home, config: Config, signal: wake.Signal, now: float,
               load: float | None) -> Start:
    """When Nova `signal.nova`'s supervisor starts the session for `signal`, asked now."""
    pid = run_files.supervisor_pid(home, signal.nova)
    if pid is None:
        return Start(None, None, f"queued; no supervisor runs for {signal.nova} (start one "
                                 f"with `torchsm run {signal.nova} -- COMMAND`)", now)
    plan = run_files.read_plan(home, signal.nova) or {}
    if plan.get("state") == "running":
        return Start(None, "running", f"starts after the running session ends: "
                                      f"{plan.get('why')}", now, pid)
    critical = signal.tier is Tier.CRITICAL
    request = admission.Request("wake", critical, load)
    with store.open_store(home, config.db.lock_timeout_s) as db:
        facts = db.read(lambda conn: admission.read_facts(conn, config, signal.nova,
                                                          request, now))
    at, refusal = first_start(facts, signal.due_at, now)
    start = describe(at, refusal, critical, now)
    if not critical:
        start = after_next_look(start, plan)
    return dataclasses.replace(start, supervisor_pid=pid)


def after_next_look(start: Start, plan: dict[str, Any]) -> Start:
    """A waiting supervisor looks for work when its wait ends; only a critical wake or a
    change of the Nova cuts the wait short (loop.Supervisor._cut_short), so other work
    starts no sooner than that."""
    looks_at = _epoch(plan.get("next_start")) if plan.get("state") == "waiting" else None
    if start.at is None or looks_at is None or looks_at <= start.at:
        return start
    why = (f"starts when its supervisor looks again, in {_seconds(looks_at - start.now)} "
           f"(at {format_time(looks_at)}): {plan.get('why')}")
    return Start(looks_at, NEXT_LOOK, why, start.now)


def _epoch(iso: Any) -> float | None:
    try:
        return streams.epoch(iso)
    except (TypeError, ValueError, AttributeError):
        return None  # no planned start ("far future", none)
