"""`torchsm run` driving the real Claude Code CLI (pinned) against the counting stand-in."""

import signal
import subprocess
import time

import pytest

from helpers import Cli, rows, stop_failure_outcomes, torchsm_executable, write_config
from standin import Reply
from torchsm.config import Home

FAST = """
redis_url = "off"
[personalities.torch]
base_cycle_s = 0.2
[supervisor]
load_stretch_above = 0
"""


@pytest.fixture
def claude_torch(torch_cli: Cli, claude) -> Cli:
    """torch_cli on this file's FAST rhythm."""
    write_config(Home(torch_cli.home), FAST)
    return torch_cli


def claude_command(claude) -> list[str]:
    return ["--cwd", str(claude.project), "--", str(claude.binary), "-p", "{prompt}",
            "--output-format", "json"]


def run_env(claude, cli: Cli, **extra) -> dict[str, str]:
    """Claude Code's offline environment, and torchsm's home, for the supervisor (whose
    children inherit it)."""
    return claude.env(TORCHSM_HOME=str(cli.home), TORCHSM_REDIS_URL="off", **extra)



def test_the_supervisor_works_through_a_queue_one_session_per_item(claude_torch, claude):
    for text in ("rename the config loader", "add a --dry-run flag", "update the changelog"):
        claude_torch("queue", "add", text)
    proc = subprocess.run([*torchsm_executable(), "run", "torch", "--until-idle",
                           *claude_command(claude)], env=run_env(claude, claude_torch),
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert claude.standin.message_requests == 3
    texts = claude.standin.user_texts()
    for n, text in enumerate(("rename the config loader", "add a --dry-run flag",
                              "update the changelog")):
        assert text in texts[n]
    assert [i["status"] for i in claude_torch("queue", "list", "--json").json()] == ["done"] * 3
    ledger = rows(claude_torch, "SELECT outcome, exit_status, cost_usd, agent_session_id"
                         " FROM sessions ORDER BY id")
    assert [(o, e) for o, e, _, _ in ledger] == [("ok", 0)] * 3
    assert all(cost is not None and session for _, _, cost, session in ledger)


def test_the_model_and_tokens_the_api_reported_land_in_the_ledger(claude_torch, claude):
    claude_torch("queue", "add", "say done")
    claude.standin.policy = lambda n, body: Reply(usage={
        "input_tokens": 1200, "output_tokens": 40, "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 500})
    proc = subprocess.run([*torchsm_executable(), "run", "torch", "--until-idle",
                           *claude_command(claude)[:-1], "stream-json", "--verbose"],
                          env=run_env(claude, claude_torch), capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    asked = claude.standin.bodies[0]["model"]  # the model Claude Code asked for
    assert rows(claude_torch, "SELECT model, input_tokens, output_tokens, cache_creation_tokens,"
                              " cache_read_tokens FROM sessions") == [
        (asked, 1200, 40, 3000, 500)]
    [day] = claude_torch("usage", "--daily", "--json").json()["periods"]
    assert day["models"] == [asked] and day["tokens"]["cache_creation"] == 3000


def test_with_the_hooks_installed_one_session_continues_through_the_queue(claude_torch, claude):
    claude_torch("hooks", "install", "--nova", "torch", "--project", str(claude.project))
    for n in range(3):
        claude_torch("queue", "add", f"task number {n}")
    proc = subprocess.run([*torchsm_executable(), "run", "torch", "--until-idle",
                           *claude_command(claude)], env=run_env(claude, claude_torch),
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    # the session's own item, then two Stop-hook continuations, then the allowed stop
    assert claude.standin.message_requests == 3
    assert rows(claude_torch, "SELECT kind, item_id, outcome FROM sessions") == [("item", 1, "ok")]
    assert [i["status"] for i in claude_torch("queue", "list", "--json").json()] == ["done"] * 3
    assert [r[0] for r in rows(claude_torch, "SELECT outcome FROM hook_runs WHERE event = 'stop'"
                                      " ORDER BY id")] == ["continued", "continued", "allowed"]


def test_a_429_cools_with_growing_cooldowns_and_requests_stay_within_budget(claude_torch, claude):
    write_config(Home(claude_torch.home), FAST + """max_sessions_per_hour = 6
[safety]
cooldown_base_s = 1
cooldown_cap_s = 8
cooldown_jitter = 0
meditation_s = 600
""")
    claude_torch("hooks", "install", "--nova", "torch", "--project", str(claude.project))
    for n in range(5):
        claude_torch("queue", "add", f"task {n}")
    claude.standin.policy = lambda n, body: Reply(status=429, text="Rate limited",
                                                  error_type="rate_limit_error")
    run = subprocess.Popen([*torchsm_executable(), "run", "torch", *claude_command(claude)],
                           env=run_env(claude, claude_torch, CLAUDE_CODE_MAX_RETRIES="0"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if claude_torch("status", "torch", "--json").json()[0]["state"] == "meditating":
                break
            time.sleep(0.2)
        requests = claude.standin.message_requests
        time.sleep(1)  # nothing more is sent while it meditates
        assert claude.standin.message_requests == requests
    finally:
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert claude_torch("status", "torch", "--json").json()[0]["state"] == "meditating"
    # each session sent one request, and each 429 cooled the Nova for longer
    waits = rows(claude_torch, "SELECT event, until - at FROM history"
                        " WHERE event IN ('cool', 'meditate') ORDER BY id")
    assert [event for event, _ in waits] == ["cool", "cool", "cool", "meditate"]
    assert [round(length) for _, length in waits] == [1, 2, 4, 600]
    sessions = rows(claude_torch, "SELECT outcome, api_error_status FROM sessions ORDER BY id")
    assert sessions == [("rate_limited", 429)] * 4
    assert claude.standin.message_requests == len(sessions) <= 6
    # each 429 was answered once, by whichever process heard it first (the cooldowns above:
    # none twice). The StopFailure hooks answered or found it answered; on a loaded machine
    # one may not record at all (3 of 4 here, twice): it outlives `claude -p`, which does
    # not wait for it, and the supervisor's settle answers the session then
    outcomes = stop_failure_outcomes(claude_torch, 4, timeout_s=10)
    assert outcomes and set(outcomes) <= {"cooled", "meditated", "recorded"}
    assert rows(claude_torch, "SELECT answer FROM sessions") == [("hold_account",)] * 4
    # nothing stays claimed: each failed item went back with its attempt counted (the first
    # one three times, which makes it dead)
    items = claude_torch("queue", "list", "--json").json()
    assert [(i["status"], i["attempts"]) for i in items] == [("dead", 3), ("pending", 1)] + [
        ("pending", 0)] * 3
