"""Applying the one answer to an ending (torchsm.endings.responses) once, recorded under the
session it answers (`sessions.answer`).

The StopFailure hook and the supervisor's settle step both call `answer`. The first to
record an answer that acts (a cooldown, a hold, a meditation) applies it; the other finds
the session answered and does nothing, whatever the clocks say. A hook outside any
supervised session has no session to record under: it applies its answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from torchsm import novas
from torchsm.alerts import account_alert
from torchsm.config import Config, Home
from torchsm.endings.responses import ACTING, Ending, Kind, Response, Situation, respond
from torchsm.errors import TransitionRefused
from torchsm.storage import store
from torchsm.usage import ledger, limits, pacing

# an answer replaces one that did less: a backoff replaces nothing, an act either
_RANK = {None: 0, Kind.NOTHING: 1, Kind.BACK_OFF: 2, **{kind: 3 for kind in ACTING}}


@dataclass(frozen=True)
class Applied:
    response: Response
    transition: novas.TransitionResult | None = None  # what it did to the Nova, if anything
    held: pacing.Verdict | None = None  # HOLD_ACCOUNT: the account's verdict now
    warning: str | None = None  # about what the provider said (a reset capped, ...)


def session_answer(conn, session_id: int | None, nova_id: int) -> Kind | None:
    """How session `session_id` of the Nova was answered so far, if it was."""
    row = _answer_row(conn, session_id, nova_id)
    return _kind(row[0]) if row else None


def claim(conn, session_id: int | None, nova_id: int, kind: Kind, now: float) -> bool:
    """Record `kind` as the session's answer unless the session was answered with more;
    False when an answer that acts came first (this one must not be applied too). With
    no session of the Nova to record under, True."""
    row = _answer_row(conn, session_id, nova_id)
    if row is None:
        return True
    before = _kind(row[0])
    if _RANK[kind] > _RANK[before]:
        ledger.record_answer(conn, session_id, kind.value, now)
    return before not in ACTING


def _answer_row(conn, session_id: int | None, nova_id: int) -> tuple | None:
    if session_id is None:
        return None
    return ledger.answer_of(conn, session_id, nova_id)


def answer(home: Home, config: Config, db: store.Store, nova: store.NovaRow, ending: Ending,
           situation: Situation, now: float, rng: random.Random | None = None) -> Applied:
    """Decide the answer to `ending`, record it under its session and, when this process
    is the first to answer so, apply it. A cooldown commits with its answer (applied
    twice it would count twice toward meditation); a hold or a meditation for a person
    is applied before its answer is recorded, so a crash between the two leaves it to be
    applied again, which changes nothing."""
    response = respond(ending, situation)
    def record(conn) -> bool:
        return claim(conn, ending.session_id, nova.id, response.kind, now)

    if not response.acts:
        db.write(record)
        return Applied(response)
    if response.kind in (Kind.COOL, Kind.NO_PROGRESS):
        cooled = novas.safety_cool(home, config, nova.name, reason=response.why,
                                   bang=response.bang, now=now, rng=rng, unless_answered=record)
        return Applied(response, cooled) if cooled else _answered_already()
    if db.read(lambda conn: session_answer(conn, ending.session_id, nova.id)) in ACTING:
        return _answered_already()
    applied = _apply_idempotent(home, config, db, nova, ending, response, now)
    db.write(record)
    return applied


def _answered_already() -> Applied:
    return Applied(Response(Kind.NOTHING, "answered already"))


def _apply_idempotent(home: Home, config: Config, db: store.Store, nova: store.NovaRow,
                      ending: Ending, response: Response, now: float) -> Applied:
    if response.kind is Kind.HOLD_ACCOUNT:
        found, warning = limits.refused(db, home, config, nova, ending.text, now)
        return Applied(response, held=found, warning=warning)
    return Applied(response, _meditate_for_a_person(home, config, db, nova, response, now))


def _meditate_for_a_person(home: Home, config: Config, db: store.Store, nova: store.NovaRow,
                           response: Response, now: float) -> novas.TransitionResult | None:
    """The alert, then the meditation (refused while compacting: the alert stands)."""
    kind, message = response.alert
    db.write(lambda conn: account_alert.raise_for(conn, nova=nova.name, at=now, kind=kind,
                                           message=message))
    try:
        return novas.meditate_for_a_person(home, config, nova.name, reason=response.why,
                                           now=now)
    except TransitionRefused:
        return None


def _kind(value: str | None) -> Kind | None:
    try:
        return Kind(value) if value else None
    except ValueError:  # written by a newer torchsm: it answered
        return Kind.COOL
