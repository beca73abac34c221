"""Dreams over crafted histories whose right insights are known: each phase, the span and
its caps, determinism, interruption (also by kill -9), the optional work items, memory,
refusals, and the cost over a home of a million rows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from dream_support import T0, History, comparable, of_kind, one, work_beside_older_history
from helpers import Cli
from torchsm import novas
from torchsm.clock import format_time as fmt
from torchsm.config import Config, DreamsConfig, SupervisorConfig, WakeConfig
from torchsm.dreams import dreaming
from torchsm.errors import DreamRunning, NovaNotFound, TransitionRefused
from torchsm.storage import store
from torchsm.usage import budget, ledger

CONFIG = Config(redis_url="off")
DAY = 86400.0
BANG = "bang: 11 Stop-hook runs within 60s"
MISSING = "ModuleNotFoundError: No module named 'foo'"


@pytest.fixture
def h(torch_home):
    history = History(torch_home)
    yield history
    history.close()


def dream(home, config: Config = CONFIG, now: float = T0, **kw) -> dreaming.DreamView:
    return dreaming.dream(home, config, "torch", now, **kw)


def state(home) -> str:
    return novas.status(home, CONFIG, "torch")[0]["state"]


def with_dreams(**values) -> Config:
    return Config(redis_url="off", dreams=DreamsConfig(**values))


# --- an empty history ------------------------------------------------------------------------

def test_an_empty_history_gives_a_done_dream_without_insights(torch_home, h):
    view = dream(torch_home)
    assert (view.status, view.insight_count, view.insights) == ("done", 0, ())
    assert view.summary == "read nothing; no insights"
    assert (view.span_from, view.span_to) == (T0 - 7 * DAY, T0)
    assert state(torch_home) == "working"
    assert h.rows("SELECT event, to_state, reason FROM history ORDER BY id") == [
        ("dream", "dreaming", "dream 1"), ("work", "working", "dream 1 done")]
    # a dream's own transitions are no experience for the next one
    assert dream(torch_home, now=T0 + 60).insights == ()


# --- phase 0: patterns -------------------------------------------------------------------------

def test_phase_0_counts_what_each_source_holds_in_the_span(torch_home, h):
    h.session(T0 - 3000, cost=0.5, turns=4)
    h.session(T0 - 2000, cost=0.25, turns=2)
    h.session(T0 - 1000, outcome="failed", error="exit status 1", cost=0.25, turns=1)
    h.item(T0 - 5000, status="done", attempts=1, finished=T0 - 2900)
    h.item(T0 - 100)
    h.hook_run(T0 - 900, event="pre-tool-use")
    h.hook_run(T0 - 800)  # a Stop that let the agent stop: no turn under way (torchsm.agent.live)
    h.transition(T0 - 700, "cool", reason="session 3 failed: exit status 1")
    h.transition(T0 - 600, "work", source="cooling")
    h.signal(T0 - 500, sender="ci")
    h.message(T0 - 400, sender="echo")
    h.session(T0 - 8 * DAY, outcome="failed", error="before the span")  # not read
    found = one(dream(torch_home), "activity")
    assert found.phase == 0
    assert found.evidence["read"] == {"sessions": 3, "items": 2, "history": 2, "hook_runs": 2,
                                      "wake_signals": 1, "messages": 1}
    assert found.evidence["sessions"] == {"count": 3, "ids": [1, 3], "cost_usd": 1.0,
                                          "turns": 7, "by_outcome": {"failed": 1, "ok": 2}}
    assert found.text == (
        f"From {fmt(T0 - 7 * DAY)} to {fmt(T0)}: 3 sessions (2 ok, 1 failed, $1.00, 7 turns), "
        "1 item finished (1 done), 1 open item, 2 hook runs, 2 transitions, 1 wake signal, "
        "1 message.")


def test_phase_0_finds_an_error_text_that_comes_back_whatever_its_numbers(torch_home, h):
    a = h.session(T0 - 300, outcome="crashed", error="crashed 0.1s after the start: boom")
    b = h.session(T0 - 200, outcome="crashed", error="crashed 0.3s after the start: boom")
    h.session(T0 - 250, outcome="stopped", error="crashed 0.2s after the start: boom")
    item = h.item(T0 - 1000, status="failed", attempts=1, finished=T0 - 150,
                  error="crashed 2.5s after the start: boom")
    h.session(T0 - 50, outcome="failed", error="something else")
    view = dream(torch_home)
    found = one(view, "error-text")
    assert found.evidence == {"error": "crashed 0.1s after the start: boom", "count": 3,
                              "sessions": [a, b], "items": [item],
                              "from": fmt(T0 - 300), "to": fmt(T0 - 150)}
    assert found.text == (f'The error "crashed 0.1s after the start: boom" came 3 times from '
                          f"{fmt(T0 - 300)} to {fmt(T0 - 150)}: in sessions {a} and {b} and "
                          f"item {item}.")
    assert of_kind(view, "recurring-failure") == []  # one item and two sessions: not yet


def test_phase_0_finds_sessions_that_keep_ending_with_the_same_message(torch_home, h):
    same = [h.session(T0 - 100 * n, message="I need the API key to go on.") for n in (3, 2, 1)]
    h.session(T0 - 50, message="Done.")
    h.session(T0 - 40, message="Done.")
    found = one(dream(torch_home), "repeated-message")
    assert found.evidence == {"message": "I need the API key to go on.", "count": 3,
                              "sessions": same}


def test_cooldowns_caused_by_bangs(torch_home, h):
    bangs = [h.hook_run(T0 - 3000 + 600 * n, outcome="bang") for n in range(3)]
    cools = [h.transition(T0 - 3000 + 600 * n, "cool", reason=BANG) for n in range(3)]
    h.hook_run(T0 - 2500)  # an ordinary Stop-hook run
    h.transition(T0 - 500, "cool", reason="session 9 failed: exit status 1")
    h.transition(T0 - 400, "cool")  # a person's, without a reason
    view = dream(torch_home)
    assert one(view, "bangs").evidence == {"count": 3, "hook_runs": bangs,
                                           "from": fmt(T0 - 3000), "to": fmt(T0 - 1800)}
    assert one(view, "rests").text == (
        f"5 cooldowns and 0 meditations from {fmt(T0 - 3000)} to {fmt(T0 - 400)}, by cause: "
        "bang 3, failed session 1, manual 1.")
    cause = one(view, "cooldown-cause")  # one cause only caused more than one
    assert (cause.phase, cause.key) == (1, "rests:bang")
    assert cause.text == (f"Bangs (Stop-hook bursts) caused 3 of the 5 cooldowns and "
                          f"meditations from {fmt(T0 - 3000)} to {fmt(T0 - 1800)} "
                          f"(history {cools[0]}, {cools[1]} and {cools[2]}).")
    assert (cause.evidence["history"], cause.evidence["bangs"]) == (cools, bangs)
    rest = one(view, "lengthen-rest")
    assert rest.action == {"do": "lengthen-rest", "personality": "torch",
                           "base_cycle_s": {"from": 25.0, "to": 50.0}}
    assert rest.evidence == {"because": ["rests:bang"]}


def test_a_usage_limit_hold_is_no_overheating(torch_home, h):
    for n in range(3):
        h.transition(T0 - 1000 + n, "cool", reason="five_hour at 96%", hold=True)
    view = dream(torch_home)
    assert one(view, "cooldown-cause").key == "rests:usage-limit"
    assert of_kind(view, "lengthen-rest") == []  # waiting for a reset is no reason to rest


# --- phase 1: reflection --------------------------------------------------------------------

def test_the_same_error_across_three_items_is_one_failure_to_investigate(torch_home, h):
    items = [h.item(T0 - 5000, text=f"task {n}", status="dead", attempts=3,
                    finished=T0 - 3000 + n, error=MISSING) for n in range(3)]
    sessions = [h.session(T0 - 4000 + n, outcome="failed", error=MISSING, item=i)
                for n, i in enumerate(items)]
    other = h.item(T0 - 5000, text="the odd one", status="failed", attempts=1,
                   finished=T0 - 100, error="AssertionError: 2 != 3")
    view = dream(torch_home)
    failure = one(view, "recurring-failure")
    assert view.insights[0] == failure  # the most important finding comes first
    assert failure.evidence == {"error": MISSING, "count": 6, "items": items,
                                "sessions": sessions, "from": fmt(T0 - 4000),
                                "to": fmt(T0 - 2998)}
    assert failure.text == (f'The same failure "{MISSING}" hit 3 items (1, 2 and 3) and 3 '
                            f"sessions (1, 2 and 3) from {fmt(T0 - 4000)} to {fmt(T0 - 2998)}: "
                            "one cause, worth fixing once.")
    # the items it hit are its evidence, not findings of their own
    assert [i.evidence["item"] for i in of_kind(view, "failing-item")] == [other]
    investigate = one(view, "investigate-failure")
    assert investigate.action["do"] == "investigate"
    assert investigate.action["items"] == items
    assert investigate.action["work"].startswith(
        f'[dream 1] Find and fix the cause of the recurring failure "{MISSING}"')


def test_an_item_failing_its_attempts(torch_home, h):
    novas.add(torch_home, CONFIG, "echo", now=T0 - DAY)
    dead = h.item(T0 - 9000, text="fix the parser", status="dead", attempts=3,
                  finished=T0 - 600, error="AssertionError: 2 != 3")
    runs = [h.session(T0 - 3000 + 900 * n, outcome="failed", item=dead, cost=0.1,
                      error=f"test_{name} failed") for n, name in enumerate("abc")]
    slow = h.item(T0 - 9000, text="run the long suite", status="dead", attempts=3,
                  finished=T0 - 500, error="no end within the session timeout (3600s)")
    stuck = h.item(T0 - 9000, text="migrate", status="pending", attempts=2,
                   error="SyntaxError: invalid syntax", updated=T0 - 300)
    busy = h.item(T0 - 9000, text="deploy", status="pending", attempts=2,
                  error="API overloaded (529): try later", updated=T0 - 200)
    view = dream(torch_home)
    failing = {i.evidence["item"]: i for i in of_kind(view, "failing-item")}
    assert set(failing) == {dead, slow, stuck, busy}
    assert failing[dead].text == ('Item 1 ("fix the parser") died after 3 of 3 attempts; its '
                                  'last error: "AssertionError: 2 != 3".')
    assert failing[dead].evidence["sessions"] == runs
    assert failing[stuck].text == ('Item 3 ("migrate") has failed 2 of 3 attempts so far; its '
                                   'last error: "SyntaxError: invalid syntax".')
    proposals = {i.action["item"]: (i.kind, i.action["do"]) for i in view.insights
                 if i.phase == 2 and i.action}
    assert proposals == {dead: ("ask-nova", "ask"), slow: ("retry-item", "retry"),
                         stuck: ("give-up-item", "give-up")}  # an overload may pass
    assert one(view, "ask-nova").action["novas"] == ["echo"]
    assert one(view, "retry-item").action["work"] == (
        "[dream 1] Retry work item 2: run the long suite")


def test_an_item_waiting_far_longer_than_the_others(torch_home, h):
    for n in range(4):  # items done take 10 minutes
        h.item(T0 - DAY + 1000 * n, status="done", attempts=1, finished=T0 - DAY + 1000 * n + 600)
    old = h.item(T0 - 2 * DAY, text="tidy the docs", priority="background")
    h.item(T0 - 1800, text="recent")  # half an hour: under the hour any item may wait
    view = dream(torch_home)
    waiting = one(view, "waiting-item")
    assert waiting.evidence == {"item": old, "text": "tidy the docs", "priority": "background",
                                "status": "pending", "created_at": fmt(T0 - 2 * DAY),
                                "age_s": 2 * DAY, "usual_s": 600.0, "basis": "done",
                                "sample": 4, "factor": 288.0}
    assert waiting.text == (f'Item {old} ("tidy the docs", background) has waited 2.0 days '
                            f"since {fmt(T0 - 2 * DAY)}, 288x the usual 10 min (the median of "
                            "4 done items).")
    raise_it = one(view, "reprioritise-item")
    assert raise_it.action == {"do": "reprioritise", "item": old, "from": "background",
                               "to": "low"}


def test_a_noisy_sender(torch_home, h):
    ci = [h.signal(T0 - 1000 + n, sender="ci", tier="low" if n < 6 else "medium")
          for n in range(8)]
    h.signal(T0 - 500, sender="alice", tier="high")
    h.message(T0 - 400, sender="echo")
    config = Config(redis_url="off", wake=WakeConfig(senders={"ci": 1}))
    view = dream(torch_home, config)
    noisy = one(view, "noisy-sender")  # alice and echo sent one each
    assert noisy.key == "sender:ci"
    assert noisy.evidence == {"sender": "ci", "count": 8, "of": 10, "share": 0.8,
                              "wake_signals": ci, "messages": [], "low": 6,
                              "from": fmt(T0 - 1000), "to": fmt(T0 - 993)}
    assert noisy.text == (f"Sender ci sent 8 of the 10 wake signals and messages from "
                          f"{fmt(T0 - 1000)} to {fmt(T0 - 993)}, 6 of them low or background.")
    assert one(view, "lower-sender").action == {"do": "lower-sender", "sender": "ci",
                                                "weight": {"from": 1, "to": 0}}


@pytest.mark.parametrize("spent, near", [(8.5, True), (7.5, False)])
def test_cost_near_its_budget(torch_home, h, spent, near):
    h.session(T0 - 3 * 3600, cost=spent - 0.5)
    h.session(T0 - 2 * 3600, cost=0.5)
    h.session(T0 - 30 * 3600, cost=5.0)  # ended more than 24 hours ago
    config = Config(redis_url="off", supervisor=SupervisorConfig(max_cost_usd_per_day=10))
    found = of_kind(dream(torch_home, config), "budget-cost")
    if not near:
        assert found == []
        return
    [budget] = found
    assert budget.evidence == {"account": "default", "cost_usd": 8.5, "limit_usd": 10.0,
                               "share": 0.85, "from": fmt(T0 - DAY), "to": fmt(T0)}
    assert budget.text == (f"Account default reported $8.50 of its $10.00 daily cost budget "
                           f"in the 24 hours to {fmt(T0)} (85%).")


def test_the_cost_budget_counts_what_the_supervisors_budget_counts(torch_home, h):
    """A cost an older torchsm stored from an agent's words (negative, absurd) is not
    counted: the dream would tell of a budget the supervisor does not see."""
    h.session(T0 - 3 * 3600, cost=8.5)
    h.session(T0 - 2 * 3600, cost=-100000.0)
    h.session(T0 - 1 * 3600, cost=1e308)
    config = Config(redis_url="off", supervisor=SupervisorConfig(max_cost_usd_per_day=10))
    [budget] = of_kind(dream(torch_home, config), "budget-cost")
    assert budget.evidence["cost_usd"] == 8.5


def test_a_session_closed_long_after_its_start_counts_as_in_the_supervisors_budget(torch_home, h):
    """A session whose supervisor was killed is closed by the recovery when it is found,
    which can be days after it started: the budget counts it by its end, and so must the
    dream, read through the same ledger query and budget rule."""
    h.session(T0 - 3 * DAY, cost=8.5, duration=3 * DAY - 3600)  # recovered an hour ago
    config = Config(redis_url="off", supervisor=SupervisorConfig(max_cost_usd_per_day=10))
    with store.open_store(torch_home, 5.0) as db:
        costs = db.read(lambda conn: ledger.costs_since(conn, "default", T0 - DAY))
    assert budget.cost_in_window(costs, T0) == 8.5  # what the supervisor's budget counts
    [found] = of_kind(dream(torch_home, config), "budget-cost")
    assert found.evidence["cost_usd"] == 8.5


def test_sessions_and_windows_near_their_limits(torch_home, h):
    busy = [h.session(T0 - 7000 + 300 * n) for n in range(11)]  # 11 in 50 minutes
    h.session(T0 - 100)  # more than an hour after the first of them
    h.window("five_hour", utilization=0.9, resets_at=T0 + 3600, at=T0 - 60)
    h.window("seven_day", utilization=0.5, resets_at=T0 + DAY, at=T0 - 60)
    h.window("opus", utilization=0.99, resets_at=T0 - 60, at=T0 - 4000)  # reset since
    view = dream(torch_home)
    peak = one(view, "budget-sessions")
    assert (peak.evidence["peak"], peak.evidence["limit"], peak.evidence["sessions"]) == (
        11, 12, busy)
    assert peak.text == (f"At its busiest torch started 11 sessions within one hour (from "
                         f"{fmt(T0 - 7000)}), 92% of max_sessions_per_hour 12.")
    window = one(view, "usage-window")
    assert window.key == "window:default:five_hour"
    assert window.text == (f"Account default's five_hour window is at 90% (slow from 80%, "
                           f"stop at 95%), as torch heard at {fmt(T0 - 60)}; it resets at "
                           f"{fmt(T0 + 3600)}.")


def test_where_the_sessions_and_the_cost_went(torch_home, h):
    for n in range(3):
        h.session(T0 - 3000 + n, item=7, cost=0.4)
    h.session(T0 - 2000, item=8, cost=0.1)
    h.session(T0 - 1000, kind="wake", cost=0.2)
    spend = one(dream(torch_home), "spend")
    assert spend.text == (f"torch ran 5 sessions for $1.50 from {fmt(T0 - 3000)} to "
                          f"{fmt(T0 - 940)}, by kind: item 4 ($1.30), wake 1 ($0.20); item 7 "
                          "took the most: 3 sessions, $1.20.")
    assert spend.evidence["top_items"][0] == {"item": 7, "sessions": 3, "cost_usd": 1.2,
                                              "session_ids": [1, 2, 3]}


# --- the span and its caps ---------------------------------------------------------------------

def test_a_dream_reads_the_span_since_the_last_finished_dream(torch_home, h):
    h.session(T0 - 100, outcome="failed", error="first")
    assert dream(torch_home).read["sessions"] == 1
    h.session(T0 + 50, outcome="failed", error="second")
    second = dream(torch_home, now=T0 + 100)
    assert (second.span_from, second.span_to, second.read["sessions"]) == (T0, T0 + 100, 1)


def test_a_dream_reads_no_further_back_than_span_max_s(torch_home, h):
    h.session(T0 - 7200)
    h.session(T0 - 600)
    view = dream(torch_home, with_dreams(span_max_s=3600))
    assert (view.span_from, view.read["sessions"]) == (T0 - 3600, 1)


def test_rows_max_caps_what_a_dream_reads(torch_home, h):
    ids = [h.session(T0 - 1000 + n) for n in range(25)]
    view = dream(torch_home, with_dreams(rows_max=10))
    assert (view.read["sessions"], view.read["capped"]) == (10, ["sessions"])
    activity = one(view, "activity")
    assert activity.evidence["sessions"]["ids"] == [ids[15], ids[24]]  # the latest ten
    assert "Only the latest rows of sessions were read ([dreams] rows_max)." in activity.text


# --- determinism ---------------------------------------------------------------------------------

def rich_history(home) -> None:
    novas.add(home, CONFIG, "echo", now=T0 - DAY)
    h = History(home)
    for n in range(3):
        item = h.item(T0 - 5000, text=f"task {n}", status="dead", attempts=3,
                      finished=T0 - 3000 + n, error=MISSING)
        h.session(T0 - 4000 + n, outcome="failed", error=MISSING, item=item, cost=0.3)
    for n in range(3):
        h.hook_run(T0 - 2000 + n, outcome="bang")
        h.transition(T0 - 2000 + n, "cool", reason=BANG)
    h.item(T0 - 3 * DAY, text="old", priority="low")
    for n in range(6):
        h.signal(T0 - 900 + n, sender="ci", tier="low")
        h.session(T0 - 800 + n, message="Waiting for review.")
    h.close()


def test_two_dreams_over_the_same_history_give_the_same_insights(home, tmp_path):
    from torchsm.config import Home
    from torchsm.storage import database

    other = Home(tmp_path / "other")
    database.initialise(other)
    views = []
    for each in (home, other):
        novas.add(each, CONFIG, "torch", now=T0 - 30 * DAY)
        rich_history(each)
        views.append(dreaming.dream(each, with_dreams(propose_work=True), "torch", T0))
    assert len(views[0].insights) >= 12
    assert comparable(views[0]) == comparable(views[1])


def test_the_same_span_dreamt_again_gives_the_same_findings(torch_home):
    rich_history(torch_home)
    cut = dream(torch_home, should_continue=lambda: False)  # interrupted: its span is read again
    whole = dream(torch_home)
    assert whole.span_from == cut.span_from
    key = [(i.phase, i.kind, i.key, i.text, i.evidence) for i in whole.insights if i.phase == 0]
    assert key == [(i.phase, i.kind, i.key, i.text, i.evidence) for i in cut.insights]


# --- interruption -----------------------------------------------------------------------------

def test_work_arriving_ends_the_dream_early_and_nothing_is_lost(torch_home, h):
    rich_history(torch_home)
    asked = []

    def should_continue() -> bool:  # new work after phase 1
        asked.append(len(asked))
        return len(asked) < 2

    view = dream(torch_home, should_continue=should_continue)
    assert view.status == "interrupted" and len(asked) == 2
    assert {i.phase for i in view.insights} == {0, 1}
    assert view.summary.startswith("interrupted after phase 1; read sessions 9, ")
    assert state(torch_home) == "working"
    assert h.rows("SELECT count(*) FROM memories") == [(0,)]  # phase 2 did not run
    done = dream(torch_home, now=T0 + 60)
    # its span is read again: back as far as a first dream reads, not from where it ended
    assert (done.status, done.span_from) == ("done", T0 + 60 - 7 * DAY)
    assert h.rows("SELECT count(*) FROM memories WHERE kind = 'insight'") != [(0,)]


def test_a_dream_killed_with_minus_9_is_never_shown_as_done(torch_home, h, tmp_path):
    rich_history(torch_home)
    marker = tmp_path / "in-phase-1"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import pathlib, time
        from torchsm.dreams import dreaming, reflection
        from torchsm.config import Config, Home

        def stuck(*args):
            pathlib.Path({str(marker)!r}).write_text("phase 1")
            time.sleep(120)

        reflection.reflect = stuck
        dreaming.dream(Home(pathlib.Path({str(torch_home.path)!r})), Config(redis_url="off"),
                     "torch", {T0!r})
        """)])
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    child.kill()
    child.wait(timeout=10)
    assert h.rows("SELECT id, status FROM dreams") == [(1, "running")]
    assert h.rows("SELECT count(*) FROM insights") == [(0,)]
    cli = Cli(torch_home.path)
    [listed] = cli("dream", "list", "--json").json()
    shown = cli("dream", "show", "1", "--json").json()
    assert (listed["status"], shown["status"], shown["insights"]) == (
        "interrupted", "interrupted", [])
    assert shown["summary"] == dreaming.DIED
    assert state(torch_home) == "dreaming"  # until the next dream or supervisor
    again = dream(torch_home, now=T0 + 60)
    assert again.status == "done" and state(torch_home) == "working"
    assert h.rows("SELECT id, status FROM dreams") == [(1, "interrupted"), (2, "done")]


# --- phase 2: work items and memory -----------------------------------------------------------

def failures(h, at: float, errors: list[str]) -> None:
    for error in errors:
        for n in range(2):
            h.item(at - 5000, text=f"task for {error}", status="dead", attempts=3,
                   finished=at - 1000 + n, error=error)


def dream_items(h) -> list[tuple]:
    return h.rows("SELECT id, text, nova, priority, status, source_key FROM work_items"
                  " WHERE source_key IS NOT NULL ORDER BY id")


def test_without_propose_work_a_dream_adds_no_work(torch_home, h):
    failures(h, T0, ["KeyError: alpha", "KeyError: beta", "KeyError: gamma"])
    view = dream(torch_home)
    assert len(of_kind(view, "investigate-failure")) == 3
    assert dream_items(h) == []
    assert all(i.work_item is None and "work_skipped" not in (i.action or {})
               for i in view.insights)


def test_propose_work_adds_low_items_tagged_with_the_dream_within_the_daily_cap(torch_home, h):
    config = with_dreams(propose_work=True, max_work_per_day=2)
    failures(h, T0, ["KeyError: alpha", "KeyError: beta", "KeyError: gamma"])
    view = dream(torch_home, config)
    proposals = sorted(of_kind(view, "investigate-failure"), key=lambda i: i.rank)
    added = [i for i in proposals if i.work_item is not None]
    assert len(added) == 2
    assert proposals[2].action["work_skipped"] == "[dreams] max_work_per_day (2) reached"
    assert dream_items(h) == [
        (i.work_item, i.action["work"], "torch", "low", "pending", f"dream:1:{i.key}")
        for i in added]
    assert all(i.action["work"].startswith("[dream 1] ") for i in added)
    # the next day: room again, but not for a failure whose item still waits
    again = added[0].action["error"]
    failures(h, T0 + DAY + 60, [again, "KeyError: delta"])
    later = dream(torch_home, config, now=T0 + DAY + 60)
    by_error = {i.action["error"]: i for i in of_kind(later, "investigate-failure")}
    assert by_error[again].action["work_skipped"] == (
        "an item an earlier dream added for it still waits")
    assert by_error["KeyError: delta"].work_item is not None
    assert len(dream_items(h)) == 3


def test_findings_are_remembered_and_strengthened_when_they_recur(torch_home, h):
    failures(h, T0, [MISSING])
    first = dream(torch_home)
    key = one(first, "recurring-failure").key
    assert h.rows("SELECT kind, key, source, strength FROM memories") == [
        ("insight", key, "dream:1", 1)]
    assert one(first, "memory").evidence["remembered"] == [
        {"key": key, "memory": 1, "new": True, "strength": 1}]
    failures(h, T0 + 3600, [MISSING])  # the same failure again, in the next span
    second = dream(torch_home, now=T0 + 3600)
    assert one(second, "recurring-failure").key == key
    assert h.rows("SELECT kind, key, strength FROM memories WHERE forgotten_at IS NULL") == [
        ("insight", key, 2)]
    assert one(second, "memory").text == (
        "Remembered 1 insight (0 new, 1 strengthened); consolidation merged 0, aged out 0 "
        "and capped 0 memories.")


def test_consolidation_merges_duplicate_memories(torch_home, h):
    for n in range(2):
        h.conn.execute("INSERT INTO memories (nova_id, kind, text, key, strength, created_at,"
                       " updated_at) VALUES (1, 'note', 'use uv', 'k', 1, ?, ?)",
                       (T0 - 100 + n, T0 - 100 + n))
    view = dream(torch_home)
    assert one(view, "memory").evidence == {
        "remembered": [], "consolidated": {"merged": 1, "strengthened": 1, "aged_out": 0,
                                           "capped": 0}}
    assert h.rows("SELECT strength FROM memories WHERE forgotten_at IS NULL") == [(2,)]


def test_latest_insights_come_from_the_latest_finished_dreams(torch_home, h):
    failures(h, T0, [MISSING])
    first = dream(torch_home)
    dream(torch_home, now=T0 + 60)  # nothing new: no insights
    h.session(T0 + 100, outcome="failed", error="exit status 2")
    dream(torch_home, now=T0 + 120, should_continue=lambda: False)  # interrupted: not counted

    def latest(limit: int) -> list[tuple]:
        with store.open_store(torch_home) as db:
            found = db.read(lambda conn: dreaming.latest_insights(conn, "torch", limit))
        return [(i.dream_id, i.rank, i.key) for i in found]

    assert latest(3) == [(1, i.rank, i.key) for i in first.insights[:3]]
    last = dream(torch_home, now=T0 + 180)
    assert latest(100) == [(4, i.rank, i.key) for i in last.insights] + [
        (1, i.rank, i.key) for i in first.insights]


# --- refusals ------------------------------------------------------------------------------------

def test_a_dream_of_an_unknown_nova_is_refused(torch_home, h):
    with pytest.raises(NovaNotFound, match="no Nova named 'ghost'"):
        dreaming.dream(torch_home, CONFIG, "ghost", T0)
    assert h.rows("SELECT count(*) FROM dreams") == [(0,)]


def test_a_cooling_nova_dreams_only_once_its_rest_is_over(torch_home, h):
    novas.transition(torch_home, CONFIG, "torch", "cool", for_s=600, now=T0 - 60)
    with pytest.raises(TransitionRefused) as refused:
        dream(torch_home)
    assert refused.value.message == (f"cannot dream torch: cooling until {fmt(T0 + 540)}; "
                                     "dream after that")
    assert (state(torch_home), h.rows("SELECT count(*) FROM dreams")) == ("cooling", [(0,)])
    assert dream(torch_home, now=T0 + 600).status == "done"
    assert state(torch_home) == "working"


def test_a_held_nova_does_not_dream_its_hold_away(torch_home, h):
    novas.hold_for_limit(torch_home, CONFIG, "torch", until=T0 - 10, reason="five_hour at 100%",
                         now=T0 - 100)
    with pytest.raises(TransitionRefused, match="a dream would end the hold"):
        dream(torch_home)
    assert state(torch_home) == "cooling"


def test_one_dream_of_a_nova_at_a_time(torch_home, h):
    with dreaming._dream_lock(torch_home, "torch"):
        assert dreaming.running(torch_home, "torch")
        with pytest.raises(DreamRunning, match="a dream of torch is already running"):
            dream(torch_home)
    assert not dreaming.running(torch_home, "torch")
    assert dream(torch_home).status == "done"


# --- bounded cost ----------------------------------------------------------------------------------

def test_a_dreams_work_is_bounded_by_its_span_not_by_the_size_of_the_home(tmp_path,
                                                                          monkeypatch):
    # Two homes with the same 90 days of history (100,000 rows), the second with 900,000
    # more rows from the year before: the dream reads the same week in both, and its
    # queries must do the same work (indexes, caps, aggregates in SQL; no Python loop over
    # the history). The time over a million rows: bench/bench_dreams.py (BENCHMARKS.md).
    def one_dream(home):
        view = dream(home)
        assert view.status == "done" and view.insight_count > 5

    work = work_beside_older_history(tmp_path, monkeypatch, CONFIG, one_dream)
    assert work[900_000] < 1.2 * work[0], work
