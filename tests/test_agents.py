"""Agent processes: real children, line-by-line output, timeouts and shutdown."""

import json
import os
import sys
import textwrap
import time

import pytest

from torchsm.agent.session import SessionOutput, build_argv, run_session
from torchsm.errors import AgentCommandError

PY = sys.executable


def script(tmp_path, body: str) -> list[str]:
    path = tmp_path / "agent.py"
    path.write_text(textwrap.dedent(body))
    return [PY, str(path)]


def test_prompt_placeholder_or_stdin():
    assert build_argv(["claude", "-p", "{prompt}", "--x"], "do it") == (
        ["claude", "-p", "do it", "--x"], False)
    assert build_argv(["agent"], "a b") == (["agent"], True)
    with pytest.raises(AgentCommandError):  # only a whole argument (test_prompt_argument.py)
        build_argv(["agent", "--prompt={prompt}"], "a b")


def test_stream_json_is_understood():
    out = SessionOutput(claude_code=True)
    lines = [
        {"type": "system", "subtype": "init", "session_id": "s"},
        {"type": "system", "subtype": "api_retry", "attempt": 1, "error_status": 529},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "Working."}]}},
        {"type": "rate_limit_event", "rate_limit_info": {
            "status": "allowed_warning", "resetsAt": 1800000000, "rateLimitType": "five_hour",
            "unifiedWindows": {"five_hour": {"utilization": 0.91, "resetsAt": 1800000000}}}},
        {"type": "result", "subtype": "success", "is_error": False, "result": "All done",
         "total_cost_usd": 0.01, "num_turns": 2},
    ]
    for line in lines:
        out.feed(json.dumps(line) + "\n")
    out.feed("not json at all\n")
    out.feed("{broken json\n")
    assert out.result["result"] == "All done" and out.text == "All done"
    assert out.rate_limit_events[0]["rateLimitType"] == "five_hour"
    assert out.api_retries[0]["error_status"] == 529
    assert out.last_assistant_text == "Working." and out.lines == 7


def test_a_plain_agents_lines_are_only_text():
    # the same lines from an agent not declared to speak Claude Code's JSON: its words
    told = []
    out = SessionOutput(listener=lambda kind, obj: told.append(kind))
    out.feed(json.dumps({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected"}})
             + "\n" + json.dumps({"type": "result", "is_error": True, "result": "x"}) + "\n")
    assert (out.result, out.rate_limit_events, told, out.error_text) == (None, [], [], "")
    assert out.lines == 2 and '"rate_limit_event"' in out.text


def test_plain_text_agent_by_exit_status_and_tail(tmp_path):
    argv = script(tmp_path, """
        import sys
        print("thinking"); print("usage limit reached|1764000000", file=sys.stdout)
        sys.exit(3)
    """)
    run = run_session(argv, env=dict(os.environ))
    assert run.exit_status == 3 and not run.timed_out
    assert run.output.result is None and "limit reached|1764000000" in run.output.text


def test_environment_and_stdin_reach_the_child(tmp_path):
    argv = script(tmp_path, """
        import os, sys
        print(os.environ["TORCHSM_PROMPT"], "|", sys.stdin.read().strip(), "|", os.environ["SECRET"])
    """)
    run = run_session(argv, env={**os.environ, "TORCHSM_PROMPT": "p1", "SECRET": "inherited"},
                      stdin_text="from stdin")
    assert run.output.text == "p1 | from stdin | inherited"


def test_a_child_that_ignores_stdin_does_not_hang(tmp_path):
    argv = script(tmp_path, "print('no stdin read')")
    run = run_session(argv, env=dict(os.environ), stdin_text="x" * 1_000_000)
    assert run.exit_status == 0


def test_large_output_streams_without_blocking(tmp_path):
    argv = script(tmp_path, """
        import json, sys
        for i in range(100_000):
            sys.stdout.write(json.dumps({"type": "assistant", "message": {"content": [
                {"type": "text", "text": f"line {i}"}]}}) + "\\n")
        print(json.dumps({"type": "result", "result": "end", "is_error": False}))
    """)
    seen = []
    run = run_session(argv, env=dict(os.environ), on_line=lambda line: seen.append(1),
                      claude_code=True)
    assert run.exit_status == 0 and run.output.lines == 100_001 and len(seen) == 100_001
    assert len(run.output.tail) <= 40 and run.output.text == "end"


def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "grandchild.pid"
    argv = script(tmp_path, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(marker)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
    """)
    started = time.monotonic()
    run = run_session(argv, env=dict(os.environ), timeout_s=1, grace_s=1)
    assert run.timed_out and run.exit_status < 0 and time.monotonic() - started < 10
    grandchild = int(marker.read_text())
    time.sleep(0.2)
    assert not _alive(grandchild)


def test_stop_request_sends_term_then_kill(tmp_path):
    argv = script(tmp_path, """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn", flush=True)
        time.sleep(60)
    """)
    started = time.monotonic()
    run = run_session(argv, env=dict(os.environ), grace_s=0.5,
                      should_stop=lambda: time.monotonic() - started > 0.5)
    assert run.stopped and run.exit_status == -9 and run.output.text == "stubborn"


def test_a_child_that_exits_on_its_own_as_the_stop_comes_is_a_normal_end(tmp_path):
    """Issue 14, crash finding 4: the stop request (the supervisor's SIGTERM) comes just
    after the agent exited 0 on its own: a clean end, not `stopped`, or the finished item
    would run again."""
    pid_file, go = tmp_path / "agent.pid", tmp_path / "go"
    argv = script(tmp_path, f"""
        import os, sys, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        print("all done", flush=True)
        sys.exit(0)
    """)
    asked = []

    def stop_once_the_child_has_exited() -> bool:
        # called while the child still runs; it exits (unreaped: a zombie) before we answer
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.005)
        pid = int(pid_file.read_text())
        go.touch()
        deadline = time.monotonic() + 10
        while _state(pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.005)
        asked.append(_state(pid))
        return True

    run = run_session(argv, env=dict(os.environ), grace_s=1,
                      should_stop=stop_once_the_child_has_exited)
    assert asked == ["Z"]  # the stop was asked after the child had exited
    assert (run.stopped, run.timed_out, run.exit_status) == (False, False, 0)
    assert run.output.text == "all done"


def test_a_child_still_running_when_the_stop_comes_is_stopped(tmp_path):
    argv = script(tmp_path, """
        import time
        print("working", flush=True)
        time.sleep(60)
    """)
    started = time.monotonic()
    run = run_session(argv, env=dict(os.environ), grace_s=5,
                      should_stop=lambda: time.monotonic() - started > 0.3)
    assert run.stopped and not run.timed_out and run.exit_status == -15
    assert time.monotonic() - started < 5


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
