"""The usage gate on tool calls, under the real Claude Code CLI (pinned) against the stand-in.

Within one turn every tool round trip is one more API request, with no Stop hook between.
torchsm's PreToolUse hook ends the turn when the account's windows say stop: it denies the
tool and answers `continue: false`, and Claude Code then sends nothing more (terminal_reason
`hook_stopped`; 2.1.332, see FIELD-NOTES).

The window is stored with `accounts.learn` before the run, as an earlier answer on the
account (the supervisor reading a rate_limit_event) leaves it, and the CLI runs directly,
not through `torchsm run`: under the supervisor the window of the session's own first
answer is stored by its reader thread while Claude Code starts the hook, and which comes
first is a race this test should not depend on. The stand-in still sends the headers of
the account at 96%, as a subscription account would.
"""

import json
import subprocess
import time

import pytest

from helpers import Cli, rows
from standin import Reply, tool_call, unified_headers
from torchsm.clock import format_time
from torchsm.config import Home
from torchsm.storage import store
from torchsm.usage import accounts


def a_reset(hours: int = 2) -> int:
    return int(time.time()) // 3600 * 3600 + hours * 3600


def learn(cli: Cli, utilization: float, reset: int, status: str) -> None:
    now = time.time()
    row = accounts.WindowRow("five_hour", status, utilization, reset, now, "event", "torch")
    with store.open_store(Home(cli.home)) as db:
        db.write(lambda conn: accounts.learn(conn, "default", [row], now))


def run_tool_turn(claude, cli: Cli) -> list[dict]:
    """`claude -p` in subscription mode, allowed to run Bash; its stream-json lines."""
    env = claude.env(TORCHSM_HOME=str(cli.home), TORCHSM_REDIS_URL="off",
                     CLAUDE_CODE_OAUTH_TOKEN="standin-oauth", TZ="UTC")
    env.pop("ANTHROPIC_API_KEY")
    result = subprocess.run(
        [str(claude.binary), "-p", "run the tests", "--output-format", "stream-json",
         "--verbose", "--allowedTools", "Bash"],
        cwd=claude.project, env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("gate, utilization", [("installed", 0.96), ("removed", 0.96),
                                               ("installed", 0.5)])
def test_at_a_stop_a_tool_call_ends_the_turn_without_another_request(wired, claude, gate,
                                                                     utilization):
    reset = a_reset()
    status = "allowed_warning" if utilization >= 0.8 else "allowed"
    headers = unified_headers(utilization, reset, status)
    marker = claude.project / "tool-ran"
    claude.standin.policy = lambda n, body: (
        tool_call(f"touch {marker}", headers=headers) if n == 1
        else Reply(text="Tests pass.", headers=headers))
    if gate == "removed":
        settings = claude.settings()
        del settings["hooks"]["PreToolUse"]
        claude.write_settings(settings)
    learn(wired, utilization, reset, status)

    lines = run_tool_turn(claude, wired)
    [result] = [line for line in lines if line.get("type") == "result"]
    pre_tool_use = rows(wired, "SELECT outcome FROM hook_runs WHERE event = 'pre-tool-use'")
    [row] = wired("status", "torch", "--json").json()

    if gate == "installed" and utilization > 0.95:
        assert claude.standin.message_requests == 1
        assert not marker.exists()  # the tool was denied, not run
        assert result["terminal_reason"] == "hook_stopped" and result["is_error"] is False
        assert [d["tool_name"] for d in result["permission_denials"]] == ["Bash"]
        assert pre_tool_use == [("blocked",)]
        assert row["state"] == "cooling" and row["until"] == format_time(reset + 120)
        assert row["limit_hold"].startswith("usage limit: five_hour 96%")
        # no Stop hook follows a turn ended so
        assert rows(wired, "SELECT count(*) FROM hook_runs WHERE event = 'stop'") == [(0,)]
    else:
        # without the gate, or below the stop: the tool runs and its result is sent
        assert claude.standin.message_requests == 2
        assert marker.exists() and result["terminal_reason"] == "completed"
        assert pre_tool_use == ([("recorded",)] if gate == "installed" else [])
