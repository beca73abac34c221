"""The one answer to "how did it end?" (torchsm.endings.responses) as a table: ending x situation ->
response, like the state machine's; and how an answer is recorded under its session
(torchsm.endings.answers.claim) on a real database."""

import pytest

from torchsm import novas
from torchsm.config import load_config
from torchsm.endings import answers
from torchsm.endings.breaker import Ending as SessionEnding
from torchsm.endings.responses import (ACCOUNT_ERROR_TYPES, Ending, Heard, Kind, Situation,
                                       respond, turn_ending)
from torchsm.errors import DatabaseLocked
from torchsm.outcomes import Outcome
from torchsm.storage import store
from torchsm.usage import ledger

N = 3
STUCK = tuple(SessionEnding("failed", "exit status 1", None, None, None) for _ in range(N))
MOVING = (SessionEnding("ok", None, None, "a", "done"), SessionEnding("failed", "x", None, None,
                                                                      None))

ENDINGS = {
    # what the StopFailure hook hears (its `error`)
    "turn rate_limit": turn_ending("rate_limit", "You've hit your 5-hour limit", 7),
    "turn overloaded": turn_ending("overloaded", "API Error: 529 overloaded_error", 7),
    "turn billing_error": turn_ending("billing_error", "Credit balance too low", 7),
    "turn permission_error": turn_ending("permission_error", "API Error: 403", 7),
    "turn server_error": turn_ending("server_error", "API Error: 500", 7),
    # what the supervisor judges of a whole session (outcome.judge)
    **{f"session {o.value}": Ending(Heard.SESSION, o, "how it went", session_id=7)
       for o in Outcome},
}
SITUATIONS = {
    "fresh": Situation(None, MOVING, N),
    "stuck": Situation(None, STUCK, N),  # the last N sessions ended the same way
    "backed off": Situation(Kind.BACK_OFF, MOVING, N),  # the hook heard a 529 in it
    "answered": Situation(Kind.MEDITATE_FOR_A_PERSON, STUCK, N),  # the hook acted first
    "held": Situation(None, STUCK, N, held_for_limit=True),  # a usage stop heard meanwhile
}
NOTHING, BACK_OFF, COOL, HOLD, PERSON, STUCK_ = (
    Kind.NOTHING, Kind.BACK_OFF, Kind.COOL, Kind.HOLD_ACCOUNT, Kind.MEDITATE_FOR_A_PERSON,
    Kind.NO_PROGRESS)

# ending -> the response's kind in each situation: fresh, stuck, backed off, answered, held
TABLE = {
    "turn rate_limit": (HOLD, HOLD, HOLD, NOTHING, HOLD),
    "turn overloaded": (BACK_OFF, BACK_OFF, BACK_OFF, BACK_OFF, BACK_OFF),
    "turn billing_error": (PERSON, PERSON, PERSON, NOTHING, PERSON),
    "turn permission_error": (PERSON, PERSON, PERSON, NOTHING, PERSON),
    "turn server_error": (NOTHING, NOTHING, NOTHING, NOTHING, NOTHING),  # the session's end
    "session ok": (NOTHING, STUCK_, NOTHING, NOTHING, NOTHING),
    "session failed": (COOL, STUCK_, COOL, NOTHING, NOTHING),
    "session crashed": (COOL, STUCK_, COOL, NOTHING, NOTHING),
    "session timeout": (COOL, STUCK_, COOL, NOTHING, NOTHING),
    "session stopped": (NOTHING, NOTHING, NOTHING, NOTHING, NOTHING),
    "session rate_limited": (HOLD, HOLD, HOLD, NOTHING, HOLD),
    "session overloaded": (BACK_OFF, BACK_OFF, BACK_OFF, BACK_OFF, BACK_OFF),
    "session account_error": (PERSON, PERSON, PERSON, NOTHING, PERSON),
}
CASES = [(ending, situation, kinds[i]) for ending, kinds in TABLE.items()
         for i, situation in enumerate(SITUATIONS)]


@pytest.mark.parametrize("ending, situation, kind", CASES)
def test_the_answer_table(ending, situation, kind):
    assert respond(ENDINGS[ending], SITUATIONS[situation]).kind is kind


def test_every_ending_and_situation_is_in_the_table():
    assert set(TABLE) == set(ENDINGS)
    assert all(len(kinds) == len(SITUATIONS) for kinds in TABLE.values())


@pytest.mark.parametrize("error", ACCOUNT_ERROR_TYPES)
def test_every_account_error_the_hook_hears_is_the_supervisors_account_error(error):
    assert turn_ending(error, "").outcome is Outcome.ACCOUNT


def test_a_crash_cools_as_a_bang_and_a_plain_failure_does_not():
    fresh, stuck = SITUATIONS["fresh"], SITUATIONS["stuck"]
    assert respond(ENDINGS["session crashed"], fresh).bang
    assert respond(ENDINGS["session crashed"], stuck).bang
    assert not respond(ENDINGS["session failed"], fresh).bang


def test_what_the_answers_say():
    fresh = SITUATIONS["fresh"]
    hook = respond(ENDINGS["turn billing_error"], fresh)
    assert hook.why == "billing_error: Credit balance too low"
    assert hook.alert == ("billing_error", "Credit balance too low")
    session = respond(ENDINGS["session account_error"], fresh)
    assert session.why == "session 7 account_error: how it went"
    assert session.alert == ("account_error", session.why)
    assert respond(ENDINGS["session failed"], SITUATIONS["stuck"]).why.startswith(
        "no progress: 3 sessions in a row ended with the same error")
    assert "not a limit" in respond(ENDINGS["turn overloaded"], fresh).why
    assert respond(ENDINGS["session failed"], SITUATIONS["answered"]).why == (
        "answered already (meditate_for_a_person)")


def test_the_breaker_off_never_says_no_progress():
    off = Situation(None, STUCK, 0)
    assert respond(ENDINGS["session ok"], off).kind is NOTHING
    assert respond(ENDINGS["session failed"], off).kind is COOL


# --- recording an answer under its session ----------------------------------------------

@pytest.fixture
def session(home):
    """(store, nova, session id): a Nova with one running session."""
    config = load_config(home)
    novas.add(home, config, "torch")
    db = store.open_store(home)
    nova = db.read(lambda conn: store.nova_named(conn, "torch"))
    sid = db.write(lambda conn: ledger.start(conn, nova_id=nova.id, kind="item", prompt="p",
                                             item_id=None, signal_id=None, at=1.0))
    yield db, nova, sid
    db.close()


def claims(db, nova, sid, *kinds) -> list[bool]:
    return [db.write(lambda conn: answers.claim(conn, sid, nova.id, kind, 2.0)) for kind in kinds]


def answer_of(db, nova, sid):
    return db.read(lambda conn: answers.session_answer(conn, sid, nova.id))


def test_the_first_answer_that_acts_is_the_only_one_applied(session):
    db, nova, sid = session
    assert answer_of(db, nova, sid) is None
    assert claims(db, nova, sid, NOTHING, BACK_OFF, NOTHING, PERSON, COOL, HOLD) == [
        True, True, True, True, False, False]
    assert answer_of(db, nova, sid) is PERSON


def test_a_backoff_is_not_forgotten_for_a_later_nothing(session):
    db, nova, sid = session
    claims(db, nova, sid, BACK_OFF, NOTHING)
    assert answer_of(db, nova, sid) is BACK_OFF


def test_without_a_session_of_the_nova_there_is_nothing_to_record_under(session):
    db, nova, sid = session
    assert claims(db, nova, None, PERSON, PERSON) == [True, True]
    assert claims(db, nova, sid + 1, PERSON, PERSON) == [True, True]  # not a session of it
    assert answer_of(db, nova, sid) is None


def test_an_answer_that_could_not_be_applied_is_not_recorded(session, home, monkeypatch):
    """The answer and the cooldown it applies commit together: a cooldown that fails (a
    locked database, a crash) leaves the session unanswered, so the next try, by either
    process, still cools the Nova."""
    db, nova, sid = session
    config = load_config(home)
    failed = Ending(Heard.SESSION, Outcome.FAILED, "exit status 1", session_id=sid)
    real = novas._transition_in

    def locked(*args, **kwargs):
        raise DatabaseLocked()

    monkeypatch.setattr(novas, "_transition_in", locked)
    with pytest.raises(DatabaseLocked):
        answers.answer(home, config, db, nova, failed, Situation(), now=3.0)
    assert answer_of(db, nova, sid) is None
    monkeypatch.setattr(novas, "_transition_in", real)
    applied = answers.answer(home, config, db, nova, failed, Situation(), now=4.0)
    assert applied.response.kind is COOL and applied.transition.target == "cooling"
    assert answer_of(db, nova, sid) is COOL
