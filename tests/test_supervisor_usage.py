"""The supervisor and the provider's limits: recorded rate_limit_events, the verdict before
every start (stop, slow), 429 / 529 / billing outcomes. Real database, real agent
processes printing Claude Code's stream-json lines, a clock that only moves when the
supervisor sleeps."""

import json

import pytest

from helpers import payload, torchsm_executable
from supervisor_support import (T0, FakeClock, agent_script, config_with, db, history,
                                sessions, supervisor)
from torchsm import novas
from torchsm.storage import run_files, store
from torchsm.supervisor.loop import Ran, Wait
from torchsm.usage import accounts
from torchsm.work import work_queue

BASE = """
redis_url = "off"
[personalities.torch]
base_cycle_s = 30
reflection_every = 1000
"""


def add_items(home, config, count):
    with work_queue.open_queue(home, config) as q:
        return [q.add(f"task {n}", now=T0 - 60).id for n in range(count)]


def stream_agent(tmp_path, *lines: dict, status: int = 0) -> list[str]:
    """An agent printing these stream-json objects, one a line, then exiting `status`."""
    text = "\n".join(json.dumps(line) for line in lines)
    return agent_script(tmp_path, f"""
        import sys
        print({text!r})
        sys.exit({status})
    """)


def limit_event(utilization: float, resets_at: float, status: str = "allowed_warning") -> dict:
    return {"type": "rate_limit_event", "rate_limit_info": {
        "status": "allowed", "resetsAt": resets_at, "rateLimitType": "five_hour",
        "unifiedWindows": {"five_hour": {"utilization": utilization, "resetsAt": resets_at,
                                         "status": status}}}}


def result(**fields) -> dict:
    return {"type": "result", "is_error": False, "result": "Done.", "num_turns": 1,
            "total_cost_usd": 0.01, **fields}


def test_rate_limit_events_are_recorded_as_usage_windows(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 1)
    reset = T0 + 4000
    command = stream_agent(tmp_path, limit_event(0.5, reset), result())
    supervisor(torch_home, config, command, FakeClock(), once=True).run()
    with db(torch_home) as conn:
        rows = conn.execute("SELECT account, window, status, utilization, resets_at, source,"
                            " nova FROM account_windows").fetchall()
    assert rows == [("default", "five_hour", "allowed_warning", 0.5, reset, "event", "torch")]


def test_each_rate_limit_event_is_stored_while_the_session_still_runs(torch_home, tmp_path):
    # the agent itself, another process, looks for the row before it ends
    config = config_with(BASE)
    add_items(torch_home, config, 1)
    line = json.dumps(limit_event(0.42, T0 + 4000))
    command = agent_script(tmp_path, f"""
        import os, sqlite3, sys, time
        print({line!r}, flush=True)
        db = os.path.join(os.environ["TORCHSM_HOME"], "torchsm.db")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            conn = sqlite3.connect(db)
            found = conn.execute("SELECT utilization FROM account_windows").fetchall()
            conn.close()
            if found == [(0.42,)]:
                sys.exit(0)
            time.sleep(0.01)
        sys.exit(3)
    """)
    supervisor(torch_home, config, command, FakeClock(), once=True).run()
    assert sessions(torch_home)[0][4] == "ok"


def test_at_stop_utilization_the_nova_cools_until_the_reset_and_nothing_starts(torch_home,
                                                                              tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 3)
    reset = T0 + 3000
    command = stream_agent(tmp_path, limit_event(0.96, reset), result())
    clock = FakeClock()
    sup = supervisor(torch_home, config, command, clock)
    assert isinstance(sup.step(clock.now()), Ran)
    step = sup.step(clock.now())
    assert isinstance(step, Wait) and step.until == reset + 120 and not step.critical_cuts
    [row] = novas.status(torch_home, config, "torch")
    assert row["state"] == "cooling" and row["limit_hold"].startswith("usage limit: five_hour 96%")
    assert row["reason"].startswith("usage limit: five_hour 96%")
    clock.at(reset + 60, sup.stop.set)  # still before the reset plus the margin
    sup.run()
    assert len(sessions(torch_home)) == 1


def test_a_rejected_window_stops_like_stop_utilization(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 2)
    reset = T0 + 2000
    command = stream_agent(tmp_path, limit_event(0.5, reset, status="rejected"), result())
    clock = FakeClock()
    sup = supervisor(torch_home, config, command, clock)
    sup.step(clock.now())
    step = sup.step(clock.now())
    assert step.until == reset + 120 and "rejected" in step.why


def planned_gap(home, tmp_path, *utilizations: float) -> float:
    config = config_with(BASE)
    add_items(home, config, 2)
    events = [limit_event(u, T0 + 3600) for u in utilizations]
    command = stream_agent(tmp_path, *events, result())
    clock = FakeClock()
    sup = supervisor(home, config, command, clock)
    sup.step(clock.now())
    step = sup.step(clock.now())
    assert isinstance(step, Wait)
    return step.until - sessions(home)[0][1]


def test_below_slow_utilization_the_rhythm_sets_the_gap(torch_home, tmp_path):
    assert planned_gap(torch_home, tmp_path, 0.5) == pytest.approx(30)


def test_from_slow_utilization_an_unknown_request_cost_leaves_one_request_halfway(
        torch_home, tmp_path):
    gap = planned_gap(torch_home, tmp_path, 0.85)
    assert gap == pytest.approx(3600 / 2)  # the reading came at the start


@pytest.mark.parametrize("readings, left", [((0.80, 0.85), 2), ((0.65, 0.80), 1),
                                            ((0.70, 0.80), 2), ((0.82, 0.84, 0.86), 5)])
def test_from_slow_utilization_what_is_left_is_spread_until_the_reset(
        torch_home, tmp_path, readings, left):
    # the rise from one reading to the next is what one request costs
    gap = planned_gap(torch_home, tmp_path, *readings)
    assert gap == pytest.approx(3600 / (left + 1))


def test_the_plan_says_why_the_start_is_paced(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 2)
    command = stream_agent(tmp_path, limit_event(0.85, T0 + 3600), result())
    clock = FakeClock()
    sup = supervisor(torch_home, config, command, clock, max_sessions=2)
    plans = []
    clock.at(T0 + 100, lambda: plans.append(run_files.read_plan(torch_home, "torch")))
    sup.run()
    [plan] = plans
    assert plan["usage"]["verdict"] == "pace" and "five_hour at 85%" in plan["usage"]["why"]
    assert plan["why"].startswith("usage pacing: ") and plan["usage"]["until"]
    assert plan["next_start"] == plan["usage"]["until"]


def test_a_429_without_a_reset_in_its_output_uses_the_recorded_window(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 1)
    reset = T0 + 5000
    with store.open_store(torch_home) as s:
        s.write(lambda conn: accounts.learn(conn, "default", [
            accounts.WindowRow("five_hour", "allowed", 0.5, reset, T0 - 10)], T0))
    command = stream_agent(tmp_path, result(is_error=True, api_error_status=429,
                                            result="API Error: Request rejected (429)"),
                           status=1)
    supervisor(torch_home, config, command, FakeClock(), once=True).run()
    cool = [h for h in history(torch_home) if h[0] == "cool"][-1]
    assert cool[3] == reset + 120
    assert novas.status(torch_home, config, "torch")[0]["limit_hold"]


def test_a_529_backs_off_briefly_without_cooling_or_counting_the_attempt(torch_home, tmp_path):
    config = config_with(BASE + "[safety]\ncooldown_jitter = 0\n")
    [item] = add_items(torch_home, config, 1)
    command = stream_agent(tmp_path, result(is_error=True, api_error_status=529,
                                            result="API Error: overloaded"), status=1)
    clock = FakeClock()
    sup = supervisor(torch_home, config, command, clock)
    ran = sup.step(clock.now())
    assert ran.verdict.outcome.value == "overloaded"
    step = sup.step(clock.now())
    assert isinstance(step, Wait) and "overloaded" in step.why
    assert step.until == pytest.approx(sessions(torch_home)[0][1] + 60)
    assert novas.status(torch_home, config, "torch")[0]["state"] == "working"
    with work_queue.open_queue(torch_home, config) as q:
        assert q.get(item).attempts == 0
    clock.t = step.until
    sup.step(clock.now())  # the second 529 in a row waits twice as long
    assert sup.step(clock.now()).until == pytest.approx(sessions(torch_home)[1][1] + 120)


@pytest.mark.parametrize("fields", [
    {"api_error_status": 402, "result": "Your credit balance is too low"},
    {"api_error_status": 401, "result": "Invalid API key"},
    {"api_error_type": "billing_error", "result": "billing"},
])
def test_billing_or_authentication_meditates_and_raises_an_alert(torch_home, tmp_path, fields):
    config = config_with(BASE)
    [item] = add_items(torch_home, config, 1)
    command = stream_agent(tmp_path, result(is_error=True, **fields), status=1)
    clock = FakeClock()
    sup = supervisor(torch_home, config, command, clock)
    assert sup.step(clock.now()).verdict.outcome.value == "account_error"
    assert novas.status(torch_home, config, "torch")[0]["state"] == "meditating"
    with db(torch_home) as conn:
        [(nova, kind)] = conn.execute("SELECT nova, kind FROM alerts").fetchall()
    assert (nova, kind) == ("torch", "account_error")
    with work_queue.open_queue(torch_home, config) as q:
        assert q.get(item).attempts == 0
    assert isinstance(sup.step(clock.now()), Wait)  # no retry
    assert len(sessions(torch_home)) == 1
    # not after the meditation either: only a person lifts the hold
    clock.sleep(config.safety.meditation_s + 1)
    step = sup.step(clock.now())
    assert isinstance(step, Wait) and "transition torch work" in step.why
    assert len(sessions(torch_home)) == 1
    novas.transition(torch_home, config, "torch", "work", now=clock.now())
    assert novas.status(torch_home, config, "torch")[0]["limit_hold"] is None


def hook_then_error(tmp_path, error: str, status: int) -> list[str]:
    """An agent that does what Claude Code does in -p mode on an API error: it fires the
    StopFailure hook (the real `torchsm hook stop-failure`, in the session's environment:
    TORCHSM_SESSION names the session), then prints its error result and exits 1."""
    stdin = json.dumps({"hook_event_name": "StopFailure", "error": error, "session_id": "s1",
                        "last_assistant_message": f"API Error ({status})"})
    line = json.dumps(result(is_error=True, api_error_status=status, result="API Error"))
    return agent_script(tmp_path, f"""
        import subprocess, sys
        subprocess.run({torchsm_executable()!r} + ["hook", "stop-failure", "--nova", "torch"],
                       input={stdin!r}, text=True, check=True)
        print({line!r})
        sys.exit(1)
    """)


def answers(home) -> list[tuple]:
    with db(home) as conn:
        return conn.execute("SELECT answer FROM sessions ORDER BY id").fetchall()


@pytest.mark.parametrize("error, status", [("billing_error", 402), ("permission_error", 403)])
def test_an_account_error_the_hook_answered_first_is_answered_once(torch_home, tmp_path, error,
                                                                  status):
    # issue 21: the hook and the settle step each answered it (two alerts), or the hook
    # only recorded it (a 403)
    config = config_with(BASE)
    add_items(torch_home, config, 1)
    clock = FakeClock()
    sup = supervisor(torch_home, config, hook_then_error(tmp_path, error, status), clock)
    assert sup.step(clock.now()).verdict.outcome.value == "account_error"
    with db(torch_home) as conn:
        assert conn.execute("SELECT outcome FROM hook_runs").fetchall() == [("meditated",)]
        assert conn.execute("SELECT kind FROM alerts").fetchall() == [(error,)]
    assert [h[:2] for h in history(torch_home)] == [("meditate", "meditating")]
    assert answers(torch_home) == [("meditate_for_a_person",)]
    assert novas.status(torch_home, config, "torch")[0]["limit_hold"].startswith("needs a person: ")


def test_a_529_the_hook_heard_first_backs_off_without_cooling(torch_home, tmp_path):
    config = config_with(BASE + "[safety]\ncooldown_jitter = 0\n")
    add_items(torch_home, config, 1)
    clock = FakeClock()
    sup = supervisor(torch_home, config, hook_then_error(tmp_path, "overloaded", 529), clock)
    assert sup.step(clock.now()).verdict.outcome.value == "overloaded"
    step = sup.step(clock.now())
    assert isinstance(step, Wait) and "overloaded" in step.why
    assert step.until == pytest.approx(sessions(torch_home)[0][1] + 60)
    assert novas.status(torch_home, config, "torch")[0]["state"] == "working"
    assert history(torch_home) == []
    assert answers(torch_home) == [("back_off",)]


def test_a_failure_after_a_usage_stop_heard_in_the_session_does_not_cool_on_top(torch_home,
                                                                                tmp_path):
    # the live reading held the account while the session ran; the failure that follows
    # is answered by that hold (responses.Situation.held_for_limit), not by a cooldown
    config = config_with(BASE)
    add_items(torch_home, config, 1)
    reset = T0 + 4000
    command = stream_agent(tmp_path, limit_event(1.0, reset, "rejected"),
                           result(is_error=True, result="boom"), status=1)
    clock = FakeClock()
    ran = supervisor(torch_home, config, command, clock).step(clock.now())
    assert ran.verdict.outcome.value == "crashed"  # a bang, were it not held already
    assert [(h[0], h[3]) for h in history(torch_home)] == [("cool", reset + 120)]
    assert answers(torch_home) == [("nothing",)]
    with db(torch_home) as conn:
        assert conn.execute("SELECT cool_streak FROM novas").fetchall() == [(0,)]


def test_a_session_whose_stop_hook_banged_is_not_cooled_again_at_its_end(torch_home, tmp_path):
    # a bang cools the Nova and answers its session: the crash that follows is not a second
    # cooldown (this was settle.cooled_during's timestamp guard)
    (torch_home.path / "torchsm.toml").write_text("[safety]\nhook_burst = 1\n")  # for the hook
    config = config_with(BASE)
    add_items(torch_home, config, 1)
    stop = payload("Stop.json")
    command = agent_script(tmp_path, f"""
        import subprocess, sys
        for _ in range(2):  # the second Stop run within the window is a bang
            subprocess.run({torchsm_executable()!r} + ["hook", "stop", "--nova", "torch"],
                           input={stop!r}, text=True, check=True)
        sys.exit(1)
    """)
    clock = FakeClock()
    assert supervisor(torch_home, config, command, clock).step(clock.now()).verdict.failed
    with db(torch_home) as conn:
        assert conn.execute("SELECT outcome FROM hook_runs").fetchall() == [("allowed",),
                                                                            ("bang",)]
    assert [h[0] for h in history(torch_home)] == ["cool"]
    assert answers(torch_home) == [("cool",)]


def test_a_spent_cost_budget_cools_until_the_day_frees_and_nothing_starts(torch_home, tmp_path):
    config = config_with(BASE + "[supervisor]\nmax_cost_usd_per_day = 1.0\n")
    add_items(torch_home, config, 10)
    command = stream_agent(tmp_path, result(total_cost_usd=0.4))
    clock = FakeClock()
    sup = supervisor(torch_home, config, command, clock)
    clock.at(T0 + 6 * 3600, sup.stop.set)
    sup.run()
    runs = sessions(torch_home)
    assert len(runs) == 3  # 1.2 USD: the third session spent the budget
    cool = [h for h in history(torch_home) if "cost budget spent" in (h[4] or "")]
    assert cool and cool[0][3] == pytest.approx(runs[0][1] + 24 * 3600)
    assert cool[0][4].startswith("cost budget spent: $1.20 of $1.00 in the last 24 h")
    [row] = novas.status(torch_home, config, "torch")
    assert row["state"] == "cooling" and row["reason"].startswith("cost budget spent")


def test_the_cost_budget_is_off_by_default(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 4)
    command = stream_agent(tmp_path, result(total_cost_usd=100.0))
    supervisor(torch_home, config, command, FakeClock(), max_sessions=4).run()
    assert [s[4] for s in sessions(torch_home)] == ["ok"] * 4


def test_a_malformed_rate_limit_event_is_one_warning_and_holds_nothing_for_ever(torch_home,
                                                                                tmp_path):
    import random

    from torchsm.supervisor.loop import RunOptions, Supervisor

    config = config_with(BASE)
    add_items(torch_home, config, 1)
    years = T0 + 3 * 365 * 86400
    bad = [
        {"type": "rate_limit_event", "rate_limit_info": "not an object"},
        {"type": "rate_limit_event", "rate_limit_info": {"unifiedWindows": {
            "five_hour": {"utilization": "lots", "resetsAt": "soon", "status": "rejected"},
            "lunar_cycle": {"utilization": 0.99, "resetsAt": years}}}},
    ]
    command = stream_agent(tmp_path, *bad, result())
    events = []
    clock = FakeClock()
    Supervisor(torch_home, config, "torch", RunOptions(tuple(command), once=True,
                                                 agent_output="claude-code"), clock=clock,
               rng=random.Random(1), load=lambda: None, report=events.append,
               base_env={"PATH": "/usr/bin:/bin"}).run()
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("utilization 'lots' is not a number" in w for w in warnings), warnings
    assert any("resetsAt 'soon' is not a time" in w for w in warnings), warnings
    assert any("lunar_cycle" in w and "capped" in w for w in warnings), warnings
    assert all("\n" not in w for w in warnings)
    # a rejected window with no reset holds only briefly; the one years ahead, 5 hours
    [row] = novas.status(torch_home, config, "torch")
    assert row["state"] == "cooling"
    with db(torch_home) as conn:
        held_until = conn.execute("SELECT until FROM novas").fetchone()[0]
    assert held_until <= T0 + 5 * 3600 + 120 + 60
