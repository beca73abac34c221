"""`torchsm logs NAME [-f] [--session N] [-n K]` and `torchsm sessions [NAME]`: real
supervisors, real agents, the real CLI."""

import json
import signal
import subprocess

from helpers import Cli, default_ctrl_c, torchsm_executable, write_config
from supervisor_support import agent_script
from test_run_cli import query, start, wait_for
from torchsm.config import Home

import pytest


def talkative(tmp_path, lines: int = 1, pause_s: float = 0.0, go=None) -> list[str]:
    """An agent that prints its item to stdout and a line to stderr, `lines` times (once
    the file `go` exists, when given)."""
    return agent_script(tmp_path, f"""
        import os, sys, time
        while {str(go) if go else ''!r} and not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        for i in range({lines}):
            print(f"out {{os.environ['TORCHSM_ITEM']}}.{{i}} " + "x" * 60, flush=True)
            print(f"err {{os.environ['TORCHSM_ITEM']}}.{{i}}", file=sys.stderr, flush=True)
            time.sleep({pause_s})
    """)


@pytest.fixture
def two_sessions(fast_torch: Cli, tmp_path) -> Cli:
    fast_torch("queue", "add", "first")
    fast_torch("queue", "add", "second")
    fast_torch("run", "torch", "--until-idle", "--", *talkative(tmp_path))
    return fast_torch


def test_logs_shows_stdout_and_stderr_and_one_session_on_request(two_sessions: Cli):
    # stdout and stderr come through two pipes: their order between them may change
    shown = two_sessions("logs", "torch").out.splitlines()
    assert sorted(line.split()[1] for line in shown if not line.startswith("===")) == [
        "1.0", "1.0", "2.0", "2.0"]
    part = two_sessions("logs", "torch", "--session", "2").out.splitlines()
    assert part[0].startswith("=== session 2 ") and "item 2: second" in part[0]
    assert sorted(part[1:3]) == ["err 2.0", "out 2.0 " + "x" * 60]
    assert part[3].startswith("=== session 2 ended ") and len(part) == 4
    [last] = two_sessions("logs", "torch", "-n", "1").out.splitlines()
    assert last.startswith("=== session 2 ended ")
    data = two_sessions("logs", "torch", "--session", "1", "--json").json()
    assert (data["nova"], data["session"], len(data["lines"])) == ("torch", 1, 4)


def test_logs_of_an_unknown_nova_or_session_is_one_error_line(two_sessions: Cli):
    result = two_sessions.fails("logs", "nobody")
    assert result.err == "torchsm: error: no Nova named 'nobody'\n"
    result = two_sessions.fails("logs", "torch", "--session", "9")
    assert result.err == "torchsm: error: no session 9 of torch\n"
    two_sessions.fails("logs", "torch", "--session", "0", code=2)


def test_logs_of_a_nova_with_no_log_yet_says_so(torch_cli: Cli):
    result = torch_cli("logs", "torch")
    assert result.out == "torch has no log yet: none of its sessions has run here\n"
    assert torch_cli("logs", "torch", "--json").json() == {"nova": "torch", "session": None,
                                                          "lines": []}


def follow(cli: Cli, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*torchsm_executable(), "logs", "torch", "-f", *args],
                            env=cli.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c)


def test_logs_follow_shows_a_session_live_and_ends_at_ctrl_c(fast_torch: Cli, tmp_path):
    fast_torch("queue", "add", "talk slowly")
    go = tmp_path / "go"
    agent = agent_script(tmp_path, f"""
        import os, time
        print("first words", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
    """)
    follower = follow(fast_torch)  # before any log: it waits for one
    run = start(fast_torch, "torch", "--once", "--", *agent)
    try:
        assert follower.stdout.readline().startswith("=== session 1 ")
        assert follower.stdout.readline() == "first words\n"
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=10)
        assert follower.returncode == 0 and "Traceback" not in err, err
    finally:
        go.touch()
        run.communicate(timeout=30)
        if follower.poll() is None:
            follower.kill()


def test_logs_follow_of_one_session_goes_across_rotations_and_ends_with_it(fast_torch: Cli,
                                                                          tmp_path):
    write_config(Home(fast_torch.home), (fast_torch.home / "torchsm.toml").read_text()
                 + "[logs]\nmax_bytes = 4096\nkeep = 2\n")
    fast_torch("queue", "add", "talk a lot")
    go = tmp_path / "go"
    run = start(fast_torch, "torch", "--once", "--", *talkative(tmp_path, 150, 0.005, go))
    wait_for(lambda: query(fast_torch, "SELECT id FROM sessions"))
    follower = follow(fast_torch, "--session", "1")
    header = follower.stdout.readline()
    go.touch()
    out, err = follower.communicate(timeout=60)  # it ends when the session's footer comes
    out = header + out
    run.communicate(timeout=30)
    assert follower.returncode == 0, err
    said = [line.split()[1] for line in out.splitlines() if line.startswith("out ")]
    assert said == [f"1.{i}" for i in range(150)]  # ~22 KB: five rotations, none lost
    assert out.splitlines()[-1].startswith("=== session 1 ended ")
    assert sorted(p.name for p in (fast_torch.home / "log").iterdir()) == [
        "torch.log", "torch.log.1", "torch.log.2"]


def test_sessions_lists_newest_first_with_outcome_duration_cost_and_tokens(two_sessions: Cli,
                                                                           tmp_path):
    two_sessions("nova", "add", "echo")
    two_sessions("queue", "add", "for echo", "--nova", "echo")
    result = agent_script(tmp_path, """
        import json
        print(json.dumps({"type": "result", "is_error": False, "result": "done",
                          "total_cost_usd": 0.125, "num_turns": 2,
                          "usage": {"input_tokens": 1200, "output_tokens": 345,
                                    "cache_creation_input_tokens": 50,
                                    "cache_read_input_tokens": 900},
                          "modelUsage": {"claude-opus-5-5": {"outputTokens": 345}}}))
    """, name="costly.py")
    two_sessions("run", "echo", "--until-idle", "--agent-output", "claude-code", "--", *result)
    listed = two_sessions("sessions", "--json").json()
    assert [(s["id"], s["nova"], s["item"], s["outcome"]) for s in listed] == [
        (3, "echo", 3, "ok"), (2, "torch", 2, "ok"), (1, "torch", 1, "ok")]
    assert (listed[0]["cost_usd"], listed[0]["input_tokens"], listed[0]["output_tokens"],
            listed[0]["turns"]) == (0.125, 1200, 345, 2)
    assert (listed[0]["model"], listed[0]["cache_creation_tokens"],
            listed[0]["cache_read_tokens"]) == ("claude-opus-5-5", 50, 900)
    assert listed[1]["model"] is None  # a plain agent reports nothing
    assert listed[0]["started_at"].endswith("Z") and listed[0]["duration_s"] >= 0
    assert [s["id"] for s in two_sessions("sessions", "torch", "--limit", "1", "--json").json()
            ] == [2]
    text = two_sessions("sessions").out.splitlines()
    assert text[0].split() == ["ID", "STARTED", "NOVA", "ITEM", "OUTCOME", "DURATION",
                               "COST", "TOKENS", "CACHE", "MODEL"]
    assert text[1].split()[:5] == ["3", listed[0]["started_at"], "echo", "3", "ok"]
    assert text[1].split()[-4:] == ["$0.1250", "1200/345", "50/900", "claude-opus-5-5"]
    assert two_sessions.fails("sessions", "nobody").err == (
        "torchsm: error: no Nova named 'nobody'\n")


def test_sessions_of_a_home_without_any_says_so(torch_cli: Cli):
    assert torch_cli("sessions").out == "no sessions\n"
    assert torch_cli("sessions", "--json").json() == []
    assert json.loads(torch_cli("sessions", "torch", "--json").out) == []
