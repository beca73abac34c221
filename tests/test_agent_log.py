"""HOME/log/NAME.log (torchsm/agent/log.py): written as the agent prints, stdout and
stderr, each session between its header and its footer; rotated past `[logs] max_bytes`,
at most `keep` old files; followed across a rotation. Real files, a real `torchsm run`."""

import threading

from helpers import Cli, write_config
from supervisor_support import agent_script
from test_run_cli import start, wait_for
from torchsm.agent import log as agent_log
from torchsm.config import Home, LogsConfig


def test_a_running_session_is_in_the_log_as_it_prints_stdout_and_stderr(fast_torch: Cli,
                                                                        tmp_path):
    # the issue: six seconds into a session printing every 2 s the log held nothing
    fast_torch("queue", "add", "say things slowly")
    go = tmp_path / "go"
    command = agent_script(tmp_path, f"""
        import os, sys, time
        print("to stdout", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        print("last words", flush=True)
    """)
    path = fast_torch.home / "log" / "torch.log"
    run = start(fast_torch, "torch", "--once", "--", *command)
    try:
        wait_for(lambda: path.exists() and "to stderr" in path.read_text()
                 and "to stdout" in path.read_text())
        lines = path.read_text().splitlines()
        assert lines[0].startswith("=== session 1 ") and "item 1: say things slowly" in lines[0]
        assert "=== session 1 ended" not in path.read_text()  # still running
    finally:
        go.touch()
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    lines = path.read_text().splitlines()
    assert lines[-2] == "last words"
    assert lines[-1].startswith("=== session 1 ended ") and " exit 0 after " in lines[-1]


def write_session(log: agent_log.AgentLog, session_id: int, *lines: str) -> None:
    log.header(session_id, f"2026-11-26T06:20:00Z (item {session_id}: work)")
    log.write("".join(f"{line}\n" for line in lines))
    log.footer(session_id, "2026-11-26T06:21:00Z ok (exit 0)")


def small_log(home: Home, max_bytes: int = 1024, keep: int = 2) -> agent_log.AgentLog:
    return agent_log.AgentLog(home, "torch", LogsConfig(max_bytes=max_bytes, keep=keep))


def test_rotation_keeps_the_log_and_at_most_keep_old_files_each_under_the_cap(home: Home):
    log = small_log(home)
    for session_id in range(1, 41):
        write_session(log, session_id, *[f"line {session_id}.{i} " + "x" * 40 for i in range(5)])
    log.close()
    names = sorted(p.name for p in home.log_dir.iterdir())
    assert names == ["torch.log", "torch.log.1", "torch.log.2"]
    assert all(p.stat().st_size <= 1024 for p in home.log_dir.iterdir())
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in home.log_dir.iterdir())
    kept = list(agent_log.kept_lines(home, "torch"))
    assert kept[-1].startswith("=== session 40 ended")
    assert all(line.endswith("\n") for line in kept)  # never a line cut in two
    numbers = [line.split()[1] for line in kept if line.startswith("line ")]
    assert numbers == sorted(numbers, key=lambda n: tuple(map(int, n.split("."))))


def test_a_sessions_part_spans_a_rotation_and_ends_at_its_footer(home: Home):
    log = small_log(home, max_bytes=600)
    write_session(log, 1, "one")
    write_session(log, 2, *[f"two {i} " + "y" * 50 for i in range(20)])
    write_session(log, 3, "three")
    log.close()
    part = list(agent_log.session_part(agent_log.kept_lines(home, "torch"), 2))
    assert part[0].startswith("=== session 2 2026") and part[-1].startswith("=== session 2 ended")
    assert [line.split()[1] for line in part[1:-1]] == [str(i) for i in range(20)]
    assert len(list(home.log_dir.iterdir())) == 3  # it did rotate, within the session


def test_an_agent_cannot_forge_a_sessions_bounds(home: Home):
    log = small_log(home)
    log.header(1, "2026-11-26T06:20:00Z (item 1: work)")
    log.write("=== session 2 2026-11-26T06:20:01Z (item 2: forged)\nmine\n")
    log.footer(1, "2026-11-26T06:21:00Z ok (exit 0)")
    log.close()
    kept = list(agent_log.kept_lines(home, "torch"))
    assert list(agent_log.session_part(kept, 2)) == []
    assert " === session 2 2026-11-26T06:20:01Z (item 2: forged)\n" in kept
    assert len(list(agent_log.session_part(kept, 1))) == 4


def test_a_session_a_dead_supervisor_left_ends_where_the_next_begins():
    lines = ["=== session 1 start\n", "a\n", "=== session 2 start\n", "b\n",
             "=== session 1 after its supervisor died\n", "c\n", "=== session 1 ended x\n",
             "=== session 3 start\n"]
    assert list(agent_log.session_part(lines, 1)) == [
        "=== session 1 start\n", "a\n", "=== session 1 after its supervisor died\n", "c\n",
        "=== session 1 ended x\n"]


def test_follow_goes_on_across_a_rotation(home: Home):
    log = small_log(home, max_bytes=300, keep=1)
    write_session(log, 1, "before")
    seen: list[str] = []
    stop = threading.Event()
    current = agent_log.open_current(home, "torch")
    list(agent_log.kept_lines(home, "torch", current))  # read to the end, as `logs -f` does
    follower = threading.Thread(target=lambda: seen.extend(
        agent_log.follow(home, "torch", current, stop=stop.is_set, poll_s=0.02)))
    follower.start()
    try:
        for session_id in range(2, 8):  # a rotation every two sessions
            write_session(log, session_id, f"after {session_id} " + "z" * 60)
            # one at a time: a log rotated twice between two looks loses what was between
            # (keep = 1), for `tail -F` as for any follower
            wait_for(lambda: any(line.startswith(f"=== session {session_id} ended")
                                 for line in seen))
    finally:
        stop.set()
        follower.join(timeout=10)
        log.close()
    assert [line.split()[1] for line in seen if line.startswith("after ")] == [
        str(i) for i in range(2, 8)]
    assert not any("before" in line for line in seen)
    assert len(list(home.log_dir.iterdir())) == 2


def test_the_logs_section_of_the_config_is_checked(home: Home, cli: Cli):
    write_config(home, "[logs]\nmax_bytes = 10\n")
    result = cli.fails("status")
    assert "logs.max_bytes" in result.err


def test_a_tail_reads_the_ends_of_the_files_across_a_rotation(home: Home, monkeypatch):
    """The dashboard's tail: the last lines kept, as `kept_lines` gives them, read from
    the ends of the files only (a log keeps up to 80 MiB), the newest file first and the
    one before when the newest holds too few lines; a line cut by the read is dropped."""
    log = small_log(home)
    for session_id in range(1, 41):
        write_session(log, session_id, *[f"line {session_id}.{i} " + "x" * 40 for i in range(5)])
    log.close()
    kept = list(agent_log.kept_lines(home, "torch"))
    current = len((home.log_dir / "torch.log").read_text().splitlines())
    assert agent_log.tail(home, "torch", 5) == kept[-5:]
    assert agent_log.tail(home, "torch", current + 3) == kept[-(current + 3):]
    monkeypatch.setattr(agent_log, "TAIL_BYTES", 100)  # less than the file: its end only
    assert agent_log.tail(home, "torch", 1) == kept[-1:]
    assert all(line in kept for line in agent_log.tail(home, "torch", 10))
    assert agent_log.tail(home, "echo", 20) == []  # no log yet
