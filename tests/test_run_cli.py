"""`torchsm run` as a real process: errors, the lock, signals, waking, and status."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import FAST, Cli, torchsm_executable, wait_for, write_config
from supervisor_support import agent_script
from torchsm.config import Home


def start(cli: Cli, *args: str) -> subprocess.Popen:
    """`torchsm run ...` in the background, its output in pipes."""
    return subprocess.Popen([*torchsm_executable(), "run", *args], env=cli.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def plan(cli: Cli) -> dict | None:
    return cli("status", "torch", "--json").json()[0]["plan"]


def query(cli: Cli, sql: str, *params):
    conn = sqlite3.connect(cli.home / "torchsm.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_help(bare_cli: Cli):
    out = bare_cli("run", "--help").out
    assert out.startswith("Usage: torchsm run [OPTIONS] NAME -- COMMAND [ARG...]")
    for option in ("--once", "--max-sessions", "--until-idle", "--cwd", "--home", "--json"):
        assert option in out
    assert "claude -c -p {prompt} --output-format stream-json --verbose" in out


def test_a_queue_runs_to_the_end_and_status_shows_the_history(fast_torch):
    for text in ("write the README", "fix the flaky test"):
        fast_torch("queue", "add", text)
    result = fast_torch("run", "torch", "--until-idle", "--", sys.executable, "-m",
                   "torchsm.agent.example", "--work-s", "0", "{prompt}")
    lines = result.out.splitlines()
    assert "session 1 ok" in result.out and "session 2 ok" in result.out
    assert "marked item 1 done" in result.out
    assert lines[-1].endswith("supervisor ends after 2 sessions: idle: nothing to do")
    assert [i["status"] for i in fast_torch("queue", "list", "--json").json()] == ["done", "done"]
    assert plan(fast_torch) is None  # nothing planned once the supervisor is gone
    log = (fast_torch.home / "log" / "torch.log").read_text()
    assert "=== session 2" in log and "did 'fix the flaky test'" in log


def test_json_lines_one_event_each(fast_torch):
    fast_torch("queue", "add", "one thing")
    out = fast_torch("run", "torch", "--once", "--json", "--", "true").out
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["start", "session.started", "session.ended", "end"]
    assert events[2]["outcome"] == "ok" and events[2]["exit_status"] == 0
    assert events[-1]["sessions"] == 1


@pytest.mark.parametrize("args, message", [
    (["run", "ghost", "--", "true"], "no Nova named 'ghost'"),
    (["run", "torch"], "no agent command given: use `torchsm run NAME -- COMMAND [ARG...]`"),
    (["run", "torch", "--", "no-such-agent-xyz", "-p"], "command not found: no-such-agent-xyz"),
    (["run", "torch", "--", "./missing.sh"], "command not found: ./missing.sh"),
    (["run", "torch", "--cwd", "/no/such/dir", "--", "true"], "no such directory: /no/such/dir"),
    (["run", "Bad Name", "--", "true"], "invalid Nova name 'Bad Name': use "
                                        "[a-z0-9][a-z0-9_-]{0,31}"),
])
def test_errors_are_one_line(fast_torch, args, message):
    result = fast_torch.fails(*args)
    assert result.err == f"torchsm: error: {message}\n" and result.out == ""


def test_uninitialised_home(bare_cli: Cli):
    result = bare_cli.fails("run", "torch", "--", "true")
    assert result.err == (f"torchsm: error: no torchsm home at {bare_cli.home}: "
                          "run `torchsm init`\n")


def test_locked_database(fast_torch):
    write_config(Home(fast_torch.home), FAST + "[db]\nlock_timeout_s = 0.3\n")
    holder = sqlite3.connect(fast_torch.home / "torchsm.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = fast_torch.fails("run", "torch", "--", "true")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.err == ("torchsm: error: database is locked by another process "
                          "(gave up after 0.3s)\n")


def test_a_second_supervisor_for_the_same_nova_is_refused(fast_torch):
    first = start(fast_torch, "torch", "--", "true")
    try:
        wait_for(lambda: plan(fast_torch))
        second = fast_torch.fails("run", "torch", "--once", "--", "true")
        assert second.err == (f"torchsm: error: a supervisor for torch is already running "
                              f"(pid {first.pid})\n")
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(10)
    fast_torch("queue", "add", "now it may")
    assert "session 1 ok" in fast_torch("run", "torch", "--once", "--", "true").out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])  # SIGHUP: a closed terminal
def test_a_stop_signal_mid_session_stops_the_agent_and_puts_the_item_back(fast_torch, tmp_path,
                                                                         sig):
    fast_torch("queue", "add", "a long task")
    pid_file = tmp_path / "agent.pid"
    command = agent_script(tmp_path, f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """)
    run = start(fast_torch, "torch", "--", *command)
    agent = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
    assert wait_for(lambda: (plan(fast_torch) or {}).get("state") == "running")
    run.send_signal(sig)
    out, err = run.communicate(timeout=10)
    assert run.returncode == 0, err
    assert out.splitlines()[-1].endswith(f"supervisor ends after 1 session: stopped by {sig.name}")
    assert not alive(agent)
    [(outcome, exit_status)] = query(fast_torch, "SELECT outcome, exit_status FROM sessions")
    assert (outcome, exit_status) == ("stopped", -signal.SIGTERM)
    [item] = fast_torch("queue", "list", "--json").json()
    assert (item["status"], item["attempts"], item["owner"]) == ("pending", 0, None)
    assert plan(fast_torch) is None
    assert fast_torch("status", "torch", "--json").json()[0]["state"] == "working"  # no cooldown


def test_sigint_with_an_agent_that_ignores_sigterm_kills_it_after_the_grace(fast_torch, tmp_path):
    fast_torch("queue", "add", "stubborn")
    pid_file = tmp_path / "agent.pid"
    command = agent_script(tmp_path, f"""
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """)
    run = start(fast_torch, "torch", "--", *command)
    agent = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
    run.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, _ = run.communicate(timeout=10)
    assert run.returncode == 0 and "stopped by SIGINT" in out
    assert 0.9 <= time.monotonic() - started < 5  # stop_grace_s = 1, then SIGKILL
    assert not alive(agent)
    assert query(fast_torch, "SELECT outcome, exit_status FROM sessions") == [("stopped", -9)]
    assert fast_torch("queue", "list", "--json").json()[0]["status"] == "pending"


def test_a_critical_wake_starts_a_cooling_nova_within_two_seconds(fast_torch, tmp_path):
    fast_torch("transition", "torch", "cool", "--for", "600")
    started_file = tmp_path / "started"
    command = agent_script(tmp_path, f"""
        import time
        open({str(started_file)!r}, "w").write(repr(time.time()))
    """)
    run = start(fast_torch, "torch", "--once", "--", *command)
    try:
        assert wait_for(lambda: (plan(fast_torch) or {}).get("why", "").startswith("cooling until"))
        sent = time.time()
        fast_torch("wake", "torch", "the build server is down: urgent")
        run.wait(10)
    finally:
        if run.poll() is None:
            run.kill()
    assert float(started_file.read_text()) - sent < 2.0
    [(kind, outcome)] = query(fast_torch, "SELECT kind, outcome FROM sessions")
    assert (kind, outcome) == ("wake", "ok")


def test_status_shows_the_next_planned_start_and_why(fast_torch):
    write_config(Home(fast_torch.home), FAST.replace("0.2", "600"))
    run = start(fast_torch, "torch", "--", "true")
    try:
        row = wait_for(lambda: fast_torch("status", "torch", "--json").json()[0]["plan"] and
                       fast_torch("status", "torch", "--json").json()[0])
        assert row["plan"]["pid"] == run.pid and row["plan"]["state"] == "waiting"
        assert row["next_start"] == row["plan"]["next_start"] and row["next_start"].endswith("Z")
        assert row["plan"]["why"] == "idle: no work; looking again in 600s"
        text = fast_torch("status").out
        assert "NEXT START" in text and row["next_start"] in text
        assert f"torch: supervised (pid {run.pid}): idle: no work" in text
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(10)


def test_a_spent_budget_survives_a_restart_and_cools_the_nova(fast_torch):
    write_config(Home(fast_torch.home), FAST + "max_sessions_per_hour = 2\n")
    for n in range(3):
        fast_torch("queue", "add", f"item {n}")
    first = fast_torch("run", "torch", "--max-sessions", "2", "--", "true").out
    assert first.splitlines()[-1].endswith("supervisor ends after 2 sessions: 2 sessions done")
    run = start(fast_torch, "torch", "--once", "--", "true")
    try:
        row = wait_for(lambda: (fast_torch("status", "torch", "--json").json()[0]["state"]
                                == "cooling") and fast_torch("status", "torch", "--json").json()[0])
        assert "session budget spent: 2 of 2 in the last hour" in row["reason"]
        assert len(query(fast_torch, "SELECT id FROM sessions")) == 2
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(10)
    assert run.returncode == 0


def test_an_agent_that_fails_at_once_in_real_time(fast_torch):
    """Shortened durations, real waiting: cooldowns grow, then the Nova meditates, and the
    session count never passes the budget."""
    write_config(Home(fast_torch.home), FAST + """max_sessions_per_hour = 5
crash_window_s = 0
[safety]
cooldown_base_s = 0.3
cooldown_cap_s = 5
cooldown_jitter = 0
meditation_s = 600
""")
    for n in range(3):
        fast_torch("queue", "add", f"doomed {n}")
    run = start(fast_torch, "torch", "--", "false")
    try:
        wait_for(lambda: fast_torch("status", "torch", "--json").json()[0]["state"] == "meditating",
                 timeout=30)
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=10)
    waits = query(fast_torch, "SELECT event, round(until - at, 1) FROM history"
                         " WHERE event IN ('cool', 'meditate') ORDER BY id")
    assert waits == [("cool", 0.3), ("cool", 0.6), ("cool", 1.2), ("meditate", 600.0)]
    outcomes = query(fast_torch, "SELECT outcome FROM sessions")
    assert outcomes == [("failed",)] * 4  # within the budget of 5
    assert [(i["status"], i["attempts"]) for i in fast_torch("queue", "list", "--json").json()] == [
        ("dead", 3), ("pending", 1), ("pending", 0)]
