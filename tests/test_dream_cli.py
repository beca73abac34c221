"""`torchsm dream NAME | run NAME | list [NAME] | show ID`: real processes, text and --json,
the refusals, and the dream on nova.coordination.messages (a real redis-server)."""

from __future__ import annotations

import time

import pytest

from dream_support import History
from mirror_support import stream_entries
from torchsm.mirror.streams import MESSAGES_STREAM, OPS_STREAM

MISSING = "ModuleNotFoundError: No module named 'foo'"


@pytest.fixture
def failing_torch(torch_cli, home):
    """torch_cli, whose last three items died of the same error ten minutes ago."""
    h = History(home)
    now = time.time()
    for n in range(3):
        h.item(now - 3600, text=f"task {n}", status="dead", attempts=3,
               finished=now - 600 + n, error=MISSING)
    h.close()
    return torch_cli


def test_dream_name_prints_its_insights(failing_torch):
    out = failing_torch("dream", "torch").out.splitlines()
    assert out[0].startswith("dream 1 of torch: done; read items 3; ")
    assert out[2].startswith(f' 1. [reflection] The same failure "{MISSING}" hit 3 items '
                             "(1, 2 and 3) from ")
    assert any(line.startswith(" 2. [plan] Find the cause of") for line in out)
    assert out[-1] == "(`torchsm dream show 1` shows the evidence)"
    assert failing_torch("status", "torch", "--json").json()[0]["state"] == "working"


def test_json_gives_the_whole_dream(failing_torch):
    first = failing_torch("dream", "torch", "--json").json()
    assert set(first) == {"id", "nova", "status", "trigger", "started_at", "ended_at", "span",
                          "summary", "read", "event_id", "insight_count", "insights"}
    assert (first["id"], first["nova"], first["status"], first["trigger"]) == (
        1, "torch", "done", "command")
    assert first["insight_count"] == len(first["insights"]) >= 4
    failure = first["insights"][0]
    assert (failure["rank"], failure["phase"], failure["kind"]) == (1, 1, "recurring-failure")
    assert (failure["evidence"]["items"], failure["evidence"]["error"]) == ([1, 2, 3], MISSING)
    second = failing_torch("dream", "run", "torch", "--json").json()  # nothing new since
    assert (second["id"], second["insights"], second["span"]["from"]) == (
        2, [], first["span"]["to"])


def test_list_and_show(failing_torch):
    failing_torch("dream", "torch")
    failing_torch("dream", "torch")
    listed = failing_torch("dream", "list", "--json").json()
    assert [(d["id"], d["status"], d["insight_count"] > 0) for d in listed] == [
        (1, "done", True), (2, "done", False)]
    assert "insights" not in listed[0]
    assert failing_torch("dream", "list", "torch", "--limit", "1", "--json").json() == listed[1:]
    table = failing_torch("dream", "list").out.splitlines()
    assert table[0].split() == ["ID", "NOVA", "STATUS", "TRIGGER", "STARTED", "SPAN_FROM",
                                "INSIGHTS", "SUMMARY"]
    assert table[1].split()[:4] == ["1", "torch", "done", "command"]
    shown = failing_torch("dream", "show", "1", "--json").json()
    assert shown == {**listed[0], "insights": shown["insights"]}
    text = failing_torch("dream", "show", "1").out
    assert text.startswith("dream 1 of torch: done (command)\nstarted  ")
    assert 'recurring-failure failure:' in text and '"items": [1, 2, 3]' in text
    assert '    action {"do": "investigate", ' in text


@pytest.mark.parametrize("args, message", [
    (["dream", "ghost"], "no Nova named 'ghost'"),
    (["dream", "run", "ghost"], "no Nova named 'ghost'"),
    (["dream", "list", "ghost"], "no Nova named 'ghost'"),
    (["dream", "show", "99"], "no dream 99"),
    (["dream", "show", "first"], "invalid dream id 'first': ids are positive integers"),
    (["dream", "Bad"], "invalid Nova name 'Bad': use [a-z0-9][a-z0-9_-]{0,31}"),
])
def test_refusals_are_one_line_and_exit_1(failing_torch, args, message):
    result = failing_torch.fails(*args)
    assert (result.out, result.err) == ("", f"torchsm: error: {message}\n")


def test_a_cooling_nova_does_not_dream_until_its_rest_is_over(failing_torch):
    until = failing_torch("transition", "torch", "cool", "--for", "600", "--json").json()["until"]
    result = failing_torch.fails("dream", "torch")
    assert result.err == f"torchsm: error: cannot dream torch: cooling until {until}; dream after that\n"
    assert failing_torch("dream", "list", "--json").json() == []


def test_usage_errors_exit_2(failing_torch):
    assert failing_torch.fails("dream", code=2).err
    assert failing_torch.fails("dream", "list", "--limit", "0", code=2).err


def test_a_nova_named_like_a_subcommand_dreams_through_run(failing_torch):
    failing_torch("nova", "add", "list")
    assert failing_torch("dream", "list", "--json").json() == []  # the subcommand wins
    assert failing_torch("dream", "run", "list", "--json").json()["nova"] == "list"
    assert [d["nova"] for d in failing_torch("dream", "list", "--json").json()] == ["list"]


def test_a_dream_and_its_insights_are_mirrored(failing_torch, redis_db):
    shown = failing_torch("dream", "torch", "--json", TORCHSM_REDIS_URL=redis_db.url).json()
    [entry] = [e for e in stream_entries(redis_db, MESSAGES_STREAM) if e.type == "dream"]
    assert (entry.event_id, entry.nova) == (shown["event_id"], "torch")
    assert entry.data["dream"] == 1 and entry.data["outcome"] == "done"
    assert entry.data["insights"] == shown["insights"]
    transitions = [(e.data["from"], e.data["to"]) for e in stream_entries(redis_db, OPS_STREAM)
                   if e.type == "transition"]
    assert transitions == [("working", "dreaming"), ("dreaming", "working")]
    # the dream's outcome is not the Nova's status
    assert redis_db.client().get("nova.status.torch") == b"WORKING"


# --- never beside a live session (issue 20, finding 11) -----------------------------------

def test_a_dream_is_refused_while_a_supervised_session_runs(failing_torch):
    import signal
    import subprocess

    from helpers import rows, torchsm_executable, write_config
    from torchsm.config import Home

    write_config(Home(failing_torch.home), 'redis_url = "off"\n[supervisor]\nstop_grace_s = 1\n')
    failing_torch("queue", "add", "a long task")
    supervisor = subprocess.Popen([*torchsm_executable(), "run", "torch", "--once", "--",
                                   "sleep", "60"], env=failing_torch.env(),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not rows(failing_torch, "SELECT agent_pid FROM sessions WHERE agent_pid IS NOT NULL"):
            assert time.monotonic() < deadline, "the session never started"
            time.sleep(0.05)
        [(session, pid)] = rows(failing_torch, "SELECT id, agent_pid FROM sessions")
        refused = failing_torch.fails("dream", "torch")
        assert refused.err == (f"torchsm: error: cannot dream torch: session {session} is "
                               f"running (agent pid {pid}); dream when it has ended\n")
        assert rows(failing_torch, "SELECT count(*) FROM dreams") == [(0,)]
        assert failing_torch("status", "torch", "--json").json()[0]["state"] == "working"
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(30)
    assert failing_torch("dream", "torch", "--json").json()["status"] == "done"


def test_a_dream_is_refused_while_claude_code_runs_a_session_of_the_nova(failing_torch):
    from helpers import payload

    failing_torch("hook", "pre-tool-use", "--nova", "torch",
          input=payload("PreToolUse.json", session_id="cc-live"))
    refused = failing_torch.fails("dream", "torch")
    assert refused.err.startswith("torchsm: error: cannot dream torch: Claude Code session "
                                  "cc-live ran its pre-tool-use hook ")
    assert refused.err.endswith(" ago and has not ended; dream when it has ended\n")
    failing_torch("hook", "session-end", "--nova", "torch",
          input=payload("SessionEnd.json", session_id="cc-live"))
    assert failing_torch("dream", "torch", "--json").json()["status"] == "done"
