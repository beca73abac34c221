"""One answer to "how did it end?": the pure decision of what a failed turn or a finished
session means for its Nova.

Two processes hear endings: the StopFailure hook hears a turn end on an API error, and the
supervisor's settle step judges the whole session when its agent exits (torchsm.endings.outcome).
Both describe what they heard as an `Ending`, read the facts once into a `Situation`, and
ask `respond`; torchsm.endings.answers applies the `Response` once and records it under the
session it answers, so whichever process hears an ending first answers it, and the other
finds the session answered. The answers are the contract's:

- an account error (billing, authentication, permission): meditate until a person looks,
  with an alert;
- a usage limit or a 429: hold every Nova of the account until the reset plus the margin;
- a 529 (overloaded): a short backoff, not a limit: no cooldown, nothing counted toward
  meditation;
- any other failed session: a cooldown with backoff (a crash is a bang), and when the last
  N sessions ended the same way, the no-progress breaker's cooldown instead; nothing when
  the Nova is held for its account's limit already;
- a clean session: nothing, unless it trips the no-progress breaker;
- a turn's other API error (`server_error`, `max_output_tokens`, ...): nothing yet: the
  session's end answers it.

Pure, no I/O, and built on the stdlib alone (and torchsm.endings.breaker): the StopFailure hook
imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from torchsm.endings import breaker
from torchsm.outcomes import Outcome


class Heard(str, Enum):
    TURN = "turn"  # by the StopFailure hook: a turn ended on an API error
    SESSION = "session"  # by the supervisor: the agent exited (outcome.judge)


class Kind(str, Enum):
    """What is done about an ending (stored as `sessions.answer`)."""

    NOTHING = "nothing"
    BACK_OFF = "back_off"  # the supervisor waits a little before the next start
    COOL = "cool"  # novas.safety_cool: backoff, toward meditation
    HOLD_ACCOUNT = "hold_account"  # every Nova of the account until the reset (limits)
    MEDITATE_FOR_A_PERSON = "meditate_for_a_person"  # with an alert; a person lifts it
    NO_PROGRESS = "no_progress"  # the breaker: safety_cool, with the reason that says so


# The one list of the provider's error types that a retry cannot fix (the StopFailure
# hook's `error`, the result's `api_error_type`): the account itself is refused.
ACCOUNT_ERROR_TYPES = ("billing_error", "authentication_error", "authentication_failed",
                       "permission_error")
# The StopFailure `error` values with an answer of their own; others are failed turns.
TURN_OUTCOMES = {"rate_limit": Outcome.RATE_LIMITED, "overloaded": Outcome.OVERLOADED,
                 **{error: Outcome.ACCOUNT for error in ACCOUNT_ERROR_TYPES}}
# Answers that change the Nova: a session answered so is not answered again. A backoff or
# nothing changes no state, so a worse ending heard later in the session still counts.
ACTING = frozenset({Kind.COOL, Kind.HOLD_ACCOUNT, Kind.MEDITATE_FOR_A_PERSON, Kind.NO_PROGRESS})
WHY_WIDTH = 500


@dataclass(frozen=True)
class Ending:
    """What ended and how, as the process that heard it describes it."""

    heard: Heard
    outcome: Outcome
    text: str = ""  # what was said: the turn's last message, or the session's error
    error_type: str | None = None  # the StopFailure hook's `error`
    session_id: int | None = None  # the ledger's session it belongs to, when supervised


@dataclass(frozen=True)
class Situation:
    """The facts the decision looks at, read once by the caller."""

    answered: Kind | None = None  # the session's answer so far (whoever gave it)
    recent: tuple[breaker.Ending, ...] = ()  # the latest finished sessions, newest first
    no_progress_after: int = 0  # the breaker's N (0: off)
    held_for_limit: bool = False  # the Nova waits for its account's reset (limits.hold)


@dataclass(frozen=True)
class Response:
    kind: Kind
    why: str
    bang: bool = False  # the cooldown counts as a bang toward meditation (a crash)
    alert: tuple[str, str] | None = None  # (kind, message) of the alert to raise

    @property
    def acts(self) -> bool:
        return self.kind in ACTING


def turn_ending(error: str, text: str, session_id: int | None = None) -> Ending:
    """What a StopFailure hook heard: its `error` and the turn's last message."""
    return Ending(Heard.TURN, TURN_OUTCOMES.get(error, Outcome.FAILED), text, error,
                  session_id)


def respond(ending: Ending, situation: Situation) -> Response:
    """The one answer to `ending`: nothing when the session was answered already (by
    whichever process heard it first), else the contract's answer to how it ended."""
    answer = _answer(ending, situation)
    if answer.acts and situation.answered in ACTING:
        return Response(Kind.NOTHING, f"answered already ({situation.answered.value})")
    return answer


def _answer(ending: Ending, situation: Situation) -> Response:
    why = _why(ending)
    if ending.outcome is Outcome.ACCOUNT:
        return Response(Kind.MEDITATE_FOR_A_PERSON, why, alert=_alert(ending, why))
    if ending.outcome is Outcome.RATE_LIMITED:
        return Response(Kind.HOLD_ACCOUNT, why)
    if ending.outcome is Outcome.OVERLOADED:
        return Response(Kind.BACK_OFF, f"{why}: a short backoff, not a limit")
    if ending.outcome is Outcome.STOPPED:
        return Response(Kind.NOTHING, why)
    if ending.heard is Heard.TURN:
        return Response(Kind.NOTHING, f"{why}: the session's end answers it")
    return _session_answer(ending, situation, why)


def _session_answer(ending: Ending, situation: Situation, why: str) -> Response:
    """A session that ended cleanly or failed on its own: the breaker first. A Nova held
    for its account's limit (heard while the session ran) waits for the reset anyway: a
    cooldown on top would only count toward meditation."""
    crashed = ending.outcome is Outcome.CRASHED
    if situation.held_for_limit:
        return Response(Kind.NOTHING, f"{why}: held for the account's limit already")
    stuck = breaker.no_progress(list(situation.recent), situation.no_progress_after)
    if stuck is not None:
        return Response(Kind.NO_PROGRESS, stuck, bang=crashed)
    if ending.outcome is Outcome.OK:
        return Response(Kind.NOTHING, why)
    return Response(Kind.COOL, why, bang=crashed)


def _why(ending: Ending) -> str:
    if ending.heard is Heard.TURN:
        error = ending.error_type or ending.outcome.value
        return f"{error}: {ending.text or error}"[:WHY_WIDTH]
    return f"session {ending.session_id} {ending.outcome.value}: {ending.text}"[:WHY_WIDTH]


def _alert(ending: Ending, why: str) -> tuple[str, str]:
    """A turn's alert names the provider's error and says what it said; a session's says
    how the session ended."""
    if ending.heard is Heard.TURN:
        return ending.error_type or ending.outcome.value, ending.text or ending.outcome.value
    return ending.outcome.value, why
