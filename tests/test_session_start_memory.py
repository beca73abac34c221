"""SessionStart hands the Nova's memory and its latest dream's insights to Claude Code
(issue 15, point 4): beside the task or the snapshot, ranked, and within what Claude
Code reads of a hook's output. Real `torchsm hook session-start` processes."""

from __future__ import annotations

import json
import os
import pwd

from helpers import Cli

CAP = 10_000  # what Claude Code reads of a hook's stdout (FIELD-NOTES)
USER = pwd.getpwuid(os.getuid()).pw_name


def session_start(cli: Cli, source: str = "startup") -> tuple[str, str]:
    out = cli("hook", "session-start", "--nova", "torch", input=json.dumps(
        {"session_id": "s1", "hook_event_name": "SessionStart", "source": source})).out
    context = json.loads(out)["hookSpecificOutput"]["additionalContext"]
    return out, context


def test_a_session_starts_with_the_task_the_memories_and_the_insights(torch_cli):
    torch_cli("memory", "add", "torch", "the deploy key lives in the vault, not in .env",
          TORCHSM_NOVA="torch")  # from its own session
    torch_cli("memory", "add", "torch", "reports run after billing", "--shared")
    for n in range(3):
        item = torch_cli("queue", "add", f"task {n}").out.strip()
        torch_cli("queue", "claim", "--nova", "torch")
        torch_cli("queue", "fail", item, "--error", "ImportError: cannot import name 'v2'")
    dream = torch_cli("dream", "torch", "--json").json()
    torch_cli("queue", "add", "ship the invoice export")
    torch_cli("queue", "claim", "--nova", "torch")
    _, context = session_start(torch_cli)
    lines = context.splitlines()
    assert lines[0].startswith("torchsm: you are Nova torch")
    assert "Current task (work item 4): ship the invoice export" in context
    insights = lines.index(next(line for line in lines if "latest dream" in line))
    memories = lines.index(next(line for line in lines if "remembers" in line))
    assert f"(dream {dream['id']}" in lines[insights] and insights < memories
    assert "cannot import name 'v2'" in "\n".join(lines[insights:memories])
    assert "the deploy key lives in the vault" in "\n".join(lines[memories:])
    # the dream remembered its findings as insight memories: said once, not twice
    remembered = torch_cli("memory", "list", "torch", "--json").json()
    assert any(m["kind"] == "insight" and "v2" in m["text"] for m in remembered)
    assert "v2" not in "\n".join(lines[memories:])
    assert f"[note, shared, by user {USER}] reports run after billing" in context


def test_long_memories_and_a_long_task_stay_under_claude_codes_cap(torch_cli):
    for n in range(60):
        torch_cli("memory", "add", "torch", f"memory {n}: " + "detail " * 250)
    torch_cli("queue", "add", "a long task " + "with many words " * 2000)
    torch_cli("queue", "claim", "--nova", "torch")
    for source in ("startup", "compact"):
        if source == "compact":
            torch_cli("hook", "pre-compact", "--nova", "torch", input=json.dumps(
                {"session_id": "s1", "hook_event_name": "PreCompact", "trigger": "auto"}))
        out, context = session_start(torch_cli, source)
        assert len(out) < CAP
        assert "torchsm queue show 1" in context  # the task, cut, with its pointer
        assert "memory 59:" in context  # the newest memory first among equals
        assert "more: `torchsm memory list torch`" in context


def test_no_memory_no_dream_the_context_is_as_before(torch_cli):
    _, context = session_start(torch_cli)
    assert context == "torchsm: you are Nova torch (torch), state working."
