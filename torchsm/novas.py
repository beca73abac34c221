"""Novas: add, remove, look at, and move through the state machine.

`transition` and `status` run on the stdlib store (they are on the hook and supervisor
paths); the administrative calls use SQLAlchemy (torchsm.db), imported when called.
"""

from __future__ import annotations

import random
import time

from torchsm import machine, safety
from torchsm.config import MAX_DURATION_S, Config, Home
from torchsm.errors import AgentCommandError, InvalidDuration, NovaExists, TorchsmError
from torchsm.machine import Event, State, format_time
from torchsm.mirror import outbox, streams
from torchsm.names import DEFAULT_ACCOUNT, check_account, check_name
from torchsm.records import record
from torchsm.storage import store

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Any, Callable


@record
class TransitionResult:
    nova: str
    source: str
    target: str
    event: str
    at: float
    until: float | None
    reason: str | None
    forced: bool
    recorded: bool  # False for an accepted no-op
    event_id: str | None = None  # the mirror entry's id, when recorded

    def as_json(self) -> dict[str, Any]:
        return {"nova": self.nova, "from": self.source, "to": self.target,
                "event": self.event, "at": format_time(self.at),
                "until": format_time(self.until), "reason": self.reason,
                "forced": self.forced, "recorded": self.recorded, "event_id": self.event_id}

    def describe(self) -> str:
        """One line for people: `torch: working -> cooling (cool) until ...`."""
        if not self.recorded:
            return f"{self.nova}: already {self.target}"
        text = f"{self.nova}: {self.source} -> {self.target} ({self.event})"
        if self.until is not None:
            text += f" until {format_time(self.until)}"
        return text + (" [forced]" if self.forced else "")

    def mirror_entry(self) -> streams.Entry:
        """The `transition` entry of torch.continuous.ops; it also sets nova.status.NAME."""
        data = {"from": self.source, "to": self.target, "event": self.event,
                "reason": self.reason, "until": format_time(self.until),
                "forced": self.forced, "status": self.target.upper()}
        return streams.Entry.new("transition", self.nova, data, self.at, self.event_id)


@record
class _Request:
    name: str
    event: Event
    reason: str | None
    for_s: float | None
    until_at: float | None
    force: bool
    escalate: bool
    bang: bool = False
    limit: str | None = None  # a usage limit: hold the Nova until the reset
    hold_only: bool = False  # only the account's limit: until the reset exactly, no backoff


def transition(home: Home, config: Config, name: str, event: str | Event, *,
               reason: str | None = None, for_s: float | None = None, force: bool = False,
               now: float | None = None, rng: random.Random | None = None) -> TransitionResult:
    """Fire `event` at Nova `name`; the state change and its history row commit together,
    then the transition is mirrored (to the stream, or queued when the server is away)."""
    event = machine.parse_event(event) if isinstance(event, str) else event
    check_name(name)
    if for_s is not None and event not in (Event.COOL, Event.MEDITATE):
        raise TorchsmError("--for applies only to cool and meditate")
    if for_s is not None and not 0 < for_s <= MAX_DURATION_S:  # nan fails both
        raise InvalidDuration("--for", MAX_DURATION_S)
    request = _Request(name, event, reason, for_s, None, force, escalate=False)
    return _fire(home, config, request, now, rng)


def safety_cool(home: Home, config: Config, name: str, *, reason: str,
                until: float | None = None, bang: bool = False, limit: str | None = None,
                now: float | None = None, rng: random.Random | None = None,
                unless_answered: Callable[[object], bool] | None = None
                ) -> TransitionResult | None:
    """Cool a Nova because something went wrong (a bang, a failed session, a limit).

    The cooldown is the backoff, or lasts until `until` (a usage limit's reset) when that
    is later; an existing wait is never shortened. When the system is overheated (more
    than `cooldowns_to_meditate` cooldowns or `bangs_to_meditate` bangs within an hour,
    this one included: `bang` says it is one) the Nova meditates instead. A meditating
    Nova stays meditating.

    `limit` (why) marks a usage limit: the Nova is held until `until`, and nothing starts
    it early, critical wakes included; with `auto_resume = false` a person must resume it.

    `unless_answered(conn)`, asked in the cooldown's own transaction, records the answer
    it gives and says whether it is this cooldown's to give (torchsm.endings.answers.claim): the
    answer and the cooldown commit together or not at all. None when it was not.
    """
    request = _Request(check_name(name), Event.COOL, reason, None, until, False,
                       escalate=True, bang=bang, limit=limit)
    return _fire(home, config, request, now, rng, unless_answered)


def hold_for_limit(home: Home, config: Config, name: str, *, until: float, reason: str,
                   now: float | None = None) -> TransitionResult:
    """Hold a Nova for its account's usage limit until `until` (the reset plus the margin).

    Not a cooldown for something that went wrong: no backoff, no step toward meditation.
    A Nova already held for a limit follows the new time, earlier or later (the provider's
    structured reset beats one read from a message); a longer wait of another kind and a
    hold for a person stand. Holding a Nova already held until `until` changes nothing.
    """
    request = _Request(check_name(name), Event.COOL, reason, None, until, False,
                       escalate=False, limit=reason, hold_only=True)
    return _fire(home, config, request, now, None)


def release_limit_hold(conn, nova: store.NovaRow, now: float, forget: bool = False) -> bool:
    """End a usage-limit wait now: the account's windows no longer hold it (a structured
    reset came earlier than the one read from a message). `forget`: the limit is not this
    Nova's any more (it moved to another account), so `auto_resume = false` does not keep
    it either. The caller commits."""
    if not held_for_limit(nova) or nova.until is None or nova.until <= now:
        return False
    store.extend_wait(conn, nova.id, now, None if forget else nova.limit_hold)
    return True


def held_for_limit(nova: store.NovaRow) -> bool:
    """Waiting for a usage limit's reset (not for a person)."""
    return (nova.state in (State.COOLING.value, State.MEDITATING.value)
            and bool(nova.limit_hold) and not held_for_a_person(nova.limit_hold))


ACCOUNT_HOLD = "needs a person: "  # the prefix of a hold that only a person lifts


def meditate_for_a_person(home: Home, config: Config, name: str, *, reason: str,
                          now: float | None = None) -> TransitionResult:
    """Billing or authentication refused: meditate and stay held until a person runs
    `torchsm transition NAME work` (retrying cannot help; critical wakes do not lift it)."""
    request = _Request(check_name(name), Event.MEDITATE, reason, None, None, False,
                       escalate=False, limit=ACCOUNT_HOLD + reason)
    return _fire(home, config, request, now, None)


def held_for_a_person(limit_hold: str | None) -> bool:
    return bool(limit_hold) and limit_hold.startswith(ACCOUNT_HOLD)


def transition_in(conn, config: Config, name: str, event: Event, *, reason: str | None,
                  now: float) -> TransitionResult:
    """`transition` (no --for, no --force) inside the caller's write transaction: the
    change, its history row and its outbox entry commit with whatever else the caller
    writes; the caller delivers the outbox after the commit."""
    request = _Request(check_name(name), event, reason, None, None, False, escalate=False)
    return _recorded_in(conn, config, request, now, None, streams.new_event_id(now))


def _recorded_in(conn, config: Config, request: _Request, now: float, rng,
                 event_id: str) -> TransitionResult:
    result = _transition_in(conn, config, request, now, rng, event_id)
    if result.recorded:  # committed with the change, delivered after it (outbox.py)
        outbox.put(conn, config, streams.OPS_STREAM, result.mirror_entry())
    return result


def _fire(home: Home, config: Config, request: _Request, now: float | None,
          rng: random.Random | None, unless_answered=None) -> TransitionResult | None:
    now = time.time() if now is None else now
    event_id = streams.new_event_id(now)
    def write(conn) -> TransitionResult | None:
        if unless_answered is not None and not unless_answered(conn):
            return None
        return _recorded_in(conn, config, request, now, rng, event_id)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        result = db.write(write)
    if result is not None and result.recorded:
        outbox.deliver(home, config)
    return result


def _transition_in(conn, config: Config, request: _Request, now: float, rng, event_id):
    name, event, reason = request.name, request.event, request.reason
    nova = store.nova_named(conn, name)
    if request.hold_only:
        return _hold_in(conn, nova, request, now, event_id)
    if request.escalate:
        event = _escalated(conn, nova, config, now, request.bang)
        if event is Event.MEDITATE and nova.state == State.MEDITATING.value:
            if (request.until_at or 0) > (nova.until or 0):  # a limit outlasting the meditation
                store.extend_wait(conn, nova.id, request.until_at,
                                  request.limit or nova.limit_hold)
                nova = nova._replace(until=request.until_at)
            return _unchanged(nova, event, now, reason)
    decision = machine.decide(name, nova.state, nova.until, event, now=now, force=request.force)
    forced = request.force and nova.state in machine.WAITING_STATES and not _wait_over(nova, now)
    if not decision.changes_state and event is not Event.COOL:
        return _unchanged(nova, event, now, reason)
    streak, last_cool_until = nova.cool_streak, nova.last_cool_until
    until = None
    if event is Event.COOL:
        streak = safety.current_streak(streak, last_cool_until, now, config.safety)
        until = now + (request.for_s or safety.cooldown_seconds(streak, config.safety, rng))
        if request.escalate:
            until = max(until, request.until_at or 0, nova.until or 0)
        streak, last_cool_until = streak + 1, until
    elif event is Event.MEDITATE:
        until = now + (request.for_s or config.safety.meditation_s)
        if request.escalate:
            until = max(until, request.until_at or 0)
    waiting = decision.target in machine.WAITING_STATES
    hold = (request.limit or nova.limit_hold) if waiting else None
    store.save_transition(conn, nova, to_state=decision.target.value, event=event.value,
                          reason=reason, at=now, until=until, forced=forced,
                          cool_streak=streak, last_cool_until=last_cool_until,
                          event_id=event_id, limit_hold=hold)
    return TransitionResult(name, nova.state, decision.target.value, event.value, now, until,
                            reason, forced, recorded=True, event_id=event_id)


def _hold_in(conn, nova: store.NovaRow, request: _Request, now: float, event_id):
    until, event = request.until_at, Event.COOL
    if held_for_a_person(nova.limit_hold):
        return _unchanged(nova, event, now, request.reason)
    if nova.state == State.MEDITATING.value:
        if until > (nova.until or 0):
            store.extend_wait(conn, nova.id, until, request.limit)
        return _unchanged(nova, event, now, request.reason)
    cooling = nova.state == State.COOLING.value and (nova.until or 0) > now
    if cooling and nova.limit_hold and nova.until == until:
        return _unchanged(nova, event, now, request.reason)
    if cooling and not nova.limit_hold and nova.until >= until:
        return _unchanged(nova, event, now, request.reason)  # a longer cooldown stands
    decision = machine.decide(nova.name, nova.state, nova.until, event, now=now, force=True)
    store.save_transition(conn, nova, to_state=decision.target.value, event=event.value,
                          reason=request.reason, at=now, until=until, forced=False,
                          cool_streak=nova.cool_streak, last_cool_until=nova.last_cool_until,
                          event_id=event_id, limit_hold=request.limit, hold_only=True)
    return TransitionResult(nova.name, nova.state, decision.target.value, event.value, now,
                            until, request.reason, False, recorded=True, event_id=event_id)


def _escalated(conn, nova: store.NovaRow, config: Config, now: float, bang: bool) -> Event:
    if nova.state == State.MEDITATING.value:
        return Event.MEDITATE
    hour_ago = now - 3600
    cools, bangs = store.recent_cools_and_bangs(conn, nova.id, since=hour_ago)
    if safety.overheated(bangs=bangs + bang, cools=cools + 1, cfg=config.safety):
        return Event.MEDITATE
    return Event.COOL


def _unchanged(nova: store.NovaRow, event: Event, now: float, reason: str | None):
    return TransitionResult(nova.name, nova.state, nova.state, event.value, now, nova.until,
                            reason, False, recorded=False)


def _wait_over(nova: store.NovaRow, now: float) -> bool:
    return nova.until is None or nova.until <= now


def status(home: Home, config: Config, name: str | None = None) -> list[dict[str, Any]]:
    """Every Nova's state (or one Nova's), as the stable `status --json` objects."""
    return [nova_json(row) for row in nova_rows(home, config, name)]


def nova_rows(home: Home, config: Config, name: str | None = None) -> list[store.NovaRow]:
    """Every Nova's row (or one Nova's: NovaNotFound when there is none)."""
    with store.open_store(home, config.db.lock_timeout_s) as db:
        if name is None:
            return db.read(store.load_novas)
        return [db.read(lambda conn: store.nova_named(conn, check_name(name)))]


def nova_json(row: store.NovaRow) -> dict[str, Any]:
    return {"nova": row.name, "state": row.state, "since": format_time(row.since),
            "until": format_time(row.until), "reason": row.reason,
            "personality": row.personality, "account": row.account,
            "cool_streak": row.cool_streak, "limit_hold": row.limit_hold}


def add(home: Home, config: Config, name: str, personality: str | None = None,
        now: float | None = None, account: str | None = None,
        command: list[str] | None = None) -> dict[str, Any]:
    from torchsm import personalities

    check_name(name)
    chosen = personality or personalities.default_for(name, config.personalities)
    personalities.get_personality(chosen, config.personalities)
    account = check_account(DEFAULT_ACCOUNT if account is None else account)
    now = time.time() if now is None else now
    state = machine.INITIAL_STATE.value
    added = streams.Entry.new("nova.added", name, {"personality": chosen, "account": account,
                                                  "state": state, "status": state.upper()}, now)

    def insert(conn) -> None:
        if store.load_nova(conn, name) is not None:
            raise NovaExists(name)
        conn.execute("INSERT INTO novas (name, personality, state, since, created_at,"
                     " cool_streak, account) VALUES (?, ?, ?, ?, ?, 0, ?)",
                     (name, chosen, state, now, now, account))
        if command:
            store.set_nova_command(conn, conn.execute("SELECT last_insert_rowid()")
                                   .fetchone()[0], command)
        outbox.put(conn, config, streams.OPS_STREAM, added)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        db.write(insert)
    outbox.deliver(home, config)
    return show(home, config, name)


def command_words(text: str) -> list[str] | None:
    """`--command TEXT` as the words a Nova keeps: split as a shell would (quotes, no
    expansion); '' clears it (None). A text with no word is refused: it says nothing to
    run, and a fleet would start nothing."""
    import shlex

    if text == "":
        return None
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise AgentCommandError(f"cannot split the command {text!r}: {exc}") from None
    if not words or not words[0]:
        raise AgentCommandError(f"the command {text!r} names no program: give one, or '' "
                                "to keep none")
    return words


def set_command(home: Home, config: Config, name: str,
                words: list[str] | None) -> dict[str, Any]:
    """Keep `words` as Nova `name`'s own agent command (None: keep none); it wins over
    the one given to `torchsm up`. Prints as `show`."""
    check_name(name)

    def keep(conn) -> None:
        store.set_nova_command(conn, store.nova_named(conn, name).id, words)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        db.write(keep)
    return show(home, config, name)


def remove(home: Home, config: Config, name: str) -> None:
    """Delete a Nova and its history (its messages stay: they belong to both ends)."""
    check_name(name)
    # status '' removes nova.status.NAME
    removed = streams.Entry.new("nova.removed", name, {"status": ""}, time.time())

    def delete(conn) -> None:
        nova = store.nova_named(conn, name)
        conn.execute("DELETE FROM history WHERE nova_id = ?", (nova.id,))
        conn.execute("DELETE FROM novas WHERE id = ?", (nova.id,))
        outbox.put(conn, config, streams.OPS_STREAM, removed)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        db.write(delete)
    outbox.deliver(home, config)


def show(home: Home, config: Config, name: str) -> dict[str, Any]:
    """A Nova's state, its personality in full, and how many transitions it has made."""
    from torchsm import personalities

    check_name(name)

    def read(conn) -> tuple[store.NovaRow, int, list[str] | None]:
        nova = store.nova_named(conn, name)
        count = conn.execute("SELECT count(*) FROM history WHERE nova_id = ?",
                             (nova.id,)).fetchone()[0]
        return nova, count, store.nova_command(conn, name)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        row, count, command = db.read(read)
    known = personalities.all_personalities(config.personalities)
    profile = known.get(row.personality)
    return {**nova_json(row), "created_at": format_time(row.created_at),
            "transitions": count, "command": command,
            "personality_profile": profile.as_dict() if profile else None}


def history(home: Home, config: Config, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The last `limit` accepted transitions, oldest first."""
    check_name(name)

    def read(conn) -> list[tuple]:
        nova = store.nova_named(conn, name)
        return conn.execute("SELECT from_state, to_state, event, reason, at, until, forced"
                            " FROM history WHERE nova_id = ? ORDER BY id DESC LIMIT ?",
                            (nova.id, limit)).fetchall()

    with store.open_store(home, config.db.lock_timeout_s) as db:
        rows = db.read(read)
    return [{"nova": name, "from": from_state, "to": to_state, "event": event,
             "reason": reason, "at": format_time(at), "until": format_time(until),
             "forced": bool(forced)}
            for from_state, to_state, event, reason, at, until, forced in reversed(rows)]
