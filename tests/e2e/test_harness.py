"""The pinned Claude Code CLI runs offline against the stand-in and fires its hooks with
the payloads torchsm is written against (guards against a silent change on a pin move)."""

import json


def test_claude_runs_offline_and_fires_hooks(claude, tmp_path):
    log = tmp_path / "hooks.jsonl"
    claude.write_settings({"hooks": {
        event: [{"hooks": [{"type": "command", "command": f"cat >> '{log}'; echo >> '{log}'"}]}]
        for event in ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd")}})
    result = claude.run("-p", "say hello", "--output-format", "json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["is_error"] is False and output["result"] == "Done."
    assert "total_cost_usd" in output
    assert claude.standin.message_requests == 1
    assert "say hello" in claude.standin.user_texts()[0]
    payloads = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    events = [p["hook_event_name"] for p in payloads]
    assert events == ["SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"]
    start, prompt, stop, end = payloads
    assert start["source"] == "startup" and prompt["prompt"] == "say hello"
    assert stop["stop_hook_active"] is False and stop["last_assistant_message"] == "Done."
    assert len({p["session_id"] for p in payloads}) == 1
