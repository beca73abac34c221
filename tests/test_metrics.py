"""`torchsm metrics`: each family on a crafted history whose numbers are known."""

from __future__ import annotations

import json

import pytest

from dream_support import DAY, T0, History, work_beside_older_history
from torchsm import novas
from torchsm.config import Config
from torchsm.observe import metrics
from torchsm.observe.health import measure

CONFIG = Config(redis_url="off")


@pytest.fixture
def crafted(home):
    """Nova `torch` with one day of everything, plus rows outside the window."""
    novas.add(home, CONFIG, "torch", now=T0 - 10 * DAY)
    h = History(home)
    # sessions: ok, ok (a restart), failed, rate limited; gaps 40 s, -10 s, 3290 s
    h.session(T0 - 3600, cost=0.5)
    h.session(T0 - 3500, cost=0.5, kind="restart")
    h.session(T0 - 3450, cost=0.5, outcome="failed")
    h.session(T0 - 100, cost=0.5, outcome="rate_limited")
    h.session(T0 - 2 * DAY, cost=9.0, outcome="failed")  # before the window
    # items: 3 done and 1 dead by torch in the window; 2 open for torch, 1 for echo
    for n in range(3):
        h.item(T0 - 9000, status="done", attempts=1, finished=T0 - 1000 + n)
    h.item(T0 - 9000, status="dead", attempts=3, finished=T0 - 500, error="boom")
    h.item(T0 - 3 * DAY, status="done", attempts=1, finished=T0 - 2 * DAY)
    h.item(T0 - 7200)
    h.item(T0 - 600)
    h.item(T0 - 50_000, nova="echo")
    # wake: two high signals (one started 12 s after it was due), one low still pending
    high = h.signal(T0 - 2000, sender="ops", tier="high")
    h.signal(T0 - 1900, sender="ops", tier="high")
    h.conn.execute("INSERT INTO wake_signals (nova_id, message, sender, tier, status,"
                   " received_at, due_at, rules) VALUES (?, 'later', NULL, 'low', 'pending',"
                   " ?, ?, '[]')", (h.nova_id, T0 - 1800, T0))
    h.conn.execute("INSERT INTO sessions (nova_id, started_at, ended_at, kind, prompt,"
                   " signal_id, outcome) VALUES (?, ?, ?, 'wake', 'p', ?, 'ok')",
                   (h.nova_id, T0 - 2000 + 12, T0 - 1950, high))
    # hooks: 5 stop runs (one a bang), one failing pre-tool-use
    for n in range(4):
        h.hook_run(T0 - 5100 + n)
    h.hook_run(T0 - 5001, outcome="bang")
    h.hook_run(T0 - 400, event="pre-tool-use", outcome="error")
    # history: a bang's cool then work (300 s), a limit hold then work, a meditation then
    # work (600 s)
    h.transition(T0 - 5000, "cool", reason="bang: 11 Stop-hook runs within 60s")
    h.transition(T0 - 4700, "work", source="cooling")
    h.transition(T0 - 4000, "cool", reason="usage limit", hold=True)
    h.transition(T0 - 1000, "work", source="cooling")
    h.transition(T0 - 900, "meditate")
    h.transition(T0 - 300, "work", source="meditating")
    # messages: echo -> torch x2, torch -> echo, torch -> all, helix -> all
    h.message(T0 - 700, sender="echo")
    h.message(T0 - 690, sender="echo")
    h.message(T0 - 680, sender="torch", to="echo")
    h.message(T0 - 670, sender="torch", to="all")
    h.message(T0 - 660, sender="helix", to="all")
    h.message(T0 - 3 * DAY, sender="zed")  # before the window
    # a dream: one pattern, two proposals whose items were added (one of them done)
    dream = h._insert("INSERT INTO dreams (nova_id, started_at, ended_at, status, trigger,"
                      " span_from, span_to) VALUES (?, ?, ?, 'done', 'command', ?, ?)",
                      h.nova_id, T0 - 200, T0 - 199, T0 - 7 * DAY, T0 - 200)
    done_item = h.item(T0 - 199, status="done", finished=T0 - 100, nova="zed")
    open_item = h.item(T0 - 199, nova="zed")
    for rank, (phase, action, item) in enumerate([(0, None, None), (2, "{}", done_item),
                                                  (2, "{}", open_item)]):
        h.conn.execute("INSERT INTO insights (dream_id, phase, kind, key, rank, text, evidence,"
                       " action, work_item_id) VALUES (?, ?, 'k', ?, ?, 't', '{}', ?, ?)",
                       (dream, phase, f"k{rank}", rank, action, item))
    h.window("five_hour", utilization=0.42, resets_at=T0 + 3600, at=T0 - 60)
    h.close()
    return home


def family(home, name: str, nova: str = "torch") -> dict:
    found = metrics.collect(home, CONFIG, nova, DAY, T0)
    return found.novas[0].families[name]


def test_uptime(crafted):
    assert family(crafted, "uptime") == {
        "sessions": 5, "restarts": 1, "sessions_ok": 3, "sessions_failed": 1,
        "stability": 0.8, "transitions": 6,
        "transitions_by_event": {"cool": 2, "meditate": 1, "work": 3}}


def test_work_processing(crafted):
    assert family(crafted, "work") == {
        "items_done": 3, "items_failed": 0, "items_dead": 1,
        "throughput_per_hour": 0.125, "success_rate": 0.75,
        # open for torch: 7200 s and 600 s old (the nearest-rank p90 of two is the older)
        "queue_depth": 2, "queue_age_p90_s": 7200.0, "queue_age_max_s": 7200.0}


def test_wake_signals(crafted):
    assert family(crafted, "wake") == {
        "signals": 3, "signals_by_tier": {"high": 2, "low": 1},
        "signals_by_status": {"delivered": 2, "pending": 1},
        "sessions_started": 1, "sessions_started_by_tier": {"high": 1},
        "latency_avg_s_by_tier": {"high": 12.0}, "latency_max_s_by_tier": {"high": 12.0}}


def test_hook_health(crafted):
    hooks = family(crafted, "hooks")
    assert hooks == {"runs": 6, "runs_per_hour": 0.25,
                     "runs_by_event": {"stop": 5, "pre-tool-use": 1}, "errors": 1, "bangs": 1,
                     "safety_actions": 0, "duration_mean_ms": 1.0, "recoveries": 1}


def test_coordination(crafted):
    assert family(crafted, "coordination") == {
        "sent": 2, "broadcasts": 1, "received": 3, "senders": 2, "partners": 2}


def test_dreams(crafted):
    assert family(crafted, "dreams") == {
        "dreams": 1, "dreams_done": 1, "dreams_interrupted": 0, "insights": 3,
        "proposals": 2, "proposals_applied": 2, "proposals_acted_on": 1, "acted_on_rate": 0.5}


def test_rhythm_against_the_personality_floor(crafted):
    # torch: base cycle 25 s, sustained; one gap of four is shorter (-10 s: overlapping)
    rhythm = family(crafted, "rhythm")
    # starts/ends: -3600/-3540, -3500/-3440, -3450/-3390, -1988/-1950, -100/-40
    gaps = [-3500 + 3540, -3450 + 3440, -1988 + 3390, -100 + 1950]
    assert rhythm == {"energy": "sustained", "base_cycle_s": 25.0, "floor_s": 25.0,
                      "gaps": 4, "compliance": 0.75, "gap_mean_s": sum(gaps) / 4,
                      "adaptation": round(sum(gaps) / 4 / 25, 4)}


def test_error_recovery(crafted):
    assert family(crafted, "recovery") == {
        "cooldowns": 1, "emergencies": 1, "meditations": 1, "limit_holds": 1,
        "recoveries": 2, "time_to_recover_mean_s": 450.0, "time_to_recover_max_s": 600.0}


def test_usage_per_nova_and_account(crafted):
    assert family(crafted, "usage") == {"cost_usd": 2.0, "cost_usd_per_day": 2.0,
                                        "refused": 1}
    account = metrics.collect(crafted, CONFIG, None, DAY, T0).accounts
    assert account == [{"account": "default", "sessions": 5, "cost_usd": 2.0,
                        "cost_usd_per_day": 2.0, "refused": 1, "windows_used": 1,
                        "utilization_by_window": {"five_hour": 0.42},
                        "status_by_window": {"five_hour": "allowed"},
                        "resets_at_by_window": {"five_hour": "2027-01-15T09:00:00Z"}}]


def test_home_queue_counts_every_open_item(crafted):
    found = metrics.collect(crafted, CONFIG, None, DAY, T0)
    # torch's two, echo's one, the dream's open item for zed
    assert found.queue == {"queue_depth": 4, "queue_age_p90_s": 50_000.0,
                           "queue_age_max_s": 50_000.0}


def test_a_wider_window_reaches_the_older_rows(crafted):
    wide = metrics.collect(crafted, CONFIG, "torch", 3 * DAY + 1, T0).novas[0].families
    assert wide["uptime"]["sessions"] == 6
    assert wide["work"]["items_done"] == 4  # the dream's item was done by no Nova


def test_unknown_nova_is_one_line(crafted, cli):
    result = cli.fails("metrics", "nobody")
    assert result.err == "torchsm: error: no Nova named 'nobody'\n"


# --- the command -------------------------------------------------------------------


def test_bad_since_is_a_usage_error(cli):
    cli("nova", "add", "torch")
    result = cli.fails("metrics", "--since", "soon", code=2)
    assert result.err.splitlines()[-1].startswith(
        "Error: Invalid value for '--since': bad duration 'soon'")
    assert result.out == ""


def test_bad_format_is_a_usage_error(cli):
    assert cli.fails("metrics", "--format", "xml", code=2).out == ""


def test_a_home_without_novas_says_so_in_one_line(cli):
    result = cli("metrics")
    assert result.out == "no Novas (add one with `torchsm nova add NAME`)\n"
    assert cli("metrics", "--json").json()["health"] == {"score": None, "previous": None,
                                                          "trend": None}


def test_a_home_never_initialised_is_one_line(bare_cli):
    result = bare_cli.fails("metrics")
    assert result.err.startswith("torchsm: error: ") and result.err.count("\n") == 1
    assert not (bare_cli.home / "torchsm.db").exists()  # nothing created, nothing lost


def test_a_nova_with_no_history_scores_100(cli):
    cli("nova", "add", "torch")
    report = cli("metrics", "--json").json()
    assert report["health"]["score"] == 100
    assert report["novas"][0]["health"]["recommendations"] == []
    assert "torch (torch, working): health 100" in cli("metrics").out


def test_json_shape(cli):
    cli("nova", "add", "torch")
    report = cli("metrics", "torch", "--since", "6h", "--json").json()
    assert cli("metrics", "torch", "--since", "6h", "--format", "json").json().keys() \
        == report.keys()
    assert set(report) == {"since", "until", "since_s", "novas", "accounts", "queue", "health"}
    assert report["since_s"] == 6 * 3600
    nova = report["novas"][0]
    assert set(nova) == {"nova", "personality", "account", "state", "health",
                         *metrics.FAMILIES}
    assert set(nova["health"]) == {"score", "penalties", "recommendations", "previous",
                                   "trend"}


def test_text_names_the_recommendation_and_hides_control_characters(crafted, cli):
    h = History(crafted)
    h.item(0, text="\x1b[2Jold")  # an ancient open item: queue age p90 over an hour
    h.close()
    out = cli("metrics", "torch").out
    assert "work.queue_age_p90_s" in out and "add a Nova or lower priorities" in out
    assert "\x1b" not in out


def test_measure_matches_the_command(crafted):
    found = measure(crafted, CONFIG, "torch", DAY, T0).as_json()
    assert json.loads(json.dumps(found))["novas"][0]["hooks"]["bangs"] == 1


def test_metrics_work_is_bounded_by_the_window_not_by_the_size_of_the_home(tmp_path,
                                                                         monkeypatch):
    # Two homes with the same 90 days (100,000 rows), the second with 900,000 more
    # transitions, sessions, hook runs (and 100,000 messages) from the year before: the
    # metrics of the last 24 hours and their trend (the 24 hours before) must do the same
    # work in both (covering indexes, aggregates in SQL, no scan; migration 0010). The time
    # over a million rows: bench/bench_metrics.py (BENCHMARKS.md).
    def the_last_day(home):
        torch = measure(home, CONFIG, None, DAY, T0).novas[0].as_json()
        assert torch["uptime"]["sessions"] > 100 and torch["recovery"]["cooldowns"] > 50

    work = work_beside_older_history(tmp_path, monkeypatch, CONFIG, the_last_day)
    assert work[900_000] < 1.2 * work[0], work


@pytest.mark.parametrize("outcome", ["rate_limited", "overloaded", "account_error"])
def test_every_refusal_the_api_gives_counts_as_refused(home, outcome):
    """The outcomes come from the one vocabulary of endings: an account error (billing,
    authentication, permission) was missed while metrics kept its own older list."""
    novas.add(home, CONFIG, "torch", now=T0 - DAY)
    h = History(home)
    h.session(T0 - 600, outcome=outcome)
    h.session(T0 - 300, outcome="failed")
    h.close()
    assert family(home, "usage")["refused"] == 1
    assert family(home, "uptime")["sessions_failed"] == 1
    one = metrics.collect(home, CONFIG, "torch", DAY, T0)
    every = metrics.collect(home, CONFIG, None, DAY, T0)
    assert [a["refused"] for a in one.accounts] == [a["refused"] for a in every.accounts] == [1]
