"""`torchsm hook EVENT`: the handlers, through the real CLI, with Claude Code's payloads."""

import json
import sqlite3
import time

import pytest

from helpers import PAYLOADS, Cli, Result, payload, rows, write_config
from torchsm.clock import format_time
from torchsm.config import Home

EVENT_FILES = {
    "session-start": "SessionStart-startup.json", "user-prompt-submit": "UserPromptSubmit.json",
    "pre-tool-use": "PreToolUse.json", "post-tool-use": "PostToolUse.json",
    "stop": "Stop.json", "pre-compact": "PreCompact-manual.json", "session-end": "SessionEnd.json",
}


def hook(cli: Cli, event: str, stdin: str, nova: str = "torch", **env) -> Result:
    result = cli("hook", event, "--nova", nova, input=stdin, check=False, **env)
    assert result.code in (0, 1), (result.code, result.err)
    assert "Traceback" not in result.err
    return result



@pytest.mark.parametrize("event", ["pre-tool-use", "post-tool-use", "user-prompt-submit",
                                   "session-end", "notification", "subagent-stop"])
def test_record_only_events(torch_cli, event):
    stdin = (PAYLOADS / EVENT_FILES.get(event, "PreToolUse.json")).read_text()
    result = hook(torch_cli, event, stdin)
    assert (result.code, result.out, result.err) == (0, "", "")
    [(recorded, outcome, session)] = rows(torch_cli,
                                          "SELECT event, outcome, session_id FROM hook_runs")
    assert (recorded, outcome) == (event, "recorded") and session


def test_stop_works_through_the_queue_then_lets_the_agent_stop(torch_cli):
    ids = [torch_cli("queue", "add", f"task {n}", "--json").json()["id"] for n in range(3)]
    reasons = []
    for n in range(3):
        result = hook(torch_cli, "stop", payload("Stop.json", stop_hook_active=n > 0))
        decision = json.loads(result.out)
        assert decision["decision"] == "block"
        reasons.append(decision["reason"])
    for item_id, reason in zip(ids, reasons):
        assert f"work item {item_id}" in reason and f"torchsm queue done {item_id}" in reason
        assert reason.endswith('To remember something for later sessions: '
                               '`torchsm memory add torch "..."`.')
    done = hook(torch_cli, "stop", payload("Stop.json", stop_hook_active=True))
    assert (done.code, done.out) == (0, "")
    assert [r["status"] for r in torch_cli("queue", "list", "--json").json()] == ["done"] * 3
    outcomes = [r[0] for r in rows(torch_cli, "SELECT outcome FROM hook_runs ORDER BY id")]
    assert outcomes == ["continued"] * 3 + ["allowed"]


def test_an_item_the_agent_finished_itself_is_left_alone(torch_cli):
    first = torch_cli("queue", "add", "one", "--json").json()["id"]
    torch_cli("queue", "add", "two")
    hook(torch_cli, "stop", payload("Stop.json"))
    torch_cli("queue", "fail", str(first), "--error", "could not")
    hook(torch_cli, "stop", payload("Stop.json", stop_hook_active=True))
    statuses = {r["id"]: r["status"] for r in torch_cli("queue", "list", "--json").json()}
    assert statuses[first] == "failed"


def test_the_supervisors_item_is_marked_done_at_the_first_stop(torch_cli):
    torch_cli("queue", "add", "given by the supervisor")
    item = torch_cli("queue", "claim", "--nova", "torch", "--json").json()["id"]
    hook(torch_cli, "stop", payload("Stop.json"), TORCHSM_ITEM=str(item), TORCHSM_NOVA="torch")
    assert torch_cli("queue", "list", "--json").json()[0]["status"] == "done"


def test_continuation_cap_per_prompt_then_restart_request(torch_cli):
    write_config(Home(torch_cli.home), "[supervisor]\nmax_continuations = 2\n")
    for n in range(4):
        torch_cli("queue", "add", f"task {n}")
    outs = [hook(torch_cli, "stop", payload("Stop.json", stop_hook_active=n > 0)).out
            for n in range(3)]
    assert [bool(o) for o in outs] == [True, True, False]
    [(requested, reason)] = rows(torch_cli,
                                 "SELECT restart_requested_at, restart_reason FROM novas")
    assert requested and "continuation cap reached (2 of 2" in reason
    # a new prompt in the same session starts a new chain
    hook(torch_cli, "user-prompt-submit", payload("UserPromptSubmit.json"))
    assert json.loads(hook(torch_cli, "stop", payload("Stop.json")).out)["decision"] == "block"


def test_an_item_whose_lease_lapsed_is_finished_not_left_as_work(torch_cli):
    """The item the stop marks done does not count as work left, though its lease lapsed
    during the turn (it would be claimable again): no restart is asked for."""
    write_config(Home(torch_cli.home), "[supervisor]\nmax_continuations = 1\n"
                                       "[queue]\nlease_s = 1\n")
    torch_cli("queue", "add", "the only task")
    assert json.loads(hook(torch_cli, "stop", payload("Stop.json")).out)["decision"] == "block"
    time.sleep(1.5)  # the continuation's lease lapses
    result = hook(torch_cli, "stop", payload("Stop.json", stop_hook_active=True))
    assert (result.code, result.out) == (0, "")
    assert torch_cli("queue", "list", "--json").json()[0]["status"] == "done"
    assert rows(torch_cli, "SELECT restart_requested_at FROM novas") == [(None,)]


def test_stop_lets_a_cooling_nova_stop(torch_cli):
    torch_cli("queue", "add", "pending work")
    torch_cli("transition", "torch", "cool", "--for", "60")
    result = hook(torch_cli, "stop", payload("Stop.json"))
    assert (result.code, result.out) == (0, "")
    assert torch_cli("queue", "list", "--json").json()[0]["status"] == "pending"
    [(reason,)] = rows(torch_cli, "SELECT restart_reason FROM novas")
    assert reason.startswith("torch is cooling")


def test_a_burst_of_stops_is_a_bang_then_meditation(torch_cli):
    write_config(Home(torch_cli.home), "[safety]\nhook_burst = 3\nbangs_to_meditate = 1\n")
    for n in range(5):
        torch_cli("queue", "add", f"t{n}")
    outs = [hook(torch_cli, "stop", payload("Stop.json", stop_hook_active=True)) for _ in range(4)]
    assert [bool(r.out) for r in outs] == [True, True, True, False]
    assert "bang: 4 Stop-hook runs within 60s: cooling until" in outs[3].err
    assert torch_cli("status", "torch", "--json").json()[0]["state"] == "cooling"
    fifth = hook(torch_cli, "stop", payload("Stop.json", stop_hook_active=True))
    assert fifth.out == "" and "meditating until" in fifth.err
    assert torch_cli("status", "torch", "--json").json()[0]["state"] == "meditating"
    outcomes = [r[0] for r in rows(torch_cli, "SELECT outcome FROM hook_runs ORDER BY id")]
    assert outcomes == ["continued"] * 3 + ["bang", "bang"]


def test_subagent_stops_are_not_counted_for_bangs(torch_cli):
    write_config(Home(torch_cli.home), "[safety]\nhook_burst = 2\n")
    torch_cli("queue", "add", "work")
    for _ in range(5):
        hook(torch_cli, "subagent-stop", payload("Stop.json"))
    assert json.loads(hook(torch_cli, "stop", payload("Stop.json")).out)["decision"] == "block"


def a_limit_message(hours_ahead: int = 2) -> tuple[str, float]:
    """A usage-limit message naming a whole hour (UTC) ahead, and that time."""
    reset = (int(time.time()) // 3600 + hours_ahead) * 3600
    hour = time.gmtime(reset).tm_hour
    clock = f"{hour % 12 or 12}{'am' if hour < 12 else 'pm'}"
    return f"You've hit your 5-hour limit · resets {clock} (UTC)", reset


def test_stop_failure_rate_limit_cools_until_the_reset(torch_cli):
    message, reset = a_limit_message()
    stdin = json.dumps({"hook_event_name": "StopFailure", "error": "rate_limit",
                        "session_id": "s1", "cwd": "/tmp", "last_assistant_message": message})
    result = hook(torch_cli, "stop-failure", stdin)
    assert (result.code, result.out) == (0, "")
    [row] = torch_cli("status", "torch", "--json").json()
    assert row["state"] == "cooling" and row["until"] == format_time(reset + 120)  # + margin
    assert rows(torch_cli, "SELECT account, window, status, resets_at, source FROM"
                      " account_windows") == [("default", "five_hour", "rejected", reset, "text")]


def test_stop_failure_caps_a_reset_beyond_the_window_and_says_so(torch_cli):
    stdin = json.dumps({"error": "rate_limit", "session_id": "s1",
                        "last_assistant_message": "Claude AI usage limit reached|4102444800"})
    result = hook(torch_cli, "stop-failure", stdin)
    assert result.code == 0 and "capped" in result.err
    [row] = torch_cli("status", "torch", "--json").json()
    assert abs(_seconds_until(row["until"]) - (5 * 3600 + 120)) < 5


def test_stop_failure_without_a_reset_time_backs_off(torch_cli):
    stdin = json.dumps({"error": "rate_limit", "session_id": "s1",
                        "last_assistant_message": "API Error: Request rejected (429) · rate_limit_error"})
    hook(torch_cli, "stop-failure", stdin)
    [row] = torch_cli("status", "torch", "--json").json()
    assert row["state"] == "cooling"
    assert 40 <= _seconds_until(row["until"]) <= 61


def stop_failure(error: str, message: str) -> str:
    """A StopFailure payload of the shape Claude Code sends (FIELD-NOTES: seen on a 429)."""
    return json.dumps({"hook_event_name": "StopFailure", "error": error, "session_id": "s1",
                       "cwd": "/tmp", "last_assistant_message": message})


def test_stop_failure_overloaded_is_a_short_backoff_not_a_cooldown(torch_cli):
    # issue 21: a 529 is "a short backoff, not a limit" whichever process hears it; the hook
    # cooled the Nova (and counted it toward meditation) while the supervisor did not
    for _ in range(4):  # more than cooldowns_to_meditate
        result = hook(torch_cli, "stop-failure", stop_failure(
            "overloaded", "API Error: Repeated 529 Overloaded errors · overloaded_error"))
        assert (result.code, result.out) == (0, "")
    [row] = torch_cli("status", "torch", "--json").json()
    assert (row["state"], row["until"]) == ("working", None)
    assert rows(torch_cli, "SELECT event FROM history") == []
    assert rows(torch_cli, "SELECT cool_streak FROM novas") == [(0,)]
    assert [r[0] for r in rows(torch_cli, "SELECT outcome FROM hook_runs")] == ["recorded"] * 4


@pytest.mark.parametrize("error", ["billing_error", "permission_error", "authentication_failed"])
def test_stop_failure_account_errors_meditate_until_a_person_looks(torch_cli, error):
    # issue 21: a permission_error (403) meditated in the supervisor, and was only recorded
    # by the hook
    result = hook(torch_cli, "stop-failure", stop_failure(error, "Credit balance too low"))
    assert (result.code, result.out) == (0, "")
    [row] = torch_cli("status", "torch", "--json").json()
    assert row["state"] == "meditating" and row["limit_hold"].startswith("needs a person: ")
    assert rows(torch_cli, "SELECT nova, kind, message FROM alerts") == [
        ("torch", error, "Credit balance too low")]
    assert rows(torch_cli, "SELECT outcome FROM hook_runs") == [("meditated",)]


def test_pre_compact_then_session_start_compact_restores(torch_cli):
    item = torch_cli("queue", "add", "refactor the parser", "--json").json()["id"]
    torch_cli("nova", "add", "echo")
    torch_cli("message", "send", "echo", "torch", "the schema changed")
    hook(torch_cli, "stop", payload("Stop.json"))  # claims the item
    result = hook(torch_cli, "pre-compact", payload("PreCompact-manual.json"))
    assert (result.code, result.out) == (0, "")
    assert torch_cli("status", "torch", "--json").json()[0]["state"] == "compacting"
    [(content,)] = rows(torch_cli, "SELECT content FROM snapshots")
    snapshot = json.loads(content)
    assert snapshot["current_item"]["id"] == item and snapshot["trigger"] == "manual"
    assert snapshot["messages"][0]["text"] == "the schema changed"
    start = hook(torch_cli, "session-start", payload("SessionStart-resume.json", source="compact"))
    context = json.loads(start.out)["hookSpecificOutput"]
    assert context["hookEventName"] == "SessionStart"
    assert "refactor the parser" in context["additionalContext"]
    assert "the schema changed" in context["additionalContext"]
    assert torch_cli("status", "torch", "--json").json()[0]["state"] == "working"


def test_pre_compact_is_mirrored_with_a_status_ttl(torch_cli, redis_db):
    env = {"TORCHSM_REDIS_URL": redis_db.url}
    hook(torch_cli, "pre-compact", payload("PreCompact-manual.json"), **env)
    client = redis_db.client()
    assert client.get("nova.status.torch") == b"COMPACTING"
    assert 100 <= client.ttl("nova.status.torch") <= 120
    for stream in ("nova.coordination.messages", "torch.continuous.ops"):
        types = [f[b"type"] for _, f in client.xrange(stream)]
        assert b"compacting" in types


def test_session_start_gives_the_current_task_and_messages(torch_cli):
    torch_cli("nova", "add", "echo")
    torch_cli("queue", "add", "write the docs")
    torch_cli("queue", "claim", "--nova", "torch")
    torch_cli("message", "send", "echo", "all", "standup in 5")
    out = hook(torch_cli, "session-start", payload("SessionStart-startup.json")).out
    context = json.loads(out)["hookSpecificOutput"]["additionalContext"]
    assert "write the docs" in context and "standup in 5" in context


@pytest.mark.parametrize("stdin", ["", "garbage", "[1, 2]", "null", "{\"session_id\": ",
                                   "\x00\xff binary", "{}" * 100_000])
@pytest.mark.parametrize("event", ["stop", "pre-tool-use", "session-start", "pre-compact",
                                   "stop-failure"])
def test_bad_stdin_never_blocks(torch_cli, event, stdin):
    result = hook(torch_cli, event, stdin)
    assert result.out == "" and result.code == 1
    assert result.err.startswith(f"torchsm: error: hook {event}: ")
    assert result.err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["hook", "stop", "--nova", "ghost"], "hook stop: no Nova named 'ghost'"),
    (["hook", "bogus", "--nova", "torch"], "hook bogus: unknown hook event 'bogus'"),
    (["hook", "stop", "--nova", "Bad!"], "hook stop: invalid Nova name 'Bad!'"),
])
def test_hook_errors_exit_1(torch_cli, args, message):
    result = torch_cli(*args, input=payload("Stop.json"), check=False)
    assert result.code == 1 and result.err.startswith(f"torchsm: error: {message}")


def test_usage_errors_of_hook_exit_1_not_2(torch_cli):
    for args in (["hook", "stop"], ["hook"], ["hook", "stop", "--nova"],
                 ["hook", "stop", "--nova", "torch", "--bogus"]):
        assert torch_cli(*args, input="{}", check=False).code == 1, args


def test_missing_home_and_locked_database(tmp_path, torch_cli):
    missing = Cli(tmp_path / "nowhere")
    result = missing("hook", "stop", "--nova", "torch", input=payload("Stop.json"), check=False)
    assert result.code == 1 and "no torchsm home" in result.err
    write_config(Home(torch_cli.home), "[db]\nlock_timeout_s = 0.3\n")
    holder = sqlite3.connect(torch_cli.home / "torchsm.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = hook(torch_cli, "stop", payload("Stop.json"))
        assert result.code == 1 and "database is locked" in result.err and result.out == ""
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_dead_redis_does_not_fail_a_hook(torch_cli, refused_url):
    result = hook(torch_cli, "pre-compact", payload("PreCompact-manual.json"),
                  TORCHSM_REDIS_URL=refused_url)
    assert result.code == 0
    assert (torch_cli.home / "queue" / "nova.coordination.messages.jsonl").exists()


def test_hook_help_goes_through_click(torch_cli):
    out = torch_cli("hook", "--help").out
    assert out.startswith("Usage: torchsm hook") and "Never exits 2" in " ".join(out.split())


def _seconds_until(iso: str) -> float:
    import datetime as dt
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc).timestamp() - time.time()


def set_window(cli: Cli, window: str, utilization: float, resets_at: float,
               status: str = "allowed_warning"):
    conn = sqlite3.connect(cli.home / "torchsm.db")
    with conn:
        conn.execute("INSERT INTO account_windows (account, window, status, utilization,"
                     " resets_at, updated_at) VALUES ('default', ?, ?, ?, ?, ?)",
                     (window, status, utilization, resets_at, time.time()))
    conn.close()


def test_no_progress_same_message_stops_continuing(torch_cli):
    write_config(Home(torch_cli.home), "[safety]\nno_progress_continuations = 2\n")
    for n in range(5):
        torch_cli("queue", "add", f"t{n}")
    messages = ["Starting.", "I cannot do this.", "I cannot do this."]
    outs = [hook(torch_cli, "stop", payload("Stop.json", last_assistant_message=m)).out
            for m in messages]
    assert [bool(o) for o in outs] == [True, True, False]
    [(reason,)] = rows(torch_cli, "SELECT restart_reason FROM novas")
    assert reason.startswith("no progress: 2 continuations in a row ended with the same message"
                             " (I cannot do this.)")  # the supervisor's breaker, worded alike


def test_no_progress_failed_items_stop_continuing(torch_cli):
    write_config(Home(torch_cli.home), "[safety]\nno_progress_continuations = 2\n")
    for n in range(5):
        torch_cli("queue", "add", f"t{n}")
    for n in range(2):
        decision = json.loads(hook(torch_cli, "stop", payload("Stop.json",
                                                         last_assistant_message=f"m{n}")).out)
        item = int(decision["reason"].split("work item ")[1].split(",")[0])
        torch_cli("queue", "fail", str(item), "--error", "broken")
    third = hook(torch_cli, "stop", payload("Stop.json", last_assistant_message="m2"))
    assert third.out == ""
    assert "2 continuations in a row each failed their work item" in rows(
        torch_cli, "SELECT detail FROM hook_runs")[-1][0]


def test_stop_at_the_usage_limit_holds_the_nova_until_the_reset(torch_cli):
    torch_cli("queue", "add", "more work")
    reset = time.time() + 3000
    set_window(torch_cli, "five_hour", 0.97, reset)
    result = hook(torch_cli, "stop", payload("Stop.json"))
    assert result.out == ""
    [row] = torch_cli("status", "torch", "--json").json()
    assert row["state"] == "cooling" and row["limit_hold"].startswith("usage limit: five_hour 97%")
    assert abs(_seconds_until(row["until"]) - 3120) < 5


def test_stop_below_the_slow_threshold_continues(torch_cli):
    torch_cli("queue", "add", "more work")
    set_window(torch_cli, "five_hour", 0.5, time.time() + 3000, status="allowed")
    assert json.loads(hook(torch_cli, "stop", payload("Stop.json")).out)["decision"] == "block"


def test_stop_failure_prefers_the_recorded_window_reset(torch_cli):
    reset = time.time() + 7200
    set_window(torch_cli, "five_hour", 1.0, reset, status="rejected")
    hook(torch_cli, "stop-failure", json.dumps({"error": "rate_limit", "session_id": "s",
                                            "last_assistant_message": "resets 5am (UTC)"}))
    [row] = torch_cli("status", "torch", "--json").json()
    assert abs(_seconds_until(row["until"]) - 7320) < 5 and row["limit_hold"]


def test_a_critical_wake_does_not_start_a_nova_held_for_a_limit(torch_cli):
    hook(torch_cli, "stop-failure", json.dumps({
        "error": "rate_limit", "session_id": "s", "last_assistant_message": a_limit_message()[0]}))
    torch_cli("wake", "torch", "production is down, data loss!")
    assert torch_cli("status", "torch", "--json").json()[0]["state"] == "cooling"
    # a person can still resume it; that clears the hold
    torch_cli("transition", "torch", "work", "--force")
    assert torch_cli("status", "torch", "--json").json()[0]["limit_hold"] is None


def test_stop_failure_naming_the_current_minute_holds_for_the_margin(torch_cli):
    # the message names the minute that has begun (or, across a minute's turn, the one
    # before): the reset is now, and the account still holds for reset_margin_s
    now = time.time()
    clock = time.strftime("%I:%M%p", time.gmtime(now)).lstrip("0").lower()
    stdin = json.dumps({"error": "rate_limit", "session_id": "s1",
                        "last_assistant_message": f"You've hit your 5-hour limit · resets "
                                                  f"{clock} (UTC)"})
    hook(torch_cli, "stop-failure", stdin)
    [row] = torch_cli("status", "torch", "--json").json()
    assert row["state"] == "cooling" and row["limit_hold"], row
    assert 100 <= _seconds_until(row["until"]) <= 121


@pytest.mark.parametrize("given", ["99999999999999999999", "١٢"])
def test_a_session_item_no_database_can_hold_is_no_item(torch_cli, given):
    # TORCHSM_ITEM past SQLite's integers (or in other digits) names no item: the Stop
    # hook still continues with the next one, no internal error
    torch_cli("queue", "add", "next task")
    result = hook(torch_cli, "stop", payload("Stop.json"), TORCHSM_ITEM=given, TORCHSM_NOVA="torch")
    assert result.code == 0 and result.err == "", result.err
    assert json.loads(result.out)["decision"] == "block"
