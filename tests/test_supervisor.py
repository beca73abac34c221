"""The supervisor loop on a real database with real agent processes, on a clock that only
moves when the supervisor sleeps: hours of operation in a second or two."""

import json

import pytest

from supervisor_support import (T0, FakeClock, agent_script, config_with, history,
                                most_in_any_hour, sessions, supervisor)
from torchsm import novas
from torchsm.storage import store
from torchsm.supervisor.loop import Finished, Ran, Wait
from torchsm.work import wake, work_queue

BASE = """
redis_url = "off"
"""


def add_items(home, config, count, prefix="task"):
    with work_queue.open_queue(home, config) as q:
        return [q.add(f"{prefix} {n}", now=T0 - 60).id for n in range(count)]


def items(home, config):
    with work_queue.open_queue(home, config) as q:
        return {i.id: i for i in q.items(now=T0)}


def run_for(home, config, command, hours, **kw):
    clock = FakeClock()
    sup = supervisor(home, config, command, clock, **kw)
    sup.stop_at = T0 + hours * 3600
    clock.at(sup.stop_at, sup.stop.set)
    sup.run()
    return clock


def test_an_agent_that_exits_at_once_stays_within_the_hourly_budget(torch_home):
    config = config_with(BASE)
    add_items(torch_home, config, 200)
    run_for(torch_home, config, ["true"], hours=5)
    starts = [s[0] for s in sessions(torch_home)]
    assert most_in_any_hour(starts) <= 12
    assert len(starts) >= 20  # it did work: the budget, not a bug, held it back
    assert all(s[4] == "ok" for s in sessions(torch_home))
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 25  # torch's rhythm: never closer than its base cycle
    budget_cools = [h for h in history(torch_home) if h[4] and "session budget spent" in h[4]]
    assert budget_cools and all(h[3] >= h[2] for h in budget_cools)
    done = [i for i in items(torch_home, config).values() if i.status.value == "done"]
    assert len(done) == len(starts)


def test_an_agent_that_fails_at_once_backs_off_then_meditates(torch_home):
    config = config_with(BASE)
    add_items(torch_home, config, 30)
    run_for(torch_home, config, ["false"], hours=6)
    runs = sessions(torch_home)
    starts = [s[0] for s in runs]
    assert most_in_any_hour(starts) <= 12
    assert {s[4] for s in runs} == {"crashed"}  # it fails within seconds of its start
    waits = [(h[0], h[3] - h[2]) for h in history(torch_home) if h[0] in ("cool", "meditate")]
    cools = [length for event, length in waits[:3]]
    assert [event for event, _ in waits[:4]] == ["cool", "cool", "cool", "meditate"]
    assert 48 <= cools[0] <= 60 and 96 <= cools[1] <= 120 and 192 <= cools[2] <= 240
    assert waits[3][1] == 1800
    # every failure put its item back with the attempt counted; three attempts make it dead
    statuses = [i.status.value for i in items(torch_home, config).values()]
    attempted = [i for i in items(torch_home, config).values() if i.attempts]
    assert sum(i.attempts for i in attempted) == len(runs)
    assert statuses.count("dead") == len(runs) // 3 and "claimed" not in statuses


def test_restarting_the_supervisor_does_not_reset_the_budget(torch_home):
    config = config_with(BASE + "[supervisor]\nmax_sessions_per_hour = 3\n")
    add_items(torch_home, config, 10)
    clock = FakeClock()
    first = supervisor(torch_home, config, ["true"], clock, max_sessions=3)
    assert first.run().sessions == 3
    second = supervisor(torch_home, config, ["true"], clock)  # a new process, a new object
    step = second.step(clock.now())
    assert isinstance(step, Wait) and "session budget spent: 3 of 3" in step.why
    assert step.until >= sessions(torch_home)[0][0] + 3600
    assert len(sessions(torch_home)) == 3
    assert novas.status(torch_home, config, "torch")[0]["state"] == "cooling"


def test_session_records_what_ran_and_the_child_gets_its_environment(torch_home, tmp_path):
    config = config_with(BASE)
    [item] = add_items(torch_home, config, 1)
    out = tmp_path / "seen.json"
    command = agent_script(tmp_path, f"""
        import json, os, sys
        seen = {{k: v for k, v in os.environ.items() if k.startswith("TORCHSM_")}}
        seen["stdin"] = sys.stdin.read()
        seen["argv"] = sys.argv[1:]
        open({str(out)!r}, "w").write(json.dumps(seen))
    """)
    clock = FakeClock()
    summary = supervisor(torch_home, config, command, clock, once=True).run()
    assert summary.sessions == 1
    seen = json.loads(out.read_text())
    assert seen["TORCHSM_NOVA"] == "torch" and seen["TORCHSM_HOME"] == str(torch_home.path)
    assert seen["TORCHSM_ITEM"] == str(item) and seen["TORCHSM_SESSION"] == "1"
    assert seen["TORCHSM_PROMPT"].startswith("task 0\n") and seen["stdin"] == seen["TORCHSM_PROMPT"]
    assert f"torchsm queue done {item}" in seen["TORCHSM_PROMPT"] and seen["argv"] == []
    assert 'torchsm memory add "$TORCHSM_NOVA" "..."' in seen["TORCHSM_PROMPT"]
    [(started, ended, kind, item_id, outcome, error)] = sessions(torch_home)
    assert (kind, item_id, outcome, error) == ("item", item, "ok", None)
    assert items(torch_home, config)[item].status.value == "done"


def test_prompt_placeholder_goes_into_the_arguments(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 1)
    out = tmp_path / "argv.json"
    command = agent_script(tmp_path, f"""
        import json, sys
        open({str(out)!r}, "w").write(json.dumps([sys.argv[1:], sys.stdin.read()]))
    """) + ["-p", "{prompt}", "--output-format", "json"]
    supervisor(torch_home, config, command, FakeClock(), once=True).run()
    argv, stdin = json.loads(out.read_text())
    assert argv[0] == "-p" and argv[1].startswith("task 0") and argv[2:] == [
        "--output-format", "json"]
    assert stdin == ""


def test_an_item_the_agent_finished_itself_is_left_as_it_is(torch_home, tmp_path):
    config = config_with(BASE)
    [item] = add_items(torch_home, config, 1)
    command = agent_script(tmp_path, """
        import os, subprocess, sys
        subprocess.run([sys.executable, "-m", "torchsm", "queue", "fail",
                        os.environ["TORCHSM_ITEM"], "--error", "not doable"], check=True)
    """)
    supervisor(torch_home, config, command, FakeClock(), once=True).run()
    assert sessions(torch_home)[0][4] == "ok"
    assert items(torch_home, config)[item].status.value == "failed"


def test_restart_request_is_honoured_within_the_budget_and_cleared(torch_home):
    config = config_with(BASE + "[supervisor]\nmax_sessions_per_hour = 1\n")
    ids = add_items(torch_home, config, 2)
    clock = FakeClock()
    sup = supervisor(torch_home, config, ["true"], clock, once=True)
    assert sup.run().sessions == 1
    with store.open_store(torch_home) as db:  # what the Stop hook does when work is left
        db.write(lambda conn: store.request_restart(conn, 1, clock.now(), "cap reached"))
    step = supervisor(torch_home, config, ["true"], clock).step(clock.now())
    assert isinstance(step, Wait) and "budget" in step.why  # the budget holds
    assert len(sessions(torch_home)) == 1
    clock.t = step.until + 1
    ran = supervisor(torch_home, config, ["true"], clock).step(clock.now())
    assert isinstance(ran, Ran) and ran.verdict.outcome.value == "ok"
    started, _, kind, item_id, outcome, _ = sessions(torch_home)[1]
    assert (kind, item_id, outcome) == ("restart", ids[1], "ok")
    with store.open_store(torch_home) as db:
        assert db.read(lambda conn: store.restart_request(conn, 1)) is None
    with store.open_store(torch_home) as db:
        prompt = db.read(lambda conn: conn.execute(
            "SELECT prompt FROM sessions WHERE id = 2").fetchone()[0])
    assert prompt.startswith("torchsm: the last session stopped with work left (cap reached)")


def test_a_critical_wake_cuts_an_idle_wait_short(torch_home):
    config = config_with(BASE + "[personalities.torch]\nbase_cycle_s = 600\n")
    clock = FakeClock()
    sup = supervisor(torch_home, config, ["true"], clock, poll_s=0.25, max_sessions=1)
    sent = T0 + 30
    clock.at(sent, lambda: wake.send(torch_home, config, "torch", "production is down, urgent",
                                     now=clock.now()))
    sup.run()
    [(started, _, kind, _, outcome, _)] = sessions(torch_home)
    assert kind == "wake" and outcome == "ok"
    assert sent <= started <= sent + 0.5  # not at the end of the 600 s idle cycle
    assert wake.pending(torch_home, config, "torch") == []  # delivered


def test_a_critical_wake_ends_a_cooldown_but_a_medium_one_waits(torch_home):
    config = config_with(BASE)
    clock = FakeClock()
    novas.transition(torch_home, config, "torch", "cool", for_s=900, now=T0)
    wake.send(torch_home, config, "torch", "please look at the flaky test", now=T0)  # medium
    sup = supervisor(torch_home, config, ["true"], clock, poll_s=0.25, max_sessions=1)
    assert isinstance(sup.step(T0), Wait)
    critical_at = T0 + 60
    clock.at(critical_at, lambda: wake.send(torch_home, config, "torch", "prod outage: urgent",
                                            now=clock.now()))
    sup.run()
    [(started, _, kind, _, _, _)] = sessions(torch_home)
    assert kind == "wake" and critical_at <= started <= critical_at + 0.5
    with store.open_store(torch_home) as db:
        prompt = db.read(lambda conn: conn.execute("SELECT prompt FROM sessions").fetchone()[0])
    assert prompt == "Wake signal (critical): prod outage: urgent"  # the most urgent first


def test_a_critical_wake_still_waits_for_the_floor_of_the_rhythm(torch_home):
    config = config_with(BASE + "[personalities.torch]\nbase_cycle_s = 100\n")
    add_items(torch_home, config, 1)
    clock = FakeClock()
    assert supervisor(torch_home, config, ["true"], clock, once=True).run().sessions == 1
    wake.send(torch_home, config, "torch", "urgent: prod outage", now=clock.now())
    step = supervisor(torch_home, config, ["true"], clock).step(clock.now())
    assert isinstance(step, Wait) and not step.critical_cuts
    assert step.until == pytest.approx(sessions(torch_home)[0][1] + 100)


def usage_limit_agent(tmp_path, said: str | dict, status=1):
    """An agent ending as Claude Code does at a usage limit: its error result says so
    (`said` as the result's text, or the whole result line)."""
    result = said if isinstance(said, dict) else {"type": "result", "is_error": True,
                                                  "result": said}
    return agent_script(tmp_path, f"""
        import sys
        print({json.dumps(result)!r})
        sys.exit({status})
    """)


def test_unparseable_usage_limit_text_never_retries_at_once(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 3)
    command = usage_limit_agent(tmp_path, "Claude usage limit reached. Try again later.")
    clock = FakeClock()
    supervisor(torch_home, config, command, clock, max_sessions=2).run()
    first, second = sessions(torch_home)
    assert first[4] == "rate_limited" and first[5].startswith("usage limit: Claude usage")
    assert second[0] - first[1] >= 60 * 0.8  # the backoff, at least
    assert items(torch_home, config)[1].attempts == 2  # the same item, its attempts counted


def test_a_usage_limit_with_a_reset_cools_until_the_reset_plus_the_margin(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 1)
    reset = int(T0 + 5 * 3600)
    command = usage_limit_agent(tmp_path, f"Claude AI usage limit reached|{reset}")
    supervisor(torch_home, config, command, FakeClock(), once=True).run()
    [row] = novas.status(torch_home, config, "torch")
    assert row["state"] == "cooling"
    cool = [h for h in history(torch_home) if h[0] == "cool"][-1]
    assert cool[3] == reset + 120 and cool[4].startswith("usage limit: five_hour rejected")


def test_claude_code_429_result_cools_and_the_item_goes_back(torch_home, tmp_path):
    config = config_with(BASE)
    [item] = add_items(torch_home, config, 1)
    result = {"type": "result", "is_error": True, "api_error_status": 429,
              "result": "API Error: Request rejected (429) · rate_limit_error"}
    command = usage_limit_agent(tmp_path, result)
    supervisor(torch_home, config, command, FakeClock(), once=True).run()
    assert sessions(torch_home)[0][4] == "rate_limited"
    back = items(torch_home, config)[item]
    assert (back.status.value, back.attempts) == ("pending", 1)
    assert novas.status(torch_home, config, "torch")[0]["state"] == "cooling"


def test_a_session_past_its_timeout_is_ended_and_counted(torch_home, tmp_path):
    config = config_with(BASE + "[supervisor]\nsession_timeout_s = 0.5\nstop_grace_s = 0.5\n")
    [item] = add_items(torch_home, config, 1)
    command = agent_script(tmp_path, "import time; time.sleep(30)")
    supervisor(torch_home, config, command, FakeClock(), once=True).run()
    assert sessions(torch_home)[0][4] == "timeout"
    back = items(torch_home, config)[item]
    assert (back.status.value, back.attempts) == ("pending", 1)


def test_idle_dreams_once_per_idle_stretch_then_waits_a_cycle(torch_home):
    config = config_with(BASE + "[dreams]\ninterval_s = 0\n[personalities.torch]\n"
                                "dream_probability = 1.0\nreflection_every = 1\n")
    with store.open_store(torch_home) as db:  # a session to reflect on
        db.write(lambda conn: conn.execute(
            "INSERT INTO sessions (nova_id, started_at, ended_at, kind, prompt, outcome)"
            " VALUES (1, ?, ?, 'item', 'x', 'ok')", (T0 - 200, T0 - 100)))
    clock = FakeClock()
    sup = supervisor(torch_home, config, ["true"], clock)
    first = sup.step(T0)  # the cycle: 25 s, and 25 more to reflect after a session
    assert isinstance(first, Wait) and first.until == T0 + 50 and first.why.startswith("idle")
    sup.step(T0 + 50)
    events = [h[0] for h in history(torch_home)]
    assert events == ["dream", "work"]  # once, not every cycle


def test_until_idle_and_once_end_when_there_is_nothing_to_do(torch_home):
    config = config_with(BASE)
    clock = FakeClock()
    assert isinstance(supervisor(torch_home, config, ["true"], clock, until_idle=True).step(T0),
                      Finished)
    summary = supervisor(torch_home, config, ["true"], clock, once=True).run()
    assert (summary.sessions, summary.why) == (0, "idle: nothing to do")


def test_a_supervisor_that_died_leaves_no_running_session_behind(torch_home):
    config = config_with(BASE)
    with store.open_store(torch_home) as db:
        db.write(lambda conn: conn.execute(
            "INSERT INTO sessions (nova_id, started_at, kind, prompt, outcome)"
            " VALUES (1, ?, 'item', 'x', 'running')", (T0 - 100,)))
    supervisor(torch_home, config, ["true"], FakeClock(), once=True).run()
    assert sessions(torch_home)[0][4] == "stopped"


@pytest.mark.parametrize("table, message", [
    ("max_sessions_per_hour = 0", "'supervisor.max_sessions_per_hour' must be at least 1"),
    ("session_timeout_s = 0", "'supervisor.session_timeout_s' must be a positive number"),
])
def test_budgets_that_would_stop_everything_are_refused(table, message):
    from torchsm.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        config_with(f"[supervisor]\n{table}\n")


def test_a_usage_limit_holds_the_nova_against_critical_wakes(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 2)
    reset = int(T0 + 3600)
    command = usage_limit_agent(tmp_path, f"Claude AI usage limit reached|{reset}")
    clock = FakeClock()
    supervisor(torch_home, config, command, clock, once=True).run()
    [row] = novas.status(torch_home, config, "torch")
    assert row["state"] == "cooling" and row["limit_hold"].startswith("usage limit: five_hour")
    sent = wake.send(torch_home, config, "torch", "production is down, urgent", now=clock.now())
    assert sent.woke is None  # the API would refuse the session anyway
    step = supervisor(torch_home, config, ["true"], clock).step(clock.now())
    assert isinstance(step, Wait) and step.until == reset + 120 and len(sessions(torch_home)) == 1


def test_without_auto_resume_a_person_ends_a_usage_limit_hold(torch_home, tmp_path):
    config = config_with(BASE + "[usage]\nauto_resume = false\n")
    add_items(torch_home, config, 2)
    reset = int(T0 + 3600)
    command = usage_limit_agent(tmp_path, f"Claude AI usage limit reached|{reset}")
    clock = FakeClock()
    supervisor(torch_home, config, command, clock, once=True).run()
    clock.t = reset + 600  # long after the reset
    sup = supervisor(torch_home, config, ["true"], clock)
    step = sup.step(clock.now())
    assert isinstance(step, Wait) and not step.planned and "auto_resume is off" in step.why
    assert novas.status(torch_home, config, "torch")[0]["state"] == "cooling"
    assert isinstance(supervisor(torch_home, config, ["true"], clock, until_idle=True).step(
        clock.now()), Finished)
    novas.transition(torch_home, config, "torch", "work", force=True, now=clock.now())
    assert isinstance(sup.step(clock.now()), Ran)
