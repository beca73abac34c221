"""Hooks fed odd input (issue 14, findings 6, 7 and 12's SIGINT): a hook never fails half
way, never prints more than Claude Code reads, and never prints a traceback."""

import json
import os
import signal
import subprocess
import time

import pytest

from helpers import Cli, Result, payload, rows, torchsm_executable
from torchsm.config import Home, load_config

CLAUDE_CODE_CAP = 10_000  # characters of a hook's stdout that Claude Code reads (FIELD-NOTES)
BIG = 100_000


def hook_bytes(cli: Cli, event: str, data: bytes, nova: str = "torch") -> Result:
    """The hook with raw bytes on stdin (the Cli helper sends text)."""
    proc = subprocess.run([*torchsm_executable(), "hook", event, "--nova", nova], input=data,
                          capture_output=True, env=cli.env(), timeout=60)
    result = Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    assert result.code in (0, 1), (result.code, result.err)
    assert "Traceback" not in result.err
    return result


def statuses(cli: Cli) -> dict[int, str]:
    return {i["id"]: i["status"] for i in cli("queue", "list", "--json").json()}


# --- finding 6: a lone surrogate or a non-UTF-8 byte ----------------------------------

# JSON text with a lone surrogate escape, and raw bytes that are not UTF-8
ODD_STOPS = {
    "surrogate in the message": payload("Stop.json").replace('"Done."', '"Done \\ud800."'),
    "surrogate in the session": payload("Stop.json").replace('"37d4a964', '"\\udfff37d4a964'),
    "invalid UTF-8 in the message": payload("Stop.json").encode().replace(b"Done.", b"Do\xff\xfe."),
    "invalid UTF-8 in the session": payload("Stop.json").encode().replace(b'"37d4a964',
                                                                        b'"\xc3(37d4a964'),
}


@pytest.mark.parametrize("case", ODD_STOPS)
def test_stop_with_odd_text_continues_with_the_claim_recorded(torch_cli, case):
    first = torch_cli("queue", "add", "first task", "--json").json()["id"]
    second = torch_cli("queue", "add", "second task", "--json").json()["id"]
    stdin = ODD_STOPS[case]
    result = hook_bytes(torch_cli, "stop", stdin if isinstance(stdin, bytes) else stdin.encode())
    assert (result.code, result.err) == (0, ""), result.err
    decision = json.loads(result.out)
    assert decision["decision"] == "block" and f"work item {first}" in decision["reason"]
    assert statuses(torch_cli) == {first: "claimed", second: "pending"}
    [(outcome, item, session, digest)] = rows(
        torch_cli, "SELECT outcome, item_id, session_id, message_digest FROM hook_runs")
    assert (outcome, item) == ("continued", first) and session and digest
    # the chain goes on: the next Stop finishes the first item and hands over the second
    again = hook_bytes(torch_cli, "stop", stdin if isinstance(stdin, bytes) else stdin.encode())
    assert f"work item {second}" in json.loads(again.out)["reason"]
    assert statuses(torch_cli) == {first: "done", second: "claimed"}


ODD_COMPACTS = {
    "surrogate in the trigger": payload("PreCompact-manual.json").replace('"manual"',
                                                                          '"man\\ud800ual"'),
    "surrogate in the session": payload("PreCompact-manual.json").replace('"a3366a90',
                                                                          '"\\ud800a3366a90'),
    "invalid UTF-8 in the session": payload("PreCompact-manual.json").encode().replace(
        b'"a3366a90', b'"\xffa3366a90'),
    "invalid UTF-8 in the instructions": payload("PreCompact-manual.json").encode().replace(
        b'"custom_instructions": null', b'"custom_instructions": "\x80\x80"'),
}


@pytest.mark.parametrize("case", ODD_COMPACTS)
def test_pre_compact_with_odd_text_saves_a_snapshot_and_transitions(torch_cli, case):
    item = torch_cli("queue", "add", "refactor the parser", "--json").json()["id"]
    torch_cli("queue", "claim", "--nova", "torch")
    stdin = ODD_COMPACTS[case]
    result = hook_bytes(torch_cli, "pre-compact",
                        stdin if isinstance(stdin, bytes) else stdin.encode())
    assert (result.code, result.out, result.err) == (0, "", "")
    assert torch_cli("status", "torch", "--json").json()[0]["state"] == "compacting"
    [(content, session, trigger)] = rows(torch_cli,
                                         "SELECT content, session_id, trigger FROM snapshots")
    assert json.loads(content)["current_item"]["id"] == item and session and trigger
    start = hook_bytes(torch_cli, "session-start",
                       payload("SessionStart-resume.json", source="compact").encode())
    assert "refactor the parser" in json.loads(start.out)["hookSpecificOutput"]["additionalContext"]
    assert torch_cli("status", "torch", "--json").json()[0]["state"] == "working"


def test_session_start_and_stop_failure_with_odd_text(torch_cli):
    start = hook_bytes(torch_cli, "session-start",
                       b'{"source": "st\xffartup", "session_id": "\xfe"}')
    assert start.code == 0 and json.loads(start.out)["hookSpecificOutput"]["additionalContext"]
    failure = hook_bytes(torch_cli, "stop-failure",
                         b'{"error": "over\xffloaded", "session_id": "s",'
                         b' "last_assistant_message": "\\udc80"}')
    assert failure.code == 0
    outcomes = [r[0] for r in rows(torch_cli, "SELECT outcome FROM hook_runs")]
    assert outcomes == ["context", "recorded"]


def _in_process(torch_cli: Cli, event: str, stdin: str):
    from torchsm.hooks.handlers import run_hook

    home = Home(torch_cli.home)
    return run_hook(home, load_config(home), event, "torch", stdin, env={})


def test_a_stop_that_fails_after_deciding_leaves_nothing_claimed(torch_cli, monkeypatch):
    from torchsm.hooks import stop

    torch_cli("queue", "add", "a task")
    monkeypatch.setenv("TORCHSM_REDIS_URL", "off")

    def broken(item, **_):
        raise RuntimeError("could not word the task")

    monkeypatch.setattr(stop, "continuation_reason", broken)
    with pytest.raises(RuntimeError):
        _in_process(torch_cli, "stop", payload("Stop.json"))
    assert list(statuses(torch_cli).values()) == ["pending"]


def test_a_pre_compact_that_fails_to_snapshot_changes_no_state(torch_cli, monkeypatch):
    from torchsm.hooks import handlers

    monkeypatch.setenv("TORCHSM_REDIS_URL", "off")

    def broken(ctx, trigger):
        raise RuntimeError("could not read the work state")

    monkeypatch.setattr(handlers, "_snapshot", broken)
    with pytest.raises(RuntimeError):
        _in_process(torch_cli, "pre-compact", payload("PreCompact-manual.json"))
    assert torch_cli("status", "torch", "--json").json()[0]["state"] == "working"


# --- finding 7: a long item or message stays under Claude Code's cap --------------------

def big_text(kind: str) -> str:
    unit = {"ascii": "lorem ipsum dolor sit amet ", "unicode": "é😀\u2028\x07\"\\ ",
            "lines": "line\n"}[kind]
    return (unit * (BIG // len(unit) + 1))[:BIG] + "THE END"


def add_item(cli: Cli, text: str) -> int:
    """Add an item through the library: 100,000 characters of non-ASCII text are more
    than one command-line argument may hold."""
    from torchsm.work import work_queue

    home = Home(cli.home)
    with work_queue.open_queue(home, load_config(home)) as q:
        return q.add(text).id


def pointer_id(text: str) -> int:
    assert "[... cut" in text, text[-300:]
    return int(text.rsplit("`torchsm queue show ", 1)[1].split("`", 1)[0])


@pytest.mark.parametrize("kind", ["ascii", "unicode", "lines"])
def test_a_long_item_is_cut_in_the_stop_reason_with_a_pointer(torch_cli, kind):
    text = big_text(kind)
    item = add_item(torch_cli, text)
    result = hook_bytes(torch_cli, "stop", payload("Stop.json").encode())
    assert result.code == 0 and len(result.out) < CLAUDE_CODE_CAP, len(result.out)
    reason = json.loads(result.out)["reason"]
    assert pointer_id(reason) == item and f"torchsm queue done {item}" in reason
    assert text[:1000] in reason and "THE END" not in reason
    shown = torch_cli("queue", "show", str(item))
    assert "status:      claimed" in shown.out and shown.out.endswith("THE END\n")
    if kind != "unicode":  # (text output shows control characters as escapes)
        assert shown.out.endswith("\n\n" + text + "\n")
    assert torch_cli("queue", "show", str(item), "--json").json()["text"] == text


def test_queue_show(torch_cli):
    item = torch_cli("queue", "add", "two\nlines", "--nova", "torch", "-p", "high", "--json").json()
    out = torch_cli("queue", "show", str(item["id"])).out
    assert out.splitlines()[0] == f"id:          {item['id']}"
    assert "status:      pending" in out and "priority:    high" in out
    assert out.endswith("\n\ntwo\nlines\n")
    assert torch_cli("queue", "show", str(item["id"]), "--json").json() == item
    missing = torch_cli.fails("queue", "show", "999")
    assert missing.err == "torchsm: error: no work item 999\n"
    assert torch_cli.fails("queue", "show", "abc").err.startswith(
        "torchsm: error: invalid work item")


def test_session_start_cuts_a_long_task_and_long_messages(torch_cli):
    torch_cli("nova", "add", "echo")
    text = big_text("unicode")
    item = add_item(torch_cli, text)
    torch_cli("queue", "claim", "--nova", "torch")
    for n in range(5):
        torch_cli("message", "send", "echo", "torch", f"message {n} " + big_text("ascii"))
    result = hook_bytes(torch_cli, "session-start", payload("SessionStart-startup.json").encode())
    assert result.code == 0 and len(result.out) < CLAUDE_CODE_CAP, len(result.out)
    context = json.loads(result.out)["hookSpecificOutput"]["additionalContext"]
    assert pointer_id(context) == item and text[:500] in context
    for n in range(5):
        assert f"message {n} lorem ipsum" in context
    assert context.count("`torchsm message list torch`") == 5 and "THE END" not in context


def test_a_long_message_alone_in_the_inbox_is_cut(torch_cli):
    torch_cli("nova", "add", "echo")
    torch_cli("message", "send", "echo", "all", big_text("lines"))
    result = hook_bytes(torch_cli, "session-start", payload("SessionStart-startup.json").encode())
    assert result.code == 0 and len(result.out) < CLAUDE_CODE_CAP, len(result.out)
    context = json.loads(result.out)["hookSpecificOutput"]["additionalContext"]
    assert "`torchsm message list torch`" in context and "line\nline\n" in context
    listed = torch_cli("message", "list", "torch", "--json").json()
    assert listed[0]["text"] == big_text("lines")


def test_the_compaction_snapshot_is_cut_too(torch_cli):
    torch_cli("nova", "add", "echo")
    text = big_text("unicode")
    item = add_item(torch_cli, text)
    torch_cli("queue", "claim", "--nova", "torch")
    for n in range(5):
        torch_cli("message", "send", "echo", "torch", big_text("unicode")[:40_000])
    torch_cli("transition", "torch", "cool", "--for", "1", "--reason", big_text("ascii"))
    torch_cli("transition", "torch", "work", "--force")
    compact = payload("PreCompact-manual.json").encode()
    assert hook_bytes(torch_cli, "pre-compact", compact).code == 0
    [(content,)] = rows(torch_cli, "SELECT content FROM snapshots")
    assert json.loads(content)["current_item"]["text"] == text  # stored whole
    start = hook_bytes(torch_cli, "session-start",
                       payload("SessionStart-resume.json", source="compact").encode())
    assert start.code == 0 and len(start.out) < CLAUDE_CODE_CAP, len(start.out)
    context = json.loads(start.out)["hookSpecificOutput"]["additionalContext"]
    assert pointer_id(context) == item and "Recent transitions" in context


def test_the_supervisors_prompt_is_cut_for_the_argument_limit():
    from torchsm.tiers import Tier
    from torchsm.work import prompts, work_queue

    def item(text):
        return work_queue.WorkItem(7, text, None, Tier.HIGH, work_queue.ItemStatus.CLAIMED, 1, 3,
                                  None, None, "torch", 0.0, 0.0, None, None, None)

    short = prompts.item_prompt(item("short task"))
    assert short.startswith("short task\n\n[torchsm work item 7 (high).")
    assert short.endswith(' To remember something for later sessions: '
                          '`torchsm memory add "$TORCHSM_NOVA" "..."`.]')
    for text in ("x" * 300_000, "漢" * 300_000):
        for prompt in (prompts.item_prompt(item(text)),
                       prompts.restart_prompt("why", item(text))):
            assert len(prompt.encode()) <= prompts.PROMPT_MAX < 128 * 1024
            assert "`torchsm queue show 7`" in prompt and "`torchsm queue done 7`" in prompt


def test_cut_measures_what_is_printed():
    from torchsm.work import prompts

    assert prompts.cut("short", 100, "task", "torchsm queue show 1") == "short"
    for text in ("a" * 50_000, "\x01" * 50_000, "😀" * 50_000):
        out = prompts.cut(text, 2_000, "task", "torchsm queue show 1")
        assert len(json.dumps(out)) - 2 <= 2_000 and out.startswith(text[:10])
        assert out.endswith("`torchsm queue show 1` prints it]")


# --- finding 12: SIGINT in a hook -------------------------------------------------------

def _reading_stdin(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields[:2] == ["0", "0x0"]  # read(0, ...) on x86_64


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_in_a_hook_is_one_line_and_exit_1(torch_cli, signum):
    proc = subprocess.Popen([*torchsm_executable(), "hook", "stop", "--nova", "torch"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=torch_cli.env())
    try:
        deadline = time.monotonic() + 20
        while not _reading_stdin(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not os.path.exists(f"/proc/{proc.pid}/syscall"):
            time.sleep(3)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode in (0, 1), (proc.returncode, err.decode())
    assert err.decode().startswith("torchsm: error: hook stop: ") and err.count(b"\n") == 1
    assert out == b""


def test_deeply_nested_json_on_stdin_is_one_line_and_exit_1(torch_cli):
    result = hook_bytes(torch_cli, "stop", b"[" * 100_000)
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err == "torchsm: error: hook stop: stdin is JSON nested too deeply; the agent may stop\n"


def test_a_long_wake_message_is_cut_in_the_prompt_with_a_pointer():
    from torchsm.work import prompts

    prompt = prompts.wake_prompt("critical", "pager", "x" * 300_000, "torch")
    assert len(prompt.encode()) <= prompts.PROMPT_MAX
    assert prompt.startswith("Wake signal (critical) from pager: xxx")
    assert prompt.endswith("`torchsm wake list torch` prints it]")
