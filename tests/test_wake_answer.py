"""What `torchsm wake NAME MESSAGE` answers: when the supervisor will start the session
and why, by the supervisor's own rule (admission.why_not), or that no supervisor runs.

Issue 22: it answered "critical, due now" for a session the rhythm floor started 42 s
later, and the same with no supervisor at all."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time

import pytest

from helpers import FAST, Cli, rows, torchsm_executable, write_config
from supervisor_support import T0, FakeClock, config_with, supervisor
from torchsm import novas
from torchsm.config import Home
from torchsm.storage import run_files, store
from torchsm.supervisor import admission, forecast
from torchsm.work import work_queue

FLOOR_S = 8  # the rhythm of the supervised tests: long enough to see, short to wait for


def start_supervisor(cli: Cli, *command: str) -> subprocess.Popen:
    return subprocess.Popen([*torchsm_executable(), "run", "torch", "--", *command],
                            env=cli.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(run: subprocess.Popen) -> None:
    run.send_signal(signal.SIGTERM)
    try:
        run.wait(15)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def epoch(iso: str) -> float:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc).timestamp()


# --- through the CLI --------------------------------------------------------------------

def test_without_a_supervisor_the_wake_says_nothing_starts(torch_cli):
    out = torch_cli("wake", "torch", "Production database is down").out
    assert out.splitlines()[0] == (
        "torch: wake #1 critical: queued; no supervisor runs for torch "
        "(start one with `torchsm run torch -- COMMAND`)")
    sent = torch_cli("wake", "torch", "Suggestion: cache the lookups", "--json").json()
    assert sent["tier"] == "low"
    assert sent["start"] == {"at": None, "rule": None, "in_s": None, "supervised": False,
                             "supervisor_pid": None, "why": sent["start"]["why"]}
    assert sent["start"]["why"].startswith("queued; no supervisor runs for torch")


def test_a_critical_wake_says_when_the_rhythm_floor_lets_it_start_and_it_does(
        torch_cli, home):
    write_config(home, FAST.replace("0.2", str(FLOOR_S)))
    torch_cli("queue", "add", "the first task")
    run = start_supervisor(torch_cli, "true")
    try:
        wait_for(lambda: rows(torch_cli, "SELECT ended_at FROM sessions"
                                         " WHERE ended_at IS NOT NULL"))
        sent = torch_cli("wake", "torch", "the payments service is down", "--json").json()
        started = wait_for(lambda: rows(torch_cli, "SELECT started_at FROM sessions"
                                                   " WHERE kind = 'wake'"))[0][0]
    finally:
        stop(run)
    [(last_end,)] = rows(torch_cli, "SELECT ended_at FROM sessions WHERE kind = 'item'")
    start = sent["start"]
    assert sent["tier"] == "critical" and start["supervised"] and start["rule"] == "rhythm"
    assert start["supervisor_pid"] == run.pid
    assert 0 < start["in_s"] <= FLOOR_S
    assert abs(epoch(start["at"]) - (last_end + FLOOR_S)) < 1  # the ISO time drops the fraction
    assert epoch(start["at"]) - 0.5 <= started < epoch(start["at"]) + 5  # and it did
    assert start["why"].startswith("starts when the rhythm floor allows, in ")


def test_the_text_answer_of_a_supervised_wake(torch_cli, home):
    write_config(home, FAST.replace("0.2", "600"))
    run = start_supervisor(torch_cli, "true")
    try:
        wait_for(lambda: run_files.read_plan(Home(home.path), "torch"))
        high = torch_cli("wake", "torch", "Hotfix needed for the pricing bug").out
        critical = torch_cli("wake", "torch", "the payments service is down").out
    finally:
        stop(run)
    # An idle supervisor looks for work again when its wait ends; only a critical wake
    # (or a change of the Nova) cuts the wait short.
    assert high.startswith("torch: wake #1 high: starts when its supervisor looks again, in ")
    assert high.rstrip().endswith(": idle: no work; looking again in 600s")
    # no session has ended yet: no rhythm to wait for
    assert critical.splitlines()[0] == "torch: wake #2 critical: starts now"


# --- the pure part ----------------------------------------------------------------------

BASE = 'redis_url = "off"\n[personalities.torch]\nbase_cycle_s = 25\n'


@pytest.fixture
def after_one_session(torch_home):
    """torch_home after one 'true' session that ended at T0 (the fake clock)."""
    config = config_with(BASE)
    with work_queue.open_queue(torch_home, config) as q:
        q.add("task", now=T0 - 60)
    supervisor(torch_home, config, ["true"], FakeClock()).step(T0)
    return torch_home, config


def facts_at(home, config, now, critical=True, **nova_changes):
    import dataclasses

    request = admission.Request("wake", critical)
    with store.open_store(home) as db:
        facts = db.read(lambda conn: admission.read_facts(conn, config, "torch", request, now))
    return dataclasses.replace(facts, nova=facts.nova._replace(**nova_changes))


def test_a_critical_wake_waits_for_the_floor_only(after_one_session):
    home, config = after_one_session
    at, refusal = forecast.first_start(facts_at(home, config, T0 + 5), T0 + 5, T0 + 5)
    assert (at, refusal.rule) == (T0 + 25, admission.Rule.RHYTHM)


def test_a_high_wake_starts_when_due_once_the_rest_is_over(after_one_session):
    home, config = after_one_session
    facts = facts_at(home, config, T0 + 5, critical=False)
    assert forecast.first_start(facts, T0 + 35, T0 + 5) == (T0 + 35, None)
    start = forecast.describe(T0 + 35, None, False, T0 + 5)
    assert start.why.startswith("starts when it is due, in 30 s (at ")
    assert start.rule == "due"


def test_a_cooling_nova_then_the_rhythm(after_one_session):
    home, config = after_one_session
    facts = facts_at(home, config, T0 + 5, critical=False, state="cooling", until=T0 + 10)
    at, refusal = forecast.first_start(facts, T0 + 5, T0 + 5)
    assert (at, refusal.rule) == (T0 + 25, admission.Rule.RHYTHM)  # the rest outlasts it
    facts = facts_at(home, config, T0 + 5, critical=False, state="cooling", until=T0 + 100)
    at, refusal = forecast.first_start(facts, T0 + 5, T0 + 5)
    assert (at, refusal.rule) == (T0 + 100, admission.Rule.WAITING)


def test_a_dreaming_nova_is_asked_as_the_supervisor_resumes_it(after_one_session):
    home, config = after_one_session
    facts = facts_at(home, config, T0 + 30, state="dreaming")
    assert forecast.first_start(facts, T0 + 30, T0 + 30)[0] == T0 + 30


def test_a_hold_for_a_person_has_no_time(after_one_session):
    home, config = after_one_session
    facts = facts_at(home, config, T0 + 30, state="meditating", until=T0,
                     limit_hold=novas.ACCOUNT_HOLD + "billing_error")
    at, refusal = forecast.first_start(facts, T0 + 30, T0 + 30)
    assert at is None and refusal.rule is admission.Rule.HELD
    start = forecast.describe(at, refusal, True, T0 + 30)
    assert start.why.startswith("waits: held") and start.at is None


def test_a_full_account_is_asked_again_at_the_next_look_only(after_one_session):
    """A full cap names no time its sessions end: the answer is the supervisor's next
    look, not a search that walks past it ask after ask."""
    import dataclasses

    home, config = after_one_session
    facts = dataclasses.replace(facts_at(home, config, T0 + 30), running_on_account=2,
                                running_cap=2)
    at, refusal = forecast.first_start(facts, T0 + 30, T0 + 30)
    assert (at, refusal.rule) == (T0 + 30 + admission.CAP_LOOK_AGAIN_S,
                                  admission.Rule.RUNNING_SESSIONS)
    start = forecast.describe(at, refusal, True, T0 + 30)
    assert start.why.startswith("starts when a session of the account ends, in 2.0 s")


def test_a_wake_during_a_session_starts_after_it(torch_home):
    import os

    config = config_with(BASE)
    lock = run_files.lock_supervisor(torch_home, "torch")
    try:
        run_files.write_plan(torch_home, "torch", {"pid": os.getpid(), "state": "running",
                                                   "why": "session 3 running (item 1: x)"})
        assert run_files.supervisor_pid(torch_home, "torch") == os.getpid()
        start = forecast.for_signal(torch_home, config, _signal(torch_home, config), T0,
                                    None)
    finally:
        lock.release()
    assert (start.at, start.rule, start.supervisor_pid) == (None, "running", os.getpid())
    assert start.why == "starts after the running session ends: session 3 running (item 1: x)"
    # the plan outlives its supervisor; the lock does not
    assert run_files.supervisor_pid(torch_home, "torch") is None
    assert forecast.for_signal(torch_home, config, _signal(torch_home, config), T0,
                               None).why.startswith("queued; no supervisor runs for torch")


def _signal(home, config):
    from torchsm.work import wake

    return wake.send(home, config, "torch", "the build is broken", now=T0).signal
