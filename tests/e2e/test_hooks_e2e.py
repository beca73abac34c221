"""The hooks under the real Claude Code CLI (pinned), against the local API stand-in."""

import json
import sqlite3

import pytest

from helpers import Cli, stop_failure_outcomes, write_config
from standin import Reply
from torchsm.config import Home


@pytest.fixture
def stepping(wired: Cli, claude) -> Cli:
    """`wired`, and the model ends each turn with a different message, as a working
    agent does."""
    claude.standin.policy = lambda n, body: Reply(text=f"Finished step {n}.")
    return wired


def run_claude(claude, cli: Cli, *args: str, **env):
    return claude.run(*args, TORCHSM_HOME=str(cli.home), TORCHSM_REDIS_URL="off", **env)


def outcomes(cli: Cli, event: str = "stop") -> list[str]:
    conn = sqlite3.connect(cli.home / "torchsm.db")
    try:
        return [r[0] for r in conn.execute(
            "SELECT outcome FROM hook_runs WHERE event = ? ORDER BY id", (event,))]
    finally:
        conn.close()


def test_one_run_works_through_three_items_by_stop_continuations(stepping, claude):
    for n in range(3):
        stepping("queue", "add", f"task number {n}")
    result = run_claude(claude, stepping, "-p", "start working", "--output-format", "json")
    assert result.returncode == 0, result.stderr
    assert claude.standin.message_requests == 4
    texts = claude.standin.user_texts()
    for n in range(3):
        assert f"task number {n}" in texts[n + 1]  # each continuation carried its task
    assert [i["status"] for i in stepping("queue", "list", "--json").json()] == ["done"] * 3
    assert outcomes(stepping) == ["continued"] * 3 + ["allowed"]
    events = {r[0] for r in sqlite3.connect(stepping.home / "torchsm.db").execute(
        "SELECT event FROM hook_runs")}
    assert {"session-start", "user-prompt-submit", "stop", "session-end"} <= events


def test_continuation_cap_ends_the_run(stepping, claude):
    write_config(Home(stepping.home), "[supervisor]\nmax_continuations = 5\n")
    lines = "\n".join(f"item {n}" for n in range(100))
    path = stepping.home / "items.txt"
    path.write_text(lines + "\n")
    stepping("queue", "import", str(path))
    result = run_claude(claude, stepping, "-p", "start", "--output-format", "json")
    assert result.returncode == 0, result.stderr
    assert claude.standin.message_requests == 6
    assert outcomes(stepping) == ["continued"] * 5 + ["allowed"]
    [(requested,)] = sqlite3.connect(stepping.home / "torchsm.db").execute(
        "SELECT restart_requested_at FROM novas")
    assert requested is not None  # work is left: the supervisor is asked to start a session


def test_no_progress_breaker_stops_identical_turns(stepping, claude):
    claude.standin.policy = lambda n, body: Reply(text="I am stuck on this.")
    for n in range(10):
        stepping("queue", "add", f"t{n}")
    result = run_claude(claude, stepping, "-p", "start", "--output-format", "json")
    assert result.returncode == 0, result.stderr
    # three continuations end alike (no_progress_continuations = 3): the fourth Stop stops
    assert claude.standin.message_requests == 4
    assert outcomes(stepping) == ["continued"] * 3 + ["allowed"]


def test_a_burst_of_stops_bangs_and_cools_the_nova(stepping, claude):
    write_config(Home(stepping.home), "[safety]\nhook_burst = 3\n")
    for n in range(10):
        stepping("queue", "add", f"t{n}")
    result = run_claude(claude, stepping, "-p", "start", "--output-format", "json")
    assert result.returncode == 0, result.stderr
    assert claude.standin.message_requests == 4
    assert outcomes(stepping) == ["continued"] * 3 + ["bang"]
    assert stepping("status", "torch", "--json").json()[0]["state"] == "cooling"


def test_rate_limit_stop_failure_cools_until_the_reset(stepping, claude):
    claude.standin.policy = lambda n, body: Reply(
        status=429, text="You've hit your 5-hour limit · resets 5am (UTC)")
    result = run_claude(claude, stepping, "-p", "start", "--output-format", "json",
                        CLAUDE_CODE_MAX_RETRIES="0")
    assert result.returncode == 1
    assert json.loads(result.stdout)["api_error_status"] == 429
    # Claude Code terminates the StopFailure hook at once in -p mode: the installed
    # command ignores SIGTERM, so the handler still runs to the end, after claude's exit.
    assert stop_failure_outcomes(stepping, 1) == ["cooled"]
    [row] = stepping("status", "torch", "--json").json()
    assert row["state"] == "cooling"


def test_compact_in_a_continued_session_snapshots_and_restores(stepping, claude):
    first = run_claude(claude, stepping, "-p", "start", "--output-format", "json")
    assert first.returncode == 0, first.stderr
    stepping("queue", "add", "migrate the billing tables")
    item = stepping("queue", "claim", "--nova", "torch", "--json").json()["id"]
    compact = run_claude(claude, stepping, "-c", "-p", "/compact")
    assert compact.returncode == 0, compact.stderr
    conn = sqlite3.connect(stepping.home / "torchsm.db")
    events = [r[0] for r in conn.execute("SELECT event FROM hook_runs ORDER BY id")]
    assert "pre-compact" in events
    [(trigger, content)] = conn.execute("SELECT trigger, content FROM snapshots")
    assert trigger == "manual" and json.loads(content)["current_item"]["id"] == item
    states = [r[0] for r in conn.execute("SELECT to_state FROM history ORDER BY id")]
    assert states[-2:] == ["compacting", "working"]
    assert stepping("status", "torch", "--json").json()[0]["state"] == "working"
    # the restored work state reaches the model with the next prompt
    before = claude.standin.message_requests
    after = run_claude(claude, stepping, "-c", "-p", "carry on", "--output-format", "json")
    assert after.returncode == 0, after.stderr
    sent = json.dumps(claude.standin.bodies[before])
    assert "work state of Nova torch saved before the context compaction" in sent
    assert "migrate the billing tables" in sent


def test_memory_reaches_the_model_after_a_restart_and_after_a_compaction(stepping, claude):
    # a first session, then a memory: the next session (a restart) starts with it
    first = run_claude(claude, stepping, "-p", "start", "--output-format", "json")
    assert first.returncode == 0, first.stderr
    stepping("memory", "add", "torch", "the staging database password rotates on Mondays",
          TORCHSM_NOVA="torch")  # the agent's own note (a person's is in the others' part)
    before = claude.standin.message_requests
    restarted = run_claude(claude, stepping, "-p", "carry on", "--output-format", "json")
    assert restarted.returncode == 0, restarted.stderr
    sent = json.dumps(claude.standin.bodies[before])
    assert "the staging database password rotates on Mondays" in sent
    assert "What Nova torch remembers from earlier sessions" in sent
    # a memory added in the session, before a /compact: the request after it carries it
    stepping("memory", "add", "torch", "billing migrations must run before the reports job")
    compact = run_claude(claude, stepping, "-c", "-p", "/compact")
    assert compact.returncode == 0, compact.stderr
    before = claude.standin.message_requests
    after = run_claude(claude, stepping, "-c", "-p", "carry on", "--output-format", "json")
    assert after.returncode == 0, after.stderr
    sent = json.dumps(claude.standin.bodies[before])
    assert "work state of Nova torch saved before the context compaction" in sent
    assert "billing migrations must run before the reports job" in sent
    assert "the staging database password rotates on Mondays" in sent


def test_the_latest_dreams_insights_reach_the_model(stepping, claude):
    for n in range(3):  # the same error on three items: a recurring failure
        item = stepping("queue", "add", f"task {n}").out.strip()
        stepping("queue", "claim", "--nova", "torch")
        stepping("queue", "fail", item, "--error", "ModuleNotFoundError: No module named 'yaml'")
    dreamt = stepping("dream", "torch", "--json").json()
    assert dreamt["status"] == "done" and dreamt["insight_count"] >= 1
    before = claude.standin.message_requests
    run = run_claude(claude, stepping, "-p", "start", "--output-format", "json")
    assert run.returncode == 0, run.stderr
    sent = json.dumps(claude.standin.bodies[before])
    assert f"latest dream (dream {dreamt['id']}" in sent
    assert "No module named 'yaml'" in sent
