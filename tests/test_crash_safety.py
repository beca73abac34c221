"""Crash safety (issue 14): a closed terminal stops the supervisor cleanly, and the end of a
session is recorded however long the database stays locked. Real `torchsm run`
processes, real agents, a real SQLite file locked by this test."""

import signal
import sqlite3
import time

from helpers import Cli, write_config
from supervisor_support import agent_script
from test_run_cli import FAST, alive, query, start, wait_for
from torchsm.config import Home

import pytest


@pytest.fixture
def torch(cli: Cli) -> Cli:
    write_config(Home(cli.home), FAST + "[db]\nlock_timeout_s = 0.2\n")
    cli("nova", "add", "torch")
    return cli


def test_sighup_is_a_clean_stop(torch, tmp_path):
    torch("queue", "add", "a long task")
    pid_file = tmp_path / "agent.pid"
    command = agent_script(tmp_path, f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """)
    run = start(torch, "torch", "--", *command)
    agent = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
    run.send_signal(signal.SIGHUP)
    out, err = run.communicate(timeout=10)
    assert run.returncode == 0, err
    assert out.splitlines()[-1].endswith("stopped by SIGHUP")
    assert not alive(agent)
    assert query(torch, "SELECT outcome FROM sessions") == [("stopped",)]
    [item] = torch("queue", "list", "--json").json()
    assert (item["status"], item["attempts"], item["owner"]) == ("pending", 0, None)


def test_the_end_of_a_session_is_recorded_however_long_the_database_is_locked(torch,
                                                                               tmp_path):
    torch("queue", "add", "finish me")
    ready, go = tmp_path / "ready", tmp_path / "go"
    command = agent_script(tmp_path, f"""
        import os, time
        open({str(ready)!r}, "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
    """)
    run = start(torch, "torch", "--once", "--json", "--", *command)
    wait_for(ready.exists)
    lock = sqlite3.connect(torch.home / "torchsm.db", timeout=10, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # a writer that holds on far past lock_timeout_s
    go.touch()
    time.sleep(2.0)  # ten lock timeouts
    assert run.poll() is None  # still trying to record the end, not carrying on
    lock.execute("ROLLBACK")
    lock.close()
    out, err = run.communicate(timeout=20)
    assert run.returncode == 0, err
    assert query(torch, "SELECT outcome, exit_status FROM sessions") == [("ok", 0)]
    assert torch("queue", "list", "--json").json()[0]["status"] == "done"
    assert "is not recorded yet: trying again" in out
