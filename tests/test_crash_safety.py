"""Crash safety (issue 14): a closed terminal stops the supervisor cleanly, and the end of a
session is recorded however long the database stays locked. Real `torchsm run`
processes, real agents, a real SQLite file locked by this test."""

import signal
import sqlite3
import sys
import textwrap
import time

from helpers import FAST, Cli, write_config
from supervisor_support import agent_script
from test_run_cli import alive, query, start, wait_for
from torchsm.config import Home

import pytest


@pytest.fixture
def brief_torch(torch_cli: Cli) -> Cli:
    """torch_cli on the FAST rhythm, sessions of at most 3 s, lock waits of 0.2 s."""
    # an orphan's session lasts at most session_timeout_s: its successor waits that long
    return with_session_timeout(torch_cli, 3)


@pytest.fixture
def patient_torch(torch_cli: Cli) -> Cli:
    """brief_torch, but an orphan may take 30 s to finish: on a loaded machine 3 s from
    its start passed before it was told to finish, and its timeout (rightly) ran the item
    again."""
    return with_session_timeout(torch_cli, 30)


def with_session_timeout(cli: Cli, seconds: float) -> Cli:
    write_config(Home(cli.home), FAST.replace("[supervisor]\n", "[supervisor]\n"
                                              f"session_timeout_s = {seconds}\n")
                 + "[db]\nlock_timeout_s = 0.2\n")
    return cli


def test_the_end_of_a_session_is_recorded_however_long_the_database_is_locked(brief_torch,
                                                                               tmp_path):
    brief_torch("queue", "add", "finish me")
    ready, go = tmp_path / "ready", tmp_path / "go"
    command = agent_script(tmp_path, f"""
        import os, time
        open({str(ready)!r}, "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
    """)
    run = start(brief_torch, "torch", "--once", "--json", "--", *command)
    wait_for(ready.exists)
    lock = sqlite3.connect(brief_torch.home / "torchsm.db", timeout=10, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # a writer that holds on far past lock_timeout_s
    go.touch()
    time.sleep(2.0)  # ten lock timeouts
    assert run.poll() is None  # still trying to record the end, not carrying on
    lock.execute("ROLLBACK")
    lock.close()
    out, err = run.communicate(timeout=20)
    assert run.returncode == 0, err
    assert query(brief_torch, "SELECT outcome, exit_status FROM sessions") == [("ok", 0)]
    assert brief_torch("queue", "list", "--json").json()[0]["status"] == "done"
    assert "is not recorded yet: trying again" in out


def agent_logging_each_run(tmp_path, *, finish: bool = False, ignore_term: bool = False,
                           quick_second: bool = False):
    """An agent that logs each run of its item, may mark the item done itself, may ignore
    SIGTERM, then works for a long time (with `quick_second`, only its first run)."""
    log, pid_file = tmp_path / "runs.log", tmp_path / "agent.pid"
    command = agent_script(tmp_path, f"""
        import os, signal, subprocess, sys, time
        if {ignore_term}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        second = os.path.exists({str(log)!r})
        with open({str(log)!r}, "a") as f:
            f.write(os.environ["TORCHSM_ITEM"] + "\\n")
        if {finish}:
            subprocess.run([{sys.executable!r}, "-m", "torchsm", "queue", "done",
                            os.environ["TORCHSM_ITEM"]], check=True)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        if not ({quick_second} and second):
            time.sleep(60)
    """)
    return command, log, pid_file


def kill_supervisor_mid_session(brief_torch, command, pid_file) -> int:
    run = start(brief_torch, "torch", "--", *command)
    agent = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
    run.kill()  # -9: no handler runs
    run.communicate(timeout=10)
    return agent


def agent_finishing_on_go(tmp_path, *, then: str = ""):
    """An agent that logs its start, waits for the file `go`, runs `then`, writes a lot to
    its stdout and a result line with its cost, logs its end and exits 0."""
    log, go = tmp_path / "runs.log", tmp_path / "go"
    command = agent_script(tmp_path, f"""
        import json, os, subprocess, sys, time
        with open({str(log)!r}, "a") as f:
            f.write("start " + os.environ["TORCHSM_ITEM"] + "\\n")
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        {then}
        for _ in range(2000):  # 200 KB: far more than a pipe holds
            print("x" * 100)
        print(json.dumps({{"type": "assistant", "message": {{"content": [
            {{"type": "text", "text": "finished " + os.environ["TORCHSM_ITEM"]}}]}}}}))
        print(json.dumps({{"type": "result", "subtype": "success", "is_error": False,
                          "result": "done", "total_cost_usd": 0.25, "num_turns": 3,
                          "usage": {{"input_tokens": 11, "output_tokens": 22,
                                    "cache_creation_input_tokens": 33,
                                    "cache_read_input_tokens": 44}},
                          "modelUsage": {{"claude-opus-5-5": {{"outputTokens": 22}}}}}}))
        with open({str(log)!r}, "a") as f:
            f.write("end " + os.environ["TORCHSM_ITEM"] + "\\n")
    """)
    return command, log, go


def read_until(run, text: str) -> str:
    """The supervisor's output up to the line holding `text`."""
    seen = []
    for line in run.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} never came: {''.join(seen)}")


@pytest.mark.parametrize("declared", [True, False])
def test_an_agent_finishes_the_session_its_supervisor_died_in_and_runs_once(patient_torch,
                                                                             tmp_path, declared):
    # the race of the chaos runs: the agent ends its work just as its supervisor dies;
    # it must neither die of the death nor of writing to the dead supervisor's pipe
    patient_torch("queue", "add", "finish me once")
    command, log, go = agent_finishing_on_go(tmp_path)
    # what the agent printed is read as Claude Code's only when its own supervisor said
    # so (whatever its successor is told)
    output = ["--agent-output", "claude-code"] if declared else []
    first = start(patient_torch, "torch", *output, "--", *command)
    wait_for(lambda: log.exists() and "start" in log.read_text())
    first.kill()
    first.communicate(timeout=10)
    successor = start(patient_torch, "torch", "--until-idle", "--", *command)
    read_until(successor, "outlived its supervisor: waiting for it to end its session")
    assert log.read_text().split() == ["start", "1"]  # nothing started beside it
    [row] = patient_torch("status", "torch", "--json").json()  # and a person can see why
    assert "waiting for it to end its session" in row["plan"]["why"]
    go.touch()
    out, err = successor.communicate(timeout=30)
    assert successor.returncode == 0, err
    assert log.read_text().split() == ["start", "1", "end", "1"]  # once, not again
    assert patient_torch("queue", "list", "--json").json()[0]["status"] == "done"
    # the result line the keeper kept: cost, turns, model and tokens
    reported = ((0.25, 3, "claude-opus-5-5", 11, 22, 33, 44) if declared else (None,) * 7)
    assert query(patient_torch, "SELECT outcome, exit_status, cost_usd, num_turns, model,"
                              " input_tokens, output_tokens, cache_creation_tokens,"
                              " cache_read_tokens FROM sessions") == [("ok", 0, *reported)]
    # ... and its last message, for the item's episode
    said = " | Last message: finished 1" if declared else ""
    assert query(patient_torch, "SELECT kind, source, text FROM memories") == [
        ("episode", "item:1", f"Finished work item 1: finish me once{said}")]
    assert not list((patient_torch.home / "run").glob("session-*"))


def test_an_agent_whose_supervisor_died_takes_no_new_work(brief_torch, tmp_path):
    brief_torch("queue", "add", "the first")
    brief_torch("queue", "add", "the second")
    answer = tmp_path / "stop-hook.out"
    stop_hook = f"""
        stop = json.dumps({{"session_id": "s1", "hook_event_name": "Stop",
                           "stop_hook_active": False, "last_assistant_message": "done"}})
        hook = subprocess.run([{sys.executable!r}, "-m", "torchsm", "hook", "stop"],
                              input=stop, capture_output=True, text=True)
        open({str(answer)!r}, "w").write(hook.stdout + hook.stderr)
    """
    command, log, go = agent_finishing_on_go(tmp_path, then=textwrap.indent(
        textwrap.dedent(stop_hook), " " * 8).strip())
    first = start(brief_torch, "torch", "--", *command)
    wait_for(lambda: log.exists() and "start" in log.read_text())
    first.kill()
    first.communicate(timeout=10)
    go.touch()
    wait_for(lambda: "end" in log.read_text())
    assert "block" not in answer.read_text()  # not continued with the second item
    assert [i["status"] for i in brief_torch("queue", "list", "--json").json()] == ["claimed",
                                                                              "pending"]
    brief_torch("run", "torch", "--until-idle", "--", *command)
    assert log.read_text().split() == ["start", "1", "end", "1", "start", "2", "end", "2"]
    assert [i["status"] for i in brief_torch("queue", "list", "--json").json()] == ["done", "done"]


def test_the_keeper_stops_an_orphan_at_the_session_timeout(brief_torch, tmp_path):
    brief_torch("queue", "add", "long work")
    command, log, pid_file = agent_logging_each_run(tmp_path, ignore_term=True,
                                                    quick_second=True)
    orphan = kill_supervisor_mid_session(brief_torch, command, pid_file)
    assert alive(orphan)  # it goes on with its session
    out = brief_torch("run", "torch", "--until-idle", "--", *command).out
    assert not alive(orphan)
    assert "waiting for it to end its session" in out
    assert log.read_text().split() == ["1", "1"]  # cut short by its timeout, run again
    sessions = query(brief_torch, "SELECT outcome, started_at, ended_at FROM sessions ORDER BY id")
    assert [row[0] for row in sessions] == ["stopped", "ok"]
    assert sessions[0][2] <= sessions[1][1]  # never side by side


def test_a_stop_while_waiting_for_an_orphan_stops_it(brief_torch, tmp_path):
    brief_torch("queue", "add", "long work")
    command, log, pid_file = agent_logging_each_run(tmp_path)
    orphan = kill_supervisor_mid_session(brief_torch, command, pid_file)
    successor = start(brief_torch, "torch", "--", *command)
    read_until(successor, "waiting for it to end its session")
    successor.send_signal(signal.SIGTERM)
    out, err = successor.communicate(timeout=20)
    assert successor.returncode == 0, err
    assert not alive(orphan)
    assert log.read_text().split() == ["1"]
    assert query(brief_torch, "SELECT outcome FROM sessions") == [("stopped",)]
    assert brief_torch("queue", "list", "--json").json()[0]["status"] == "pending"


def test_an_item_the_orphan_finished_is_not_run_again(brief_torch, tmp_path):
    brief_torch("queue", "add", "quick work")
    command, log, pid_file = agent_logging_each_run(tmp_path, finish=True, ignore_term=True)
    orphan = kill_supervisor_mid_session(brief_torch, command, pid_file)
    run = start(brief_torch, "torch", "--until-idle", "--json", "--", *command)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert not alive(orphan)
    assert log.read_text().split() == ["1"]
    assert brief_torch("queue", "list", "--json").json()[0]["status"] == "done"


def test_until_idle_recovers_a_dead_supervisors_claim_at_once(brief_torch, tmp_path):
    brief_torch("queue", "add", "work the dead one held")
    command, log, pid_file = agent_logging_each_run(tmp_path)
    kill_supervisor_mid_session(brief_torch, command, pid_file)
    quick = agent_script(tmp_path, "print('done')", name="quick.py")
    out = brief_torch("run", "torch", "--until-idle", "--", *quick).out
    assert "idle: nothing to do" in out and "session 2 ok" in out  # not "idle" at once
    [item] = brief_torch("queue", "list", "--json").json()
    assert (item["status"], item["attempts"]) == ("done", 1)


def test_a_shared_item_a_dead_supervisor_held_is_free_for_another_nova_at_once(brief_torch,
                                                                               tmp_path):
    brief_torch("nova", "add", "echo")
    brief_torch("queue", "add", "shared work")  # no Nova named: either may take it
    command, log, pid_file = agent_logging_each_run(tmp_path)
    run = start(brief_torch, "echo", "--", *command)
    agent = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
    run.kill()
    run.communicate(timeout=10)
    wait_for(lambda: not alive(agent), timeout=5)
    quick = agent_script(tmp_path, "print('done')", name="quick.py")
    out = brief_torch("run", "torch", "--until-idle", "--", *quick).out
    assert "closed 1 session(s) of echo a supervisor left running; item 1 back to pending" in out
    assert brief_torch("queue", "list", "--json").json()[0]["status"] == "done"
    assert query(brief_torch, "SELECT n.name, s.outcome FROM sessions s JOIN novas n"
                        " ON n.id = s.nova_id ORDER BY s.id") == [("echo", "stopped"),
                                                                 ("torch", "ok")]


def test_a_live_supervisors_claim_is_left_alone(brief_torch, tmp_path):
    brief_torch("nova", "add", "echo")
    brief_torch("queue", "add", "shared work")
    command, log, pid_file = agent_logging_each_run(tmp_path)
    run = start(brief_torch, "echo", "--", *command)
    wait_for(lambda: pid_file.exists() and pid_file.read_text())
    try:
        quick = agent_script(tmp_path, "print('done')", name="quick.py")
        out = brief_torch("run", "torch", "--until-idle", "--", *quick).out
        assert "idle: nothing to do" in out and "closed" not in out
        assert brief_torch("queue", "list", "--json").json()[0]["status"] == "claimed"
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=10)


def test_an_agent_that_finished_just_before_its_supervisor_died_is_not_run_again(brief_torch,
                                                                                  tmp_path):
    # the supervisor is frozen (SIGSTOP) so the agent ends while it cannot settle, then
    # killed: only the agent's keeper knows the agent finished
    brief_torch("queue", "add", "quick work")
    log, go = tmp_path / "runs.log", tmp_path / "go"
    command = agent_script(tmp_path, f"""
        import os, time
        with open({str(log)!r}, "a") as f:
            f.write("start\\n")
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        with open({str(log)!r}, "a") as f:
            f.write("end\\n")
    """)
    run = start(brief_torch, "torch", "--", *command)
    wait_for(lambda: log.exists() and "start" in log.read_text())
    run.send_signal(signal.SIGSTOP)
    go.touch()
    wait_for(lambda: list((brief_torch.home / "run").glob("session-*.exit")))
    run.kill()
    run.communicate(timeout=10)
    out = brief_torch("run", "torch", "--until-idle", "--", *command).out
    assert "idle: nothing to do" in out
    assert log.read_text().split() == ["start", "end"]  # once, not again
    assert brief_torch("queue", "list", "--json").json()[0]["status"] == "done"
    assert query(brief_torch, "SELECT outcome, exit_status FROM sessions") == [("ok", 0)]
    assert not list((brief_torch.home / "run").glob("session-*.exit"))


def test_a_claim_left_without_a_session_goes_back_when_the_supervisor_starts(brief_torch,
                                                                            tmp_path):
    # as a supervisor killed between claiming an item and recording the session leaves it
    brief_torch("queue", "add", "claimed, then the supervisor died")
    brief_torch("queue", "claim", "--nova", "torch")
    quick = agent_script(tmp_path, "print('done')", name="quick.py")
    out = brief_torch("run", "torch", "--until-idle", "--", *quick).out
    assert "claims a supervisor left without a session; item 1 back to pending" in out
    assert brief_torch("queue", "list", "--json").json()[0]["status"] == "done"


def agent_speaking_after_the_kill(tmp_path, exit_status: int = 0):
    """An agent that prints a line, waits for the file `go` (its supervisor is killed
    meanwhile), then prints to stdout and stderr, says its last message as Claude Code
    would, and exits `exit_status`."""
    go = tmp_path / "go"
    command = agent_script(tmp_path, f"""
        import json, os, sys, time
        print("before the kill", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        print("after the kill", flush=True)
        print("a complaint after the kill", file=sys.stderr, flush=True)
        print(json.dumps({{"type": "assistant", "message": {{"content": [
            {{"type": "text", "text": "my last words"}}]}}}}), flush=True)
        sys.exit({exit_status})
    """)
    return command, go


def session_log(cli: Cli, session_id: int) -> list[str]:
    from torchsm.agent import log as agent_log

    home = Home(cli.home)
    return [line.rstrip("\n") for line in agent_log.session_part(
        agent_log.kept_lines(home, "torch"), session_id)]


@pytest.mark.parametrize("exit_status", [0, 3])
def test_what_an_orphan_said_after_its_supervisor_died_is_logged_and_settled(brief_torch,
                                                                             tmp_path,
                                                                             exit_status):
    # the keeper kept it, the recovery read it and deleted it unread by anyone
    brief_torch("queue", "add", "speak after the kill")
    command, go = agent_speaking_after_the_kill(tmp_path, exit_status)
    path = brief_torch.home / "log" / "torch.log"
    first = start(brief_torch, "torch", "--agent-output", "claude-code", "--", *command)
    wait_for(lambda: path.exists() and "before the kill" in path.read_text())
    first.kill()  # -9: no handler runs
    first.communicate(timeout=10)
    go.touch()
    brief_torch("run", "torch", "--until-idle", "--", "true")
    part = session_log(brief_torch, 1)
    assert part[0].startswith("=== session 1 ") and part[1] == "before the kill"
    assert part[2].startswith("=== session 1 after its supervisor died")
    assert {"after the kill", "a complaint after the kill"} <= set(part[3:-1])
    assert part[-1].startswith("=== session 1 ended ") and f"exit {exit_status}" in part[-1]
    assert query(brief_torch, "SELECT last_assistant_message FROM sessions WHERE id = 1") == [
        ("my last words",)]
    assert not list((brief_torch.home / "run").glob("session-*"))
