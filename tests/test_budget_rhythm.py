"""The supervisor's pure policies: the sliding-hour budget, the rhythm's gap, and what a
finished session means (no clock, no database)."""

import json

import pytest

from torchsm.agent.session import SessionOutput, SessionRun
from torchsm.endings.outcome import judge, ledger_end
from torchsm.outcomes import Outcome
from torchsm.personalities import BUILT_IN, Personality
from torchsm.supervisor import rhythm
from torchsm.usage import budget

T0 = 1_800_000_000.0


def test_budget_has_room_until_the_limit():
    assert budget.window_frees_at([], T0, 3) is None
    assert budget.window_frees_at([T0 - 10, T0 - 5], T0, 3) is None


def test_budget_frees_when_the_oldest_counted_start_leaves_the_hour():
    starts = [T0 - 3000, T0 - 2000, T0 - 100]
    assert budget.window_frees_at(starts, T0, 3) == T0 - 3000 + 3600
    # more starts than the limit (a lower limit after a config change): the window frees
    # when enough of them have left it
    assert budget.window_frees_at(starts, T0, 2) == T0 - 2000 + 3600
    assert budget.window_frees_at(starts, T0 + 600, 3) is None  # T0-3000 left the window


def test_budget_counts_only_the_sliding_hour():
    assert budget.window_frees_at([T0 - 3600, T0 - 3601], T0, 1) is None
    assert budget.sessions_in_window([T0 - 3600, T0 - 1, T0], T0) == 2
    with pytest.raises(ValueError):
        budget.window_frees_at([], T0, 0)


def test_gap_floor_is_the_base_cycle_shaped_by_energy():
    torch = BUILT_IN["torch"]  # 25 s, sustained, reflects every 5
    assert rhythm.gap(torch, 1).floor_s == 25 == rhythm.gap(torch, 1).rest_s
    helix = BUILT_IN["helix"]  # 45 s, measured
    assert rhythm.gap(helix, 1).floor_s == 45 * rhythm.MEASURED_PACE
    echo = BUILT_IN["echo"]  # 15 s, burst: three quick sessions, then a rest
    floors = [rhythm.gap(echo, n).floor_s for n in range(1, 9)]
    assert floors == [7.5, 7.5, 7.5, 45.0, 7.5, 7.5, 7.5, 45.0]


def test_reflection_and_load_stretch_the_rest_not_the_floor():
    torch = BUILT_IN["torch"]
    reflecting = rhythm.gap(torch, 5)
    assert (reflecting.floor_s, reflecting.rest_s) == (25, 50)
    assert "reflect after 5 sessions" in reflecting.why
    loaded = rhythm.gap(torch, 1, load_per_core=2.0)
    assert (loaded.floor_s, loaded.rest_s) == (25, 50) and "load 2.00 per core" in loaded.why
    assert rhythm.gap(torch, 1, load_per_core=100).rest_s == 25 * rhythm.MAX_LOAD_STRETCH
    assert rhythm.gap(torch, 1, load_per_core=0.5).rest_s == 25
    assert rhythm.gap(torch, 1, load_per_core=3.0, load_above=2.0).rest_s == 37.5
    assert rhythm.gap(torch, 1, load_per_core=3.0, load_above=0).rest_s == 25  # off


def test_constant_keeps_its_pace_and_adaptive_backs_off_harder():
    vaeris, synergy = BUILT_IN["vaeris"], BUILT_IN["synergy"]
    assert rhythm.gap(vaeris, 1, load_per_core=3).rest_s == vaeris.base_cycle_s
    assert rhythm.gap(synergy, 1, load_per_core=1.5).rest_s == synergy.base_cycle_s * 2.25


def test_quiet_hours_postpone_ordinary_work():
    import datetime as dt

    utc = dt.timezone.utc
    at = dt.datetime(2026, 11, 26, 23, 30, tzinfo=utc).timestamp()
    end = rhythm.after_quiet_hours(at, "22:00-07:00", utc)
    assert end == dt.datetime(2026, 11, 27, 7, 0, tzinfo=utc).timestamp()
    assert rhythm.after_quiet_hours(at, "", utc) is None
    noon = dt.datetime(2026, 11, 26, 12, 0, tzinfo=utc).timestamp()
    assert rhythm.after_quiet_hours(noon, "22:00-07:00", utc) is None


def finished(exit_status=0, duration=30.0, lines=(), stderr="", timed_out=False,
             stopped=False, claude_code=True) -> SessionRun:
    """A finished session; its lines are Claude Code's unless not `claude_code`."""
    output = SessionOutput(claude_code=claude_code)
    for line in lines:
        output.feed((json.dumps(line) if isinstance(line, dict) else line) + "\n")
    return SessionRun(["agent"], T0, T0 + duration, exit_status, timed_out, stopped, output,
                      stderr)


def verdict(run: SessionRun):
    return judge(run, crash_window_s=5, now=T0 + run.duration_s)


def test_exit_status_decides_for_any_agent():
    assert verdict(finished(0, lines=["all good"])).outcome is Outcome.OK
    failed = verdict(finished(2, lines=["compiler error"]))
    assert failed.outcome is Outcome.FAILED and failed.error == "exit status 2: compiler error"
    crashed = verdict(finished(1, duration=0.3, stderr="Traceback...\nImportError: x"))
    assert crashed.outcome is Outcome.CRASHED and crashed.failed
    assert "crashed 0.3s after the start" in crashed.error and "ImportError" in crashed.error
    assert verdict(finished(-9, timed_out=True)).outcome is Outcome.TIMEOUT
    stopped = verdict(finished(-15, stopped=True))
    assert stopped.outcome is Outcome.STOPPED and not stopped.failed


def test_claude_code_results_429_and_529():
    limited = verdict(finished(1, lines=[{"type": "result", "is_error": True,
                                          "api_error_status": 429,
                                          "result": "API Error: Request rejected (429)"}]))
    assert limited.outcome is Outcome.RATE_LIMITED and limited.reset_at is None
    overloaded = verdict(finished(1, lines=[{"type": "result", "is_error": True,
                                             "api_error_status": 529, "result": "Overloaded"}]))
    assert overloaded.outcome is Outcome.OVERLOADED
    error_exit_0 = verdict(finished(0, lines=[{"type": "result", "is_error": True,
                                               "result": "something broke"}]))
    assert error_exit_0.outcome is Outcome.FAILED


def test_the_reset_comes_from_the_rate_limit_event_first_then_the_text():
    event = {"type": "rate_limit_event",
             "rate_limit_info": {"status": "rejected", "resetsAt": T0 + 7200}}
    result = {"type": "result", "is_error": True, "api_error_status": 429,
              "result": "Claude AI usage limit reached|1800003600"}
    assert verdict(finished(1, lines=[event, result])).reset_at == T0 + 7200
    assert verdict(finished(1, lines=[result])).reset_at == 1800003600


def error_result(text: str) -> dict:
    return {"type": "result", "is_error": True, "result": text}


@pytest.mark.parametrize("text", [
    "Claude AI usage limit reached|1800003600",
    "You've hit your 5-hour limit · resets 5am (UTC)",
    "Claude usage limit reached. Your limit will reset at 1pm (Europe/Madrid)",
])
def test_usage_limit_text_is_a_limit_in_claude_codes_error_result(text):
    for status in (0, 1):
        result = verdict(finished(status, lines=[error_result(text)]))
        assert result.outcome is Outcome.RATE_LIMITED and result.reset_at is not None


@pytest.mark.parametrize("text", ["Claude AI usage limit reached|1800003600",
                                  "You've hit your 5-hour limit · resets 5am (UTC)",
                                  "HTTP 429 Too Many Requests", "Invalid API key"])
def test_limit_and_account_words_anywhere_else_are_no_limit(text):
    answer = {"type": "result", "is_error": False, "result": text}  # the model said it
    assert verdict(finished(0, lines=[answer])).outcome is Outcome.OK
    assert verdict(finished(0, lines=[text])).outcome is Outcome.OK  # a line of its own
    assert verdict(finished(1, lines=[text], stderr=text)).outcome is Outcome.FAILED
    plain = finished(1, lines=[error_result(text)], claude_code=False)  # not Claude Code
    assert verdict(plain).outcome is Outcome.FAILED


def test_unparseable_limit_text_has_no_reset_and_ordinary_text_is_no_limit():
    unknown = verdict(finished(1, lines=[error_result(
        "Claude usage limit reached. Try again later.")]))
    assert unknown.outcome is Outcome.RATE_LIMITED and unknown.reset_at is None
    assert verdict(finished(1, lines=[error_result("HTTP 429 Too Many Requests")])).outcome \
        is Outcome.RATE_LIMITED
    # a successful session that talks about rate limits is just a successful session
    assert verdict(finished(0, lines=["added a rate limit to the API"])).outcome is Outcome.OK


def test_the_ledger_keeps_what_claude_code_reported():
    run = finished(0, lines=[
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "Done it."}]}},
        {"type": "result", "is_error": False, "result": "Done it.", "session_id": "abc",
         "total_cost_usd": 0.25, "num_turns": 3,
         "usage": {"input_tokens": 100, "output_tokens": 20}}])
    end = ledger_end(run, verdict(run))
    assert (end.outcome, end.agent_session_id, end.cost_usd, end.num_turns) == (
        "ok", "abc", 0.25, 3)
    assert (end.input_tokens, end.output_tokens, end.last_assistant_message) == (
        100, 20, "Done it.")


def test_custom_personality_rhythm():
    night = Personality("night", "custom", 90, "measured", 2, 0.0, "calm")
    assert rhythm.gap(night, 2).rest_s == 90 * 1.5 + 90


def test_the_cost_budget_is_off_at_zero_and_has_room_below_the_limit():
    from torchsm.usage.budget import cost_frees_at

    assert cost_frees_at([(100.0, 50.0)], now=200.0, limit_usd=0) is None
    assert cost_frees_at([(100.0, 0.5), (150.0, 0.4)], now=200.0, limit_usd=1.0) is None


def test_a_spent_cost_budget_frees_when_enough_cost_leaves_the_day():
    from torchsm.usage.budget import COST_WINDOW_S, cost_frees_at

    costs = [(100.0, 0.6), (200.0, 0.3), (300.0, 0.4)]  # 1.3 spent
    assert cost_frees_at(costs, now=400.0, limit_usd=1.0) == 100.0 + COST_WINDOW_S
    assert cost_frees_at(costs, now=400.0, limit_usd=0.5) == 200.0 + COST_WINDOW_S
    # what left the window already does not count
    assert cost_frees_at(costs, now=150.0 + COST_WINDOW_S, limit_usd=1.0) is None
