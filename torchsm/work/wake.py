"""Wake signals: the 5-tier prioritizer, with its rules as data, and the signal store.

`classify` is a pure function of the message, the sender, the config, earlier signals, the
time and the load, so every rule is testable without a clock or a database:
1. content: every regex rule that matches fires; the most urgent tier wins; no match
   means `medium` (an ordinary request); then the sender's explicit words ("low
   priority", "not urgent", "no rush", "whenever you have time") cap it at `low`;
2. sender: `[wake.senders]` moves the tier (+1 one tier more urgent, -1 less);
3. repetition: the same or a near-identical signal within `repeat_window_s` raises it one
   tier (once, however many repeats);
4. quiet hours and load only DEFER the due time of `low` and `background` signals: they
   never change a tier and never touch `critical`.

`send` stores a signal with its due time; a critical one moves a cooling or meditating
Nova to `working` at once, as a forced transition whose reason is the signal.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Iterable

from torchsm import novas
from torchsm.clock import format_time
from torchsm.config import Config, Home, WakeConfig
from torchsm.errors import TorchsmError
from torchsm.machine import WAITING_STATES, Event
from torchsm.mirror import outbox, streams
from torchsm.storage import store
from torchsm.tiers import DEFERRABLE, Tier

_SECRET = r"(api[- ]?)?(keys?|secrets?|tokens?|credentials?|passwords?|passphrases?)"

# tier -> {rule name: regex}, matched case-insensitively. Config rules of the same name
# replace these (an empty regex removes one). Medium has no rules: it is the default.
DEFAULT_RULES: dict[Tier, dict[str, str]] = {
    Tier.CRITICAL: {
        "failure": r"\bfail(s|ed|ing|ures?)?\b|\bcrash(es|ed|ing)?\b|\bsegfault|\bbroken\b"
                   r"|\brestart loop\b|\bpanic(ked)?\b",
        "outage": r"\boutages?\b|\b(is|are|went|goes|been) down\b|\bunreachable\b"
                  r"|\bunavailable\b|\bnot responding\b|\b50[234]\b",
        "resources-exhausted": r"\b(disk|volume|partition) (is )?full\b"
                               r"|\bout of (disk|memory|space)\b|\bno space left\b|\bOOM\b",
        "data-loss": r"\bdata ?loss\b|\blost (\w+ ){0,2}(data|rows|records|entries|orders"
                     r"|tables?|commits|transactions|backups?|messages|emails)\b"
                     r"|\b(data|rows|records|entries|tables?|commits|backups?|database|db"
                     r"|bucket|volume)\b[\w ]{0,30}?\b(went|are|is|were|was|got|have been"
                     r"|has been) (missing|lost|gone|wiped|erased|deleted|destroyed"
                     r"|overwritten)\b"
                     r"|\b(wiped|erased|deleted|dropped|truncated|destroyed|overwrote)"
                     r" (\w+ ){0,2}(database|db|bucket|volume|tables?|data|backups?)\b"
                     r"|\bcorrupt(ed|ion)?\b|\bcannot (restore|recover)\b|\bunrecoverable\b",
        "leaked-credentials": rf"\b(leak(ed|ing)|expos(ed|ing)) (\w+ ){{0,2}}{_SECRET}\b"
                              rf"|\b{_SECRET} (was |were |has been |have been |got |are |is )?"
                              r"(leaked|exposed)\b"
                              rf"|\b{_SECRET} (was|were|has been|have been|got) (committed"
                              r"|pushed|published|posted|printed|logged)\b"
                              rf"|\b{_SECRET} in (a |the )?(public|plain ?text|clear ?text)\b",
        "security-incident": r"\bsecurity incident\b|\bbreach(ed)?\b|\bcompromised\b"
                             r"|\bintrusion\b|\bransomware\b"
                             r"|\bunauthori[sz]ed access\b|\bhas root\b",
        "emergency": r"\burgent\b|\bemergency\b|\bsev ?[01]\b|\bp0\b",
    },
    Tier.HIGH: {
        "production-issue": r"\bprod(uction)? (issue|incident|problem|bug)s?\b"
                            r"|\b(in|on) prod(uction)?\b|\bprod-[a-z0-9]"
                            r"|\b(customers?|users?) (are )?(report(ing)?|complain(ing)?)\b",
        "regression": r"\bregressions?\b|\bhot ?fix(es)?\b",
        "security-patch": r"\bsecurity (patch|update|fix|advisory|release)(es|s)?\b"
                          r"|\bCVE-\d{4}-\d+\b|\bvulnerab(le|ility|ilities)\b",
    },
    Tier.MEDIUM: {},
    Tier.LOW: {
        "suggestion": r"\bsuggest(ion|ions|ed|s)?\b|\bmaybe\b|\bperhaps\b|\bconsider\b"
                      r"|\bsome ?day\b|\bwe could\b|\bmight want\b",
        "idea": r"\bideas?\b|\bnice to have\b|\bwould be nice\b",
        "fyi": r"\bfyi\b|\bfor your information\b|\bjust so you know\b",
    },
    Tier.BACKGROUND: {
        "docs": r"\bdocs?\b|\bdocumentation\b|\breadme\b|\bdocstrings?\b|\btypos?\b"
                r"|\bchangelog\b|\bstyle guide\b|\btutorials?\b|\bman ?pages?\b"
                r"|\bdocument (the|how|why|what|our|all|each|every)\b"
                r"|\b(code )?comments\b|\bcopyright\b",
        "maintenance": r"\bmaintenance\b|\bclean ?up\b|\btidy\b|\bbump\b"
                       r"|\bdependenc(y|ies)\b|\bdeps\b|\bvacuum\b|\breformat\b"
                       r"|\bformatter\b|\brename\b|\bhousekeeping\b|\bold logs?\b"
                       r"|\blint(er|ing)?\b|\bunused (imports?|code|variables?|functions?)\b"
                       r"|\bdead code\b|\btype (hints?|annotations?)\b|\bstale branch(es)?\b"
                       r"|\bdeprecation warnings?\b|\bgitignore\b",
    },
}

# Words by which a sender says that a signal can wait. They cap its tier (never raise
# it), whatever the content rules matched: the sender has looked, while content rules only
# guess from words ("low priority: the staging database lost rows" is the sender's call,
# and without this nobody could say "not urgent" of anything that names a failure).
# Senders' weights and repetition still move the capped tier.
EXPLICIT_RULES: dict[Tier, dict[str, str]] = {
    Tier.LOW: {
        "explicit-low": r"(?<!not )(?<!n't )\blow(est)?[- ]?prio(rity)?\b"
                        r"|\bnot (a |high |top )?priority\b|\bnon-?urgent\b"
                        r"|\bnot (very |that |so |too )?urgent\b|\bno (rush|hurry|urgency)\b"
                        r"|\bwhen(ever)? (you|u) (can|like|have (the |some )?time"
                        r"|find (the |some )?time|get (a chance|to it|(a)?round to it))\b"
                        r"|\bwhenever\s*([.!;)]|$)|\bat your (leisure|convenience)\b"
                        r"|\b(it|this|that) can wait\b",
    },
}

NEAR_IDENTICAL_RATIO = 0.9  # difflib ratio of two normalised messages


class SignalStatus(str, Enum):
    PENDING = "pending"
    DELIVERED = "delivered"


@dataclass(frozen=True)
class Rule:
    tier: Tier
    name: str
    pattern: re.Pattern


@dataclass(frozen=True)
class PastSignal:
    message: str
    received_at: float


@dataclass(frozen=True)
class Fired:
    """One rule that fired: what kind, which, its effect on tier or due time, and why."""

    kind: str  # content | default | explicit | sender | repetition | quiet-hours | load
    name: str
    effect: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "rule": self.name, "effect": self.effect,
                "detail": self.detail}


@dataclass(frozen=True)
class Classification:
    message: str
    sender: str | None
    tier: Tier
    now: float
    due_at: float
    fired: list[Fired] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "sender": self.sender, "tier": self.tier.value,
                "delay_s": self.due_at - self.now, "due": format_time(self.due_at),
                "rules": [f.as_json() for f in self.fired]}

    def summary(self) -> str:
        when = "now" if self.due_at <= self.now else f"in {self.due_at - self.now:g}s"
        return f"{self.tier.value}, due {when} ({format_time(self.due_at)})"

    def explain(self) -> str:
        """The tier and due time, then every rule that fired, one a line."""
        rows = [[f.kind, f.name, f.effect, f.detail] for f in self.fired]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3]
                 for r in rows]
        return "\n".join([self.summary(), *lines])


def classify(message: str, *, sender: str | None = None, config: WakeConfig | None = None,
             history: Iterable[PastSignal] = (), now: float | None = None,
             load_per_core: float | None = None,
             tz: dt.tzinfo | None = None) -> Classification:
    """The tier and due time of a signal, with every rule that fired.

    `history`: earlier signals to the same Nova; `load_per_core`: the 1-minute load
    average per core (None: not considered); `tz`: for quiet hours (None: local time)."""
    config = config or WakeConfig()
    now = time.time() if now is None else now
    fired: list[Fired] = []
    tier = _content_tier(message, compiled_rules(config), fired)
    tier = _explicitly_capped(tier, message, _explicit_rules(), fired)
    tier = _sender_adjusted(tier, sender, config.senders, fired)
    tier = _repetition_escalated(tier, message, history, now, config.repeat_window_s, fired)
    due_at = now + tier.delay_s
    if tier in DEFERRABLE:
        due_at = _after_quiet_hours(due_at, config.quiet_hours, tz, fired)
        due_at = _after_load(due_at, tier, load_per_core, config.load_defer_per_core, fired)
    return Classification(message, sender, tier, now, due_at, fired)


def compiled_rules(config: WakeConfig) -> list[Rule]:
    """The default rules merged with `[wake.rules]`, most urgent tier first."""
    overrides = tuple((tier, tuple(rules.items())) for tier, rules in config.rules.items())
    return _compile(overrides)


@lru_cache(maxsize=8)
def _compile(overrides: tuple) -> list[Rule]:
    merged = {tier: dict(rules) for tier, rules in DEFAULT_RULES.items()}
    for tier_name, rules in overrides:
        for name, pattern in rules:
            for existing in merged.values():
                existing.pop(name, None)  # a name is one rule, whichever tier it moves to
            if pattern:
                merged[Tier(tier_name)][name] = pattern
    return [Rule(tier, name, re.compile(pattern, re.IGNORECASE))
            for tier in Tier for name, pattern in merged[tier].items()]


def _content_tier(message: str, rules: list[Rule], fired: list[Fired]) -> Tier:
    matched = []
    for rule in rules:
        found = rule.pattern.search(message)
        if found:
            matched.append(rule.tier)
            fired.append(Fired("content", rule.name, rule.tier.value,
                               f"matched {found.group(0)!r}"))
    if not matched:
        fired.append(Fired("default", "ordinary-request", Tier.MEDIUM.value,
                           "no content rule matched"))
        return Tier.MEDIUM
    return min(matched, key=lambda t: t.rank)


@lru_cache(maxsize=1)
def _explicit_rules() -> list[Rule]:
    return [Rule(tier, name, re.compile(pattern, re.IGNORECASE))
            for tier, rules in EXPLICIT_RULES.items() for name, pattern in rules.items()]


def _explicitly_capped(tier: Tier, message: str, rules: list[Rule],
                       fired: list[Fired]) -> Tier:
    """The tier no more urgent than what the sender's own words say (EXPLICIT_RULES)."""
    for rule in rules:
        found = rule.pattern.search(message)
        if found:
            capped = max(tier, rule.tier, key=lambda t: t.rank)
            fired.append(Fired("explicit", rule.name, capped.value,
                               f"matched {found.group(0)!r}: at most {rule.tier.value}"))
            tier = capped
    return tier


def _sender_adjusted(tier: Tier, sender: str | None, weights: dict[str, int],
                     fired: list[Fired]) -> Tier:
    if not sender:
        return tier
    by_name = {name.lower(): weight for name, weight in weights.items()}
    weight = by_name.get(sender.lower(), 0)
    if weight == 0:
        return tier
    adjusted = tier.shifted(weight)
    fired.append(Fired("sender", sender, f"{weight:+d}",
                       f"{tier.value} -> {adjusted.value}"))
    return adjusted


def _repetition_escalated(tier: Tier, message: str, history: Iterable[PastSignal],
                          now: float, window_s: float, fired: list[Fired]) -> Tier:
    earlier = _similar_recent(message, history, now, window_s)
    if earlier is None:
        return tier
    raised = tier.shifted(1)
    fired.append(Fired("repetition", "repeated", "+1",
                       f"repeats a signal from {now - earlier.received_at:g}s ago "
                       f"({tier.value} -> {raised.value})"))
    return raised


def _similar_recent(message: str, history: Iterable[PastSignal], now: float,
                    window_s: float) -> PastSignal | None:
    wanted = normalise(message)
    recent = [p for p in history if now - window_s <= p.received_at <= now]
    for past in sorted(recent, key=lambda p: p.received_at, reverse=True):
        if is_near_identical(wanted, normalise(past.message)):
            return past
    return None


def normalise(message: str) -> str:
    """Lower case, numbers as `#`, punctuation and runs of spaces as one space: so that
    "Disk at 91% on db-3" and "disk at 93% on DB-3!" read the same."""
    text = re.sub(r"\d+", "#", message.lower())
    return " ".join(re.sub(r"[^\w#]+", " ", text).split())


def is_near_identical(a: str, b: str) -> bool:
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= NEAR_IDENTICAL_RATIO


def _after_quiet_hours(due_at: float, quiet_hours: str, tz: dt.tzinfo | None,
                       fired: list[Fired]) -> float:
    end = quiet_period_end(due_at, quiet_hours, tz)
    if end is None:
        return due_at
    fired.append(Fired("quiet-hours", quiet_hours, f"due {format_time(end)}",
                       "would be due during quiet hours: waits until they end"))
    return end


def quiet_period_end(at: float, quiet_hours: str, tz: dt.tzinfo | None = None) -> float | None:
    """When the quiet period that contains `at` ends, or None when `at` is not quiet."""
    if not quiet_hours:
        return None
    start, end = (dt.time.fromisoformat(part) for part in quiet_hours.split("-"))
    local = dt.datetime.fromtimestamp(at, tz)
    clock = local.time()
    if start == end:
        return None
    if start < end:
        inside, end_day = start <= clock < end, local.date()
    else:  # the period crosses midnight
        inside = clock >= start or clock < end
        end_day = local.date() + dt.timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return dt.datetime.combine(end_day, end, tzinfo=local.tzinfo).timestamp()


def _after_load(due_at: float, tier: Tier, load_per_core: float | None, limit: float,
                fired: list[Fired]) -> float:
    if load_per_core is None or limit <= 0 or load_per_core <= limit:
        return due_at
    # We cannot know when the load will fall; wait one more of the tier's delays and let
    # whoever delivers the signal look again then.
    fired.append(Fired("load", "system-load", f"+{tier.delay_s:g}s",
                       f"load {load_per_core:.2f} per core is above {limit:g}"))
    return due_at + tier.delay_s


def load_per_core() -> float | None:
    """The 1-minute load average per core, None where the OS does not tell."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return None


# --- stored signals ----------------------------------------------------------------------

@dataclass(frozen=True)
class Signal:
    id: int
    nova: str
    message: str
    sender: str | None
    tier: Tier
    status: SignalStatus
    received_at: float
    due_at: float

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "nova": self.nova, "message": self.message,
                "sender": self.sender, "tier": self.tier.value, "status": self.status.value,
                "received_at": format_time(self.received_at), "due": format_time(self.due_at)}


@dataclass(frozen=True)
class SentSignal:
    signal: Signal
    classification: Classification
    woke: novas.TransitionResult | None  # the forced `work` of a critical signal

    def as_json(self) -> dict[str, Any]:
        return {**self.signal.as_json(), "rules": self.classification.as_json()["rules"],
                "woke": self.woke.as_json() if self.woke else None}


_SIGNAL_COLUMNS = ("s.id, n.name, s.message, s.sender, s.tier, s.status, s.received_at, "
                   "s.due_at")


def send(home: Home, config: Config, nova: str, message: str, *, sender: str | None = None,
         now: float | None = None, load: float | None = None,
         tz: dt.tzinfo | None = None) -> SentSignal:
    """Classify a signal for `nova` against its recent signals, store it with its due
    time, and wake a cooling or meditating Nova at once when it is critical."""
    message = _check_message(message)
    novas.check_name(nova)
    now = time.time() if now is None else now
    def write(conn):
        stored = _classify_and_store(conn, config.wake, nova, message, sender, now, load, tz)
        signal = stored[0]
        outbox.put(conn, config, streams.MESSAGES_STREAM, streams.Entry.new("wake", nova, {
            "signal": signal.id, "message": message, "sender": sender,
            "tier": signal.tier.value, "due": format_time(signal.due_at)}, now))
        return stored

    with store.open_store(home, config.db.lock_timeout_s) as db:
        signal, result, state = db.write(write)
    outbox.deliver(home, config)
    woke = None
    state, held = state
    # A Nova held for a usage limit stays put: the API would refuse the session anyway.
    if signal.tier is Tier.CRITICAL and state in WAITING_STATES and not held:
        woke = novas.transition(home, config, nova, Event.WORK, force=True, now=now,
                                reason=f"critical wake #{signal.id}: {message}")
    return SentSignal(signal, result, woke)


def _classify_and_store(conn: sqlite3.Connection, config: WakeConfig, nova: str,
                        message: str, sender: str | None, now: float,
                        load: float | None, tz: dt.tzinfo | None):
    row = store.nova_named(conn, nova)
    history = _recent_signals(conn, row.id, now - config.repeat_window_s)
    result = classify(message, sender=sender, config=config, history=history, now=now,
                      load_per_core=load, tz=tz)
    signal_id = conn.execute(
        "INSERT INTO wake_signals (nova_id, message, sender, tier, status, received_at,"
        " due_at, rules) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (row.id, message, sender, result.tier.value, SignalStatus.PENDING.value, now,
         result.due_at, json.dumps([f.as_json() for f in result.fired])),
    ).fetchone()[0]
    signal = Signal(signal_id, nova, message, sender, result.tier, SignalStatus.PENDING,
                    now, result.due_at)
    return signal, result, (row.state, row.limit_hold)


def preview(home: Home, config: Config, nova: str, message: str, *,
            sender: str | None = None, now: float | None = None, load: float | None = None,
            tz: dt.tzinfo | None = None) -> Classification:
    """How `send` would classify a signal for `nova` now (its recent signals included),
    without storing anything."""
    novas.check_name(nova)
    now = time.time() if now is None else now

    def recent(conn: sqlite3.Connection) -> list[PastSignal]:
        row = store.nova_named(conn, nova)
        return _recent_signals(conn, row.id, now - config.wake.repeat_window_s)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        history = db.read(recent)
    return classify(message, sender=sender, config=config.wake, history=history, now=now,
                    load_per_core=load, tz=tz)


def _recent_signals(conn: sqlite3.Connection, nova_id: int, since: float) -> list[PastSignal]:
    rows = conn.execute("SELECT message, received_at FROM wake_signals"
                        " WHERE nova_id = ? AND received_at >= ?", (nova_id, since))
    return [PastSignal(message, received_at) for message, received_at in rows]


def pending(home: Home, config: Config, nova: str | None = None) -> list[Signal]:
    """Pending signals (of one Nova, or all), the soonest due first."""
    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(lambda conn: _pending(conn, nova))


def _pending(conn: sqlite3.Connection, nova: str | None) -> list[Signal]:
    where, params = "s.status = 'pending'", []
    if nova is not None:
        store.nova_named(conn, novas.check_name(nova))
        where, params = where + " AND n.name = ?", [nova]
    rows = conn.execute(f"SELECT {_SIGNAL_COLUMNS} FROM wake_signals s"
                        f" JOIN novas n ON n.id = s.nova_id WHERE {where}"
                        " ORDER BY s.due_at, s.id", params)
    return [_signal(row) for row in rows]


def next_due_in(conn: sqlite3.Connection, nova: str, now: float) -> Signal | None:
    """The most urgent pending signal for `nova` that is due at `now` (oldest first
    within a tier), inside the caller's transaction."""
    ranks = " ".join(f"WHEN '{t.value}' THEN {t.rank}" for t in Tier)
    row = conn.execute(f"SELECT {_SIGNAL_COLUMNS} FROM wake_signals s"
                       " JOIN novas n ON n.id = s.nova_id"
                       " WHERE n.name = ? AND s.status = 'pending' AND s.due_at <= ?"
                       f" ORDER BY CASE s.tier {ranks} END, s.due_at, s.id LIMIT 1",
                       (nova, now)).fetchone()
    return _signal(row) if row else None


def deliver_in(conn: sqlite3.Connection, signal_id: int, now: float) -> bool:
    """Mark a pending signal delivered inside the caller's transaction; False if it was
    not pending any more."""
    return conn.execute("UPDATE wake_signals SET status = 'delivered', delivered_at = ?"
                        " WHERE id = ? AND status = 'pending'", (now, signal_id)).rowcount == 1


def _signal(row: tuple) -> Signal:
    values = list(row)
    values[4], values[5] = Tier(values[4]), SignalStatus(values[5])
    return Signal(*values)


def _check_message(message: str) -> str:
    if not message or not message.strip():
        raise TorchsmError("a wake signal needs a message")
    return message.strip()
