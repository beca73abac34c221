"""The supervisor and the provider's limits: recorded rate_limit_events, the verdict before
every start (stop, slow), 429 / 529 / billing outcomes. Real database, real agent
processes printing Claude Code's stream-json lines, a clock that only moves when the
supervisor sleeps."""

import json

import pytest

from supervisor_support import (T0, FakeClock, agent_script, config_with, db, history,
                                sessions, supervisor)
from torchsm import novas, runfiles, store, workqueue
from torchsm.supervisor import Ran, Wait

BASE = """
redis_url = "off"
[personalities.torch]
base_cycle_s = 30
reflection_every = 1000
"""


@pytest.fixture
def torch(home):
    novas.add(home, config_with(BASE), "torch", now=T0 - 7200)
    return home


def add_items(home, config, count):
    with workqueue.open_queue(home, config) as q:
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


def test_rate_limit_events_are_recorded_as_usage_windows(torch, tmp_path):
    config = config_with(BASE)
    add_items(torch, config, 1)
    reset = T0 + 4000
    command = stream_agent(tmp_path, limit_event(0.5, reset), result())
    supervisor(torch, config, command, FakeClock(), once=True).run()
    with db(torch) as conn:
        rows = conn.execute("SELECT window, status, utilization, resets_at FROM usage_windows"
                            ).fetchall()
    assert rows == [("five_hour", "allowed_warning", 0.5, reset)]


def test_at_stop_utilization_the_nova_cools_until_the_reset_and_nothing_starts(torch, tmp_path):
    config = config_with(BASE)
    add_items(torch, config, 3)
    reset = T0 + 3000
    command = stream_agent(tmp_path, limit_event(0.96, reset), result())
    clock = FakeClock()
    sup = supervisor(torch, config, command, clock)
    assert isinstance(sup.step(clock.now()), Ran)
    step = sup.step(clock.now())
    assert isinstance(step, Wait) and step.until == reset + 120 and not step.critical_cuts
    [row] = novas.status(torch, config, "torch")
    assert row["state"] == "cooling" and row["limit_hold"].startswith("usage limit: five_hour 96%")
    assert row["reason"].startswith("usage limit: five_hour 96%")
    clock.at(reset + 60, sup.stop.set)  # still before the reset plus the margin
    sup.run()
    assert len(sessions(torch)) == 1


def test_a_rejected_window_stops_like_stop_utilization(torch, tmp_path):
    config = config_with(BASE)
    add_items(torch, config, 2)
    reset = T0 + 2000
    command = stream_agent(tmp_path, limit_event(0.5, reset, status="rejected"), result())
    clock = FakeClock()
    sup = supervisor(torch, config, command, clock)
    sup.step(clock.now())
    step = sup.step(clock.now())
    assert step.until == reset + 120 and "rejected" in step.why


def planned_gap(home, tmp_path, utilization: float) -> float:
    config = config_with(BASE)
    add_items(home, config, 2)
    command = stream_agent(tmp_path, limit_event(utilization, T0 + 3600), result())
    clock = FakeClock()
    sup = supervisor(home, config, command, clock)
    sup.step(clock.now())
    step = sup.step(clock.now())
    assert isinstance(step, Wait)
    return step.until - sessions(home)[0][1]


def test_from_slow_utilization_the_gap_stretches_toward_the_reset(torch, tmp_path):
    normal = planned_gap(torch, tmp_path, 0.5)
    assert normal == pytest.approx(30)


@pytest.mark.parametrize("utilization, pressure", [(0.85, 1 / 3), (0.9, 2 / 3)])
def test_the_stretch_grows_with_the_pressure(torch, tmp_path, utilization, pressure):
    gap = planned_gap(torch, tmp_path, utilization)
    ended = sessions(torch)[0][1]
    to_reset = T0 + 3600 - ended
    assert gap == pytest.approx(30 + pressure * (to_reset - 30), rel=1e-6)
    assert 30 < gap < to_reset


def test_the_plan_says_why_the_gap_is_stretched(torch, tmp_path):
    config = config_with(BASE)
    add_items(torch, config, 2)
    command = stream_agent(tmp_path, limit_event(0.85, T0 + 3600), result())
    clock = FakeClock()
    sup = supervisor(torch, config, command, clock, max_sessions=2)
    plans = []
    clock.at(T0 + 100, lambda: plans.append(runfiles.read_plan(torch, "torch")))
    sup.run()
    [plan] = plans
    assert plan["usage"]["verdict"] == "slow" and "five_hour at 85%" in plan["usage"]["why"]
    assert "stretched" in plan["why"] and plan["usage"]["until"]


def test_a_429_without_a_reset_in_its_output_uses_the_recorded_window(torch, tmp_path):
    config = config_with(BASE)
    add_items(torch, config, 1)
    reset = T0 + 5000
    with store.open_store(torch) as s:
        s.write(lambda conn: store.upsert_usage_window(
            conn, 1, store.WindowRow("five_hour", "allowed", 0.5, reset, T0 - 10)))
    command = stream_agent(tmp_path, result(is_error=True, api_error_status=429,
                                            result="API Error: Request rejected (429)"),
                           status=1)
    supervisor(torch, config, command, FakeClock(), once=True).run()
    cool = [h for h in history(torch) if h[0] == "cool"][-1]
    assert cool[3] == reset + 120
    assert novas.status(torch, config, "torch")[0]["limit_hold"]


def test_a_529_backs_off_briefly_without_cooling_or_counting_the_attempt(torch, tmp_path):
    config = config_with(BASE + "[safety]\ncooldown_jitter = 0\n")
    [item] = add_items(torch, config, 1)
    command = stream_agent(tmp_path, result(is_error=True, api_error_status=529,
                                            result="API Error: overloaded"), status=1)
    clock = FakeClock()
    sup = supervisor(torch, config, command, clock)
    ran = sup.step(clock.now())
    assert ran.verdict.outcome.value == "overloaded"
    step = sup.step(clock.now())
    assert isinstance(step, Wait) and "overloaded" in step.why
    assert step.until == pytest.approx(sessions(torch)[0][1] + 60)
    assert novas.status(torch, config, "torch")[0]["state"] == "working"
    with workqueue.open_queue(torch, config) as q:
        assert q.get(item).attempts == 0
    clock.t = step.until
    sup.step(clock.now())  # the second 529 in a row waits twice as long
    assert sup.step(clock.now()).until == pytest.approx(sessions(torch)[1][1] + 120)


@pytest.mark.parametrize("fields", [
    {"api_error_status": 402, "result": "Your credit balance is too low"},
    {"api_error_status": 401, "result": "Invalid API key"},
    {"api_error_type": "billing_error", "result": "billing"},
])
def test_billing_or_authentication_meditates_and_raises_an_alert(torch, tmp_path, fields):
    config = config_with(BASE)
    [item] = add_items(torch, config, 1)
    command = stream_agent(tmp_path, result(is_error=True, **fields), status=1)
    clock = FakeClock()
    sup = supervisor(torch, config, command, clock)
    assert sup.step(clock.now()).verdict.outcome.value == "account_error"
    assert novas.status(torch, config, "torch")[0]["state"] == "meditating"
    with db(torch) as conn:
        [(nova, kind)] = conn.execute("SELECT nova, kind FROM alerts").fetchall()
    assert (nova, kind) == ("torch", "account_error")
    with workqueue.open_queue(torch, config) as q:
        assert q.get(item).attempts == 0
    assert isinstance(sup.step(clock.now()), Wait)  # no retry
    assert len(sessions(torch)) == 1
    # not after the meditation either: only a person lifts the hold
    clock.sleep(config.safety.meditation_s + 1)
    step = sup.step(clock.now())
    assert isinstance(step, Wait) and "transition torch work" in step.why
    assert len(sessions(torch)) == 1
    novas.transition(torch, config, "torch", "work", now=clock.now())
    assert novas.status(torch, config, "torch")[0]["limit_hold"] is None


def test_a_spent_cost_budget_cools_until_the_day_frees_and_nothing_starts(torch, tmp_path):
    config = config_with(BASE + "[supervisor]\nmax_cost_usd_per_day = 1.0\n")
    add_items(torch, config, 10)
    command = stream_agent(tmp_path, result(total_cost_usd=0.4))
    clock = FakeClock()
    sup = supervisor(torch, config, command, clock)
    clock.at(T0 + 6 * 3600, sup.stop.set)
    sup.run()
    runs = sessions(torch)
    assert len(runs) == 3  # 1.2 USD: the third session spent the budget
    cool = [h for h in history(torch) if "cost budget spent" in (h[4] or "")]
    assert cool and cool[0][3] == pytest.approx(runs[0][1] + 24 * 3600)
    assert cool[0][4].startswith("cost budget spent: $1.20 of $1.00 in the last 24 h")
    [row] = novas.status(torch, config, "torch")
    assert row["state"] == "cooling" and row["reason"].startswith("cost budget spent")


def test_the_cost_budget_is_off_by_default(torch, tmp_path):
    config = config_with(BASE)
    add_items(torch, config, 4)
    command = stream_agent(tmp_path, result(total_cost_usd=100.0))
    supervisor(torch, config, command, FakeClock(), max_sessions=4).run()
    assert [s[4] for s in sessions(torch)] == ["ok"] * 4
