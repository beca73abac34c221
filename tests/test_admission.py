"""Admission: whether a session may start now. The supervisor asks before it waits and
again in the transaction that records the start, so what changes in between (a person's
cooldown, a move to an account at its limit) never lets a session through.

The race is reached by doing another process's part while the supervisor claims its
item: the one moment between the check and the record that a test can hold still."""

import dataclasses
import datetime as dt

import pytest

from supervisor_support import T0, FakeClock, config_with, sessions, supervisor
from torchsm import novas
from torchsm.clock import format_time
from torchsm.storage import store
from torchsm.supervisor import admission, rhythm
from torchsm.supervisor.loop import Wait
from torchsm.usage import accounts, ledger, pacing
from torchsm.work import work_queue

BASE = """
redis_url = "off"
"""


@pytest.fixture
def nova_home(home):
    novas.add(home, config_with(BASE), "torch", now=T0 - 7200)
    return home


def add_item(home, config) -> int:
    with work_queue.open_queue(home, config) as q:
        return q.add("task", now=T0 - 60).id


def while_claiming(monkeypatch, meanwhile) -> None:
    """Run `meanwhile` (another process's doing) right after the supervisor's claim."""
    claim = work_queue.WorkQueue.try_claim

    def claim_then(self, *args, **kwargs):
        item = claim(self, *args, **kwargs)
        meanwhile()
        return item

    monkeypatch.setattr(work_queue.WorkQueue, "try_claim", claim_then)


def item_status(home, config, item_id):
    with work_queue.open_queue(home, config) as q:
        [item] = [i for i in q.items(now=T0) if i.id == item_id]
    return item.status.value, item.attempts


def test_a_cooldown_set_while_the_work_is_taken_starts_no_session(nova_home, monkeypatch):
    config = config_with(BASE)
    item = add_item(nova_home, config)
    while_claiming(monkeypatch, lambda: novas.transition(
        nova_home, config, "torch", "cool", for_s=600, reason="a person", now=T0))
    step = supervisor(nova_home, config, ["true"], FakeClock()).step(T0)
    assert sessions(nova_home) == []
    assert item_status(nova_home, config, item) == ("pending", 0)  # back, not counted
    assert isinstance(step, Wait) and step.until == T0 + 600 and "cooling" in step.why


def test_a_move_to_an_account_at_its_limit_while_the_work_is_taken_starts_no_session(
        nova_home, monkeypatch):
    config = config_with(BASE)
    item = add_item(nova_home, config)
    reset = T0 + 1800
    with store.open_store(nova_home) as db:
        db.write(lambda conn: accounts.learn(conn, "held", [accounts.WindowRow(
            "five_hour", "rejected", 1.0, reset, T0 - 10)], T0 - 10))
    while_claiming(monkeypatch, lambda: accounts.move_nova(
        nova_home, config, "torch", "held", now=T0))
    step = supervisor(nova_home, config, ["true"], FakeClock()).step(T0)
    assert sessions(nova_home) == []
    assert item_status(nova_home, config, item) == ("pending", 0)
    assert isinstance(step, Wait) and step.until == reset + config.usage.reset_margin_s


def another_nova_starts(home, config, name="echo"):
    """Another Nova of the account (another supervisor) records a start at T0."""
    def start(conn):
        nova_id = store.nova_named(conn, name).id
        return ledger.start(conn, nova_id=nova_id, kind="item", prompt="p", item_id=None,
                            signal_id=None, at=T0)

    with store.open_store(home) as db:
        db.write(start)


def test_another_novas_start_while_the_work_is_taken_staggers_this_one(nova_home, monkeypatch):
    config = config_with(BASE + "[usage]\nstart_stagger_s = 5\n")
    novas.add(nova_home, config, "echo", now=T0 - 7200)
    item = add_item(nova_home, config)
    while_claiming(monkeypatch, lambda: another_nova_starts(nova_home, config))
    step = supervisor(nova_home, config, ["true"], FakeClock()).step(T0)
    assert len(sessions(nova_home)) == 1  # echo's only
    assert item_status(nova_home, config, item) == ("pending", 0)
    assert isinstance(step, Wait) and step.until == T0 + 5 and "start stagger" in step.why
    assert not step.critical_cuts


def test_the_last_place_under_the_cap_taken_meanwhile_starts_no_session(nova_home,
                                                                         monkeypatch):
    config = config_with(BASE + "[accounts.default]\nmax_running_sessions = 1\n"
                                "start_stagger_s = 0\n")
    novas.add(nova_home, config, "echo", now=T0 - 7200)
    item = add_item(nova_home, config)
    while_claiming(monkeypatch, lambda: another_nova_starts(nova_home, config))
    step = supervisor(nova_home, config, ["true"], FakeClock()).step(T0)
    assert len(sessions(nova_home)) == 1
    assert item_status(nova_home, config, item) == ("pending", 0)
    assert isinstance(step, Wait) and step.until == T0 + admission.CAP_LOOK_AGAIN_S
    assert step.why.startswith("1 of 1 sessions of account default running")


def test_a_session_whose_agent_ended_holds_no_place(nova_home):
    """A row still `running` whose recorded agent is gone (its supervisor is settling it,
    or died) is not counted; one not launched yet is."""
    config = config_with(BASE + "[usage]\nmax_running_sessions = 1\nstart_stagger_s = 0\n")
    novas.add(nova_home, config, "echo", now=T0 - 7200)
    another_nova_starts(nova_home, config)
    request = admission.Request("item", False)

    def refusal():
        with store.open_store(nova_home) as db:
            return db.read(lambda conn: admission.check(conn, config, "torch", request,
                                                        T0 + 1))[1]

    assert refusal().rule is admission.Rule.RUNNING_SESSIONS
    accounts.move_nova(nova_home, config, "echo", "other", now=T0)
    assert refusal() is None  # another account's session holds no place on this one
    accounts.move_nova(nova_home, config, "echo", "default", now=T0)
    assert refusal().rule is admission.Rule.RUNNING_SESSIONS
    with store.open_store(nova_home) as db:  # no pid reaches 2**22 (Linux's pid_max)
        db.write(lambda conn: ledger.record_agent(conn, 1, 2**22 + 1, 12345))
    assert refusal() is None


# --- the decision as a table ----------------------------------------------------------------

NOW = 1_000_000.0
GAP = rhythm.Gap(floor_s=25.0, rest_s=100.0, why="torch (sustained) rests 25s")
LOCAL_HOUR = dt.datetime.fromtimestamp(NOW).hour
QUIET = f"{LOCAL_HOUR:02d}:00-{(LOCAL_HOUR + 2) % 24:02d}:00"  # NOW is in them
QUIET_END = rhythm.after_quiet_hours(NOW, QUIET)
STOP = pacing.Verdict("stop", NOW + 900, "usage limit: five_hour 96%, resets then", 1.0)
PACE = pacing.Verdict("pace", NOW + 40, "usage five_hour at 85%: ...", 0.5)
HOLD = novas.ACCOUNT_HOLD + "billing_error"


def nova(state="working", until=None, limit_hold=None) -> store.NovaRow:
    return store.NovaRow(1, "torch", "torch", state, NOW - 5000, until, "why", 0, None,
                         NOW - 9000, limit_hold)


def facts(**changes) -> admission.Facts:
    """A Nova that may start: working, budgets with room, the rhythm's rest over."""
    base = admission.Facts(nova(), "item", False, True, pacing.OK, (NOW - 600,), 12,
                           ((NOW - 600, 0.5),), 0.0, GAP, NOW - 200, "")
    return dataclasses.replace(base, **changes)


# (situation, facts, the rule that refuses (None: may start), until)
TABLE = [
    ("nothing in the way", facts(), None, None),
    ("cooling", facts(nova=nova("cooling", NOW + 60)), "waiting", NOW + 60),
    ("meditating", facts(nova=nova("meditating", NOW + 60)), "waiting", NOW + 60),
    ("a cooldown that is over", facts(nova=nova("cooling", NOW - 1)), "not working", NOW),
    ("a person's hold, its wait over",
     facts(nova=nova("meditating", NOW - 1, HOLD)), "held", None),
    ("a limit hold without auto_resume", facts(nova=nova("cooling", NOW - 1, "limit"),
                                               auto_resume=False), "held", None),
    ("a limit hold with auto_resume", facts(nova=nova("cooling", NOW - 1, "limit")),
     "not working", NOW),
    ("a person's hold still waiting",
     facts(nova=nova("meditating", NOW + 60, HOLD)), "waiting", NOW + 60),
    ("dreaming", facts(nova=nova("dreaming")), "not working", NOW),
    ("compacting", facts(nova=nova("compacting")), "not working", NOW),
    ("the account at its limit", facts(usage=STOP), "usage limit", NOW + 900),
    ("a limit beats a spent budget", facts(usage=STOP, session_limit=1), "usage limit",
     NOW + 900),
    ("the hour's sessions spent", facts(session_limit=1), "session budget", NOW - 600 + 3600),
    ("a start an hour ago is out of the hour",
     facts(starts=(NOW - 3600,), session_limit=1), None, None),
    ("the day's cost spent", facts(cost_limit=0.5), "cost budget", NOW - 600 + 86400),
    ("the day's cost below the budget", facts(cost_limit=0.51), None, None),
    ("a spent hour before a spent day", facts(session_limit=1, cost_limit=0.5),
     "session budget", NOW - 600 + 3600),
    ("an overload's backoff", facts(not_before=NOW + 5), "overload", NOW + 5),
    ("an overload's backoff over", facts(not_before=NOW), None, None),
    ("pacing", facts(usage=PACE), "usage pacing", NOW + 40),
    ("pacing before the rhythm", facts(usage=PACE, last_end=NOW), "usage pacing", NOW + 40),
    ("ordinary work rests", facts(last_end=NOW - 50), "rhythm", NOW + 50),
    ("a critical wake waits for the floor only",
     facts(last_end=NOW - 10, kind="wake", critical=True), "rhythm", NOW + 15),
    ("a critical wake past the floor", facts(last_end=NOW - 50, kind="wake", critical=True),
     None, None),
    ("a first session has no gap", facts(last_end=None, starts=()), None, None),
    ("quiet hours hold ordinary work", facts(quiet_hours=QUIET), "quiet hours", QUIET_END),
    ("quiet hours hold a restart", facts(quiet_hours=QUIET, kind="restart"), "quiet hours",
     QUIET_END),
    ("a due wake had its quiet hours", facts(quiet_hours=QUIET, kind="wake"), None, None),
    ("the rhythm before quiet hours", facts(quiet_hours=QUIET, last_end=NOW - 50), "rhythm",
     NOW + 50),
    # the account's sessions at once, and the spacing of their starts
    ("the account's sessions at the cap", facts(running_on_account=2, running_cap=2),
     "running sessions", NOW + admission.CAP_LOOK_AGAIN_S),
    ("past the cap (a lowered cap)", facts(running_on_account=3, running_cap=2),
     "running sessions", NOW + admission.CAP_LOOK_AGAIN_S),
    ("a place left under the cap", facts(running_on_account=1, running_cap=2), None, None),
    ("no cap", facts(running_on_account=50, running_cap=0), None, None),
    ("a critical wake waits for a place too",
     facts(running_on_account=2, running_cap=2, kind="wake", critical=True),
     "running sessions", NOW + admission.CAP_LOOK_AGAIN_S),
    ("a limit before the cap", facts(usage=STOP, running_on_account=2, running_cap=2),
     "usage limit", NOW + 900),
    ("the rhythm before the cap", facts(last_end=NOW - 50, running_on_account=2,
                                        running_cap=2), "rhythm", NOW + 50),
    ("another Nova of the account started within the stagger",
     facts(others_starts=(NOW - 2,), stagger_s=5), "start stagger", NOW + 3),
    ("... a whole stagger ago", facts(others_starts=(NOW - 5,), stagger_s=5), None, None),
    ("the stagger off", facts(others_starts=(NOW,), stagger_s=0), None, None),
    ("no other start on the account", facts(others_starts=(), stagger_s=5), None,
     None),
    ("a critical wake is staggered too",
     facts(others_starts=(NOW - 1,), stagger_s=5, kind="wake", critical=True),
     "start stagger", NOW + 4),
    # the stagger's turns: every start counts, the Nova's own too (before: the others'
    # only, so a Nova starting back to back held the others off), oldest own start first
    ("the Nova's own start staggers it too", facts(starts=(NOW - 2,), stagger_s=5),
     "start stagger", NOW + 3),
    ("... but not a Nova alone on its account (no other Nova here, no other host): its"
     " rhythm spaces its starts",
     facts(starts=(NOW - 2,), stagger_s=5, shares_account=False), None, None),
    ("the next slot is the turn of a Nova that started before this one",
     facts(starts=(NOW - 1,), others_starts=(NOW - 3,), stagger_s=5), "start stagger",
     NOW + 9),
    ("this Nova's turn first: its own start is the older",
     facts(starts=(NOW - 6,), others_starts=(NOW - 1,), stagger_s=5), "start stagger",
     NOW + 4),
    ("a turn not taken for a stagger per starter lapses",
     facts(starts=(NOW - 1,), others_starts=(NOW - 16,), stagger_s=5), "start stagger",
     NOW + 4),
    ("a Nova that never started has no one ahead of it",
     facts(starts=(), others_starts=(NOW - 4, NOW - 3), stagger_s=5), "start stagger",
     NOW + 2),
    ("the cap before the stagger", facts(running_on_account=2, running_cap=2,
                                         others_starts=(NOW - 1,), stagger_s=5),
     "running sessions", NOW + admission.CAP_LOOK_AGAIN_S),
    ("quiet hours before the stagger",
     facts(quiet_hours=QUIET, others_starts=(NOW - 1,), stagger_s=5), "quiet hours",
     QUIET_END),
]


@pytest.mark.parametrize("situation, given, rule, until", TABLE, ids=[t[0] for t in TABLE])
def test_why_not_table(situation, given, rule, until):
    refusal = admission.why_not(given, NOW)
    found = None if refusal is None else (refusal.rule.value, refusal.until)
    assert found == (None if rule is None else (rule, until))
    assert refusal is None or refusal.why


def test_refusals_say_why_in_words():
    def why(**changes):
        return admission.why_not(facts(**changes), NOW).why

    assert why(session_limit=1).startswith("session budget spent: 1 of 1 in the last hour")
    assert why(cost_limit=0.5).startswith("cost budget spent: $0.50 of $0.50 in the last 24 h")
    assert why(usage=STOP) == STOP.why
    assert why(usage=PACE) == f"usage pacing: {PACE.why}"
    assert why(last_end=NOW) == f"rhythm: {GAP.why}"
    assert why(quiet_hours=QUIET).startswith(f"quiet hours ({QUIET}) until ")
    assert "`torchsm transition torch work` resumes it" in why(
        nova=nova("meditating", NOW - 1, HOLD))
    assert why(running_on_account=2, running_cap=2) == (
        "2 of 2 sessions of account default running (max_running_sessions)")
    assert why(others_starts=(NOW - 2,), stagger_s=5) == (
        f"start stagger: a session of account default started at {format_time(NOW - 2)};"
        f" the next starts 5 s later, at {format_time(NOW + 3)}")
    assert why(starts=(NOW - 1,), others_starts=(NOW - 3,), stagger_s=5) == (
        f"start stagger: a session of account default started at {format_time(NOW - 1)};"
        f" the next starts 5 s later; 1 that started before this Nova first, at"
        f" {format_time(NOW + 9)}")


def test_only_the_rhythm_and_quiet_hours_yield_to_a_critical_wake():
    yielding = {rule for rule in admission.Rule if rule.yields_to_critical}
    assert yielding == {admission.Rule.RHYTHM, admission.Rule.QUIET_HOURS}
