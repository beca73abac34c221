"""`torchsm hook pre-tool-use`: the usage gate within a turn. Each tool call is one more
request with no Stop hook before it; when the account's windows say stop, the hook ends
the turn (tool denied, `continue: false`: Claude Code sends nothing more) and holds the
account's Novas until the reset. Through the real CLI, windows stored with
`accounts.learn` as the supervisor stores a rate_limit_event."""

import json
import time

import pytest

from helpers import HEAVY, Cli, loaded_modules, rows, write_config
from torchsm.clock import format_time
from torchsm.config import Home, load_config
from torchsm.storage import store
from torchsm.usage import accounts, limits

TOOL_CALL = json.dumps({"session_id": "s1", "hook_event_name": "PreToolUse", "cwd": "/tmp",
                        "tool_name": "Bash", "tool_input": {"command": "make test"},
                        "tool_use_id": "toolu_1"})


def learn(cli: Cli, utilization: float | None, resets_at: float, status: str,
          account: str = "default", window: str = "five_hour") -> None:
    now = time.time()
    row = accounts.WindowRow(window, status, utilization, resets_at, now, "event", "torch")
    with store.open_store(Home(cli.home)) as db:
        db.write(lambda conn: accounts.learn(conn, account, [row], now))


def verdict_now(cli: Cli, account: str = "default") -> str:
    home = Home(cli.home)
    config = load_config(home)
    with store.open_store(home) as db:
        return db.read(lambda conn: limits.verdict(conn, config, account, time.time())).kind


def gate(cli: Cli, stdin: str = TOOL_CALL, nova: str = "torch"):
    result = cli("hook", "pre-tool-use", "--nova", nova, input=stdin, check=False)
    assert result.code in (0, 1), (result.code, result.err)
    assert "Traceback" not in result.err
    return result


def status(cli: Cli, nova: str = "torch") -> dict:
    return next(r for r in cli("status", "--json").json() if r["nova"] == nova)


def outcomes(cli: Cli) -> list[tuple]:
    return rows(cli, "SELECT event, outcome, session_id FROM hook_runs ORDER BY id")


@pytest.mark.parametrize("utilization, state", [(0.96, "allowed_warning"), (0.95, "allowed"),
                                                (None, "rejected"), (0.7, "rejected")])
def test_at_a_stop_the_turn_ends_before_the_tool_and_the_account_holds(torch_cli, utilization,
                                                                        state):
    torch_cli("nova", "add", "echo")  # same account: held too
    torch_cli("nova", "add", "other", "--account", "team")  # another account: left alone
    reset = int(time.time()) + 7200
    learn(torch_cli, utilization, reset, state)
    result = gate(torch_cli)
    assert result.code == 0 and result.err == ""
    answer = json.loads(result.out)
    assert answer["continue"] is False
    specific = answer["hookSpecificOutput"]
    assert (specific["hookEventName"], specific["permissionDecision"]) == ("PreToolUse", "deny")
    reason = answer["stopReason"]
    assert specific["permissionDecisionReason"] == reason
    assert reason.startswith("torchsm: usage limit: five_hour")
    assert f"resets {format_time(reset)}" in reason
    assert f"torch holds until {format_time(reset + 120)}" in reason  # + reset_margin_s
    for nova in ("torch", "echo"):
        row = status(torch_cli, nova)
        assert row["state"] == "cooling" and row["until"] == format_time(reset + 120)
        assert row["limit_hold"].startswith("usage limit: five_hour")
    assert status(torch_cli, "other")["state"] == "working"
    [(event, outcome, session)] = outcomes(torch_cli)
    assert (event, outcome, session) == ("pre-tool-use", "blocked", "s1")
    [(detail,)] = rows(torch_cli, "SELECT detail FROM hook_runs")
    assert detail.startswith("usage limit: five_hour") and format_time(reset + 120) in detail


def test_a_held_nova_blocks_again_without_a_new_transition(torch_cli):
    reset = int(time.time()) + 3600
    learn(torch_cli, 0.97, reset, "allowed_warning")
    gate(torch_cli)
    history = rows(torch_cli, "SELECT count(*) FROM history")
    again = gate(torch_cli)  # a parallel tool call of the same message
    assert json.loads(again.out)["continue"] is False
    assert rows(torch_cli, "SELECT count(*) FROM history") == history
    assert [o for _, o, _ in outcomes(torch_cli)] == ["blocked", "blocked"]


@pytest.mark.parametrize("utilization, state, kind", [(0.5, "allowed", "ok"),
                                                      (0.9, "allowed_warning", "pace")])
def test_below_the_stop_nothing_is_printed(torch_cli, utilization, state, kind):
    learn(torch_cli, utilization, time.time() + 7200, state)
    assert verdict_now(torch_cli) == kind  # the gate lets a pace through: only a stop ends a turn
    result = gate(torch_cli)
    assert (result.code, result.out, result.err) == (0, "", "")
    assert status(torch_cli)["state"] == "working"
    assert outcomes(torch_cli) == [("pre-tool-use", "recorded", "s1")]


def test_the_accounts_own_stop_utilization_counts(torch_cli):
    write_config(Home(torch_cli.home), "[accounts.default]\nstop_utilization = 0.99\n")
    learn(torch_cli, 0.96, time.time() + 7200, "allowed_warning")
    assert gate(torch_cli).out == ""
    learn(torch_cli, 0.99, time.time() + 7200, "allowed_warning")
    assert json.loads(gate(torch_cli).out)["continue"] is False


@pytest.mark.parametrize("where", ["none", "another account", "past its reset"])
def test_without_a_live_window_of_its_account_nothing_is_printed(torch_cli, where):
    if where == "another account":
        learn(torch_cli, 1.0, time.time() + 7200, "rejected", account="team")
    elif where == "past its reset":  # and past the margin after it
        learn(torch_cli, 1.0, time.time() - 125, "rejected")
    result = gate(torch_cli)
    assert (result.code, result.out, result.err) == (0, "", "")
    assert status(torch_cli)["state"] == "working"
    assert [o for _, o, _ in outcomes(torch_cli)] == ["recorded"]


@pytest.mark.parametrize("stdin", ["", "garbage", "[1, 2]", "{\"session_id\": "])
def test_bad_stdin_at_a_stop_still_never_exits_2(torch_cli, stdin):
    learn(torch_cli, 0.99, time.time() + 7200, "allowed_warning")
    result = gate(torch_cli, stdin)
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("torchsm: error: hook pre-tool-use: ")
    assert status(torch_cli)["state"] == "working"


@pytest.mark.parametrize("utilization, watched, allowed", [
    (0.5, HEAVY + ("click", "transitions"), []),  # the every-call path: a verdict, no more
    (0.99, HEAVY + ("click",), []),  # a stop loads the state machine to hold, nothing heavy
])
def test_the_gate_stays_light(torch_cli, utilization, watched, allowed):
    learn(torch_cli, utilization, time.time() + 7200, "allowed_warning")
    outcome = loaded_modules(torch_cli, "hook", "pre-tool-use", "--nova", "torch", watch=watched,
                             input=TOOL_CALL)
    assert (outcome["code"], outcome["heavy"]) == (0, allowed)
    assert bool(outcome["out"]) == (utilization > 0.95)
