"""`torchsm usage`: the real CLI over a ledger and usage windows on a real database."""

import datetime as dt
import time

import pytest

from helpers import Cli, add_novas, write_config
from torchsm.storage import store
from torchsm.usage import accounts, ledger
from torchsm.usage.report import parse_duration


def add_session(home, nova_id, started, *, cost=0.01, turns=1, outcome="ok", status=None,
                **used):
    """A finished session; `used`: SessionEnd's model and token fields."""
    def write(conn):
        sid = ledger.start(conn, nova_id=nova_id, kind="item", prompt="p", item_id=None,
                           signal_id=None, at=started)
        ledger.finish(conn, sid, ledger.SessionEnd(
            ended_at=started + 5, exit_status=0 if outcome == "ok" else 1, outcome=outcome,
            cost_usd=cost, num_turns=turns, api_error_status=status, **used))

    with store.open_store(home) as db:
        db.write(write)


@pytest.fixture
def spent(cli: Cli, home):
    """Novas torch and echo (ids 1, 2) with sessions over three days and a usage window."""
    add_novas(home, "torch", "echo")
    now = time.time()
    add_session(home, 1, now - 600, cost=0.25, turns=3)
    add_session(home, 1, now - 500, cost=0.05, turns=1, outcome="rate_limited", status=429)
    add_session(home, 1, now - 400, cost=None, turns=None, outcome="crashed")
    add_session(home, 1, now - 3 * 86400, cost=5.0, turns=9)  # outside 24h
    add_session(home, 2, now - 300, cost=1.0, turns=2)
    with store.open_store(home) as db:
        db.write(lambda conn: accounts.learn(conn, "default", [accounts.WindowRow(
            "five_hour", "allowed_warning", 0.91, now + 3600, now, nova="torch")], now))
    return cli


def test_json_per_nova_totals_errors_buckets_and_windows(spent):
    report = spent("usage", "torch", "--json").json()
    assert report["bucket"] == "hour"
    [nova] = report["novas"]
    assert (nova["nova"], nova["sessions"], nova["turns"]) == ("torch", 3, 4)
    assert nova["cost_usd"] == pytest.approx(0.30)
    assert nova["errors"] == {"429": 1, "crashed": 1}
    assert sum(b["sessions"] for b in nova["buckets"]) == 3
    assert nova["account"] == "default" and "windows" not in nova
    [account] = report["accounts"]
    assert (account["account"], account["novas"]) == ("default", ["echo", "torch"])
    [window] = account["windows"]
    assert (window["window"], window["utilization"], window["status"], window["current"],
            window["source"], window["heard_from"]) == (
        "five_hour", 0.91, "allowed_warning", True, "event", "torch")
    assert window["resets_at"].endswith("Z")
    assert account["verdict"]["kind"] == "pace" and "five_hour at 91%" in account["verdict"]["why"]
    assert account["held"] == []
    # sessions that ended within 24 h, of every Nova on the account (echo's too)
    assert account["cost_usd_24h"] == pytest.approx(1.30)
    assert account["cost_limit_usd"] == 0


def test_a_longer_span_is_shown_per_day_and_for_every_nova(spent):
    report = spent("usage", "--since", "7d", "--json").json()
    assert report["bucket"] == "day"
    by_name = {n["nova"]: n for n in report["novas"]}
    assert by_name["torch"]["sessions"] == 4 and by_name["echo"]["sessions"] == 1
    assert by_name["echo"]["account"] == "default"
    assert [a["account"] for a in report["accounts"]] == ["default"]


def test_text_shows_totals_buckets_and_windows(spent):
    out = spent("usage", "--since", "6h").out
    assert "torch: 3 sessions, 4 turns, $0.3000, errors: 429 x1, crashed x1" in out
    assert "HOUR" in out and "five_hour" in out and "91%" in out and "allowed_warning" in out
    assert "echo: 1 session, 2 turns, $1.0000" in out
    assert "account default: novas echo, torch; verdict pace until " in out
    assert "WINDOW" in out and "BY" in out


def test_clear_one_line_errors(spent):
    err = spent.fails("usage", "ghost").err
    assert err == "torchsm: error: no Nova named 'ghost'\n"


@pytest.mark.parametrize("since", ["6x", "0h"])
def test_a_bad_since_is_a_usage_error(spent, since):
    err = spent.fails("usage", "--since", since, code=2).err
    assert err.splitlines()[-1].startswith(f"Error: Invalid value for '--since': bad duration "
                                           f"'{since}': use a positive number")


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("6h", 21600), ("2d", 172800),
                                           ("90s", 90), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_status_says_why_and_until_when_the_usage_slows_a_nova(spent):
    import os

    from torchsm.config import Home
    from torchsm.storage import run_files

    usage = {"verdict": "slow", "why": "usage five_hour at 85%, resets 2026-11-26T09:00:00Z",
             "until": "2026-11-26T09:00:00Z", "pressure": 0.333}
    run_files.write_plan(Home(spent.home), "torch", {
        "nova": "torch", "pid": os.getpid(), "state": "waiting",
        "next_start": "2026-11-26T08:20:00Z", "why": "rhythm: stretched", "usage": usage})
    out = spent("status").out
    assert ("torch: usage slows it: usage five_hour at 85%, resets 2026-11-26T09:00:00Z "
            "(until 2026-11-26T09:00:00Z)") in out
    [row] = [r for r in spent("status", "--json").json() if r["nova"] == "torch"]
    assert row["plan"]["usage"] == usage


# --- tokens, models, days and months, projection ------------------------------------------

OPUS, SONNET = "claude-opus-5-5", "claude-sonnet-4-5"


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


def tokens(i, o, w, r) -> dict:
    return {"input_tokens": i, "output_tokens": o, "cache_creation_tokens": w,
            "cache_read_tokens": r}


@pytest.fixture
def ledger_of_known_numbers(cli: Cli, home):
    """Four sessions across a month's end, whose numbers are known: in UTC the first is
    on Oct 31, the next two on Nov 1, the last on Nov 2; five hours west of UTC (TZ=EST5)
    the first two are on Oct 31."""
    add_novas(home, "torch", "echo")
    add_session(home, 1, utc("2026-10-31T23:30:00"), cost=1.0, turns=2, model=OPUS,
                **tokens(100, 10, 1000, 2000))
    add_session(home, 1, utc("2026-11-01T00:30:00"), cost=0.5, turns=1, model=SONNET,
                **tokens(200, 20, 0, 500))
    add_session(home, 2, utc("2026-11-01T10:00:00"), cost=2.0, turns=3, model=OPUS,
                **tokens(300, 30, 100, 100))
    add_session(home, 1, utc("2026-11-02T12:00:00"), cost=None, turns=None)  # a plain agent
    return cli


def period_rows(report: dict) -> list[tuple]:
    return [(p["period"], p["sessions"], p["cost_usd"], p["models"],
             tuple(p["tokens"].values())) for p in report["periods"]]


def test_daily_totals_in_utc(ledger_of_known_numbers):
    report = ledger_of_known_numbers("usage", "--daily", "--utc", "--json").json()
    assert report["period"] == "day" and report["timezone"] == "UTC"
    assert period_rows(report) == [
        ("2026-10-31", 1, 1.0, [OPUS], (100, 10, 1000, 2000)),
        ("2026-11-01", 2, 2.5, [OPUS, SONNET], (500, 50, 100, 600)),
        ("2026-11-02", 1, 0.0, [], (0, 0, 0, 0))]
    assert report["total"]["sessions"] == 4 and report["total"]["cost_usd"] == 3.5
    assert report["total"]["tokens"] == {"input": 600, "output": 60, "cache_creation": 1100,
                                         "cache_read": 2600}


def test_daily_totals_in_local_time_by_default(ledger_of_known_numbers):
    report = ledger_of_known_numbers("usage", "--daily", "--json", TZ="EST5").json()
    assert report["timezone"] == "EST"
    assert [(p["period"], p["sessions"], p["cost_usd"]) for p in report["periods"]] == [
        ("2026-10-31", 2, 1.5), ("2026-11-01", 1, 2.0), ("2026-11-02", 1, 0.0)]


@pytest.mark.parametrize("zone, expected", [
    (["--utc"], [("2026-10", 1, 1.0), ("2026-11", 3, 2.5)]),
    ([], [("2026-10", 2, 1.5), ("2026-11", 2, 2.0)]),
])
def test_monthly_totals(ledger_of_known_numbers, zone, expected):
    report = ledger_of_known_numbers("usage", "--monthly", *zone, "--json", TZ="EST5").json()
    assert report["period"] == "month"
    assert [(p["period"], p["sessions"], p["cost_usd"]) for p in report["periods"]] == expected


def test_one_novas_days_and_a_span(ledger_of_known_numbers):
    report = ledger_of_known_numbers("usage", "echo", "--daily", "--utc", "--json").json()
    assert period_rows(report) == [("2026-11-01", 1, 2.0, [OPUS], (300, 30, 100, 100))]
    recent = ledger_of_known_numbers("usage", "--daily", "--since", "1d", "--json").json()
    assert recent["periods"] == [] and recent["total"]["sessions"] == 0


def test_daily_text_is_a_table_with_a_total(ledger_of_known_numbers):
    out = ledger_of_known_numbers("usage", "--daily", "--utc").out.splitlines()
    assert out[0] == "per day (UTC), since the first session:"
    assert out[1].split() == ["DAY", "SESSIONS", "IN", "OUT", "CACHE_WRITE", "CACHE_READ",
                              "COST_USD", "MODELS"]
    assert out[3].split() == ["2026-11-01", "2", "500", "50", "100", "600", "2.5000",
                              f"{OPUS},", SONNET]
    assert out[-1].split()[:7] == ["total", "4", "600", "60", "1100", "2600", "3.5000"]


def test_tokens_and_models_per_nova_and_account(ledger_of_known_numbers):
    report = ledger_of_known_numbers("usage", "--since", "3650d", "--json").json()
    by_name = {n["nova"]: n for n in report["novas"]}
    assert by_name["torch"]["tokens"] == {"input": 300, "output": 30, "cache_creation": 1000,
                                          "cache_read": 2500}
    assert by_name["torch"]["models"] == [OPUS, SONNET]
    [account] = report["accounts"]
    assert (account["sessions"], account["cost_usd"], account["tokens"]["input"],
            account["models"]) == (4, 3.5, 600, [OPUS, SONNET])
    text = ledger_of_known_numbers("usage", "torch", "--since", "3650d").out
    assert ("torch: tokens 300 in, 30 out, 1000 cache write, 2500 cache read; models "
            f"{OPUS}, {SONNET}") in text
    assert "account default: 4 sessions, $3.5000, tokens 600 in, 60 out" in text


def test_the_projection_of_each_window_and_of_the_daily_budget(spent, home):
    write_config(home, "[supervisor]\nmax_cost_usd_per_day = 10\n")
    report = spent("usage", "--json").json()
    [account] = report["accounts"]
    # 91 % an hour before the reset of a five-hour window: 4 h in, 22.75 %/h: full in 24 min
    [window] = account["projection"]["windows"]
    assert window["window"] == "five_hour" and window["says"].startswith("spent at ")
    assert 0.2 < window["rate_per_hour"] < 0.25
    # $1.30 over the last 10 min (an hour at least): $1.30/h, $8.70 left: in ~6.7 h
    budget = account["projection"]["budget"]
    assert budget["says"].startswith("spent at ") and budget["says"].endswith("(at $1.30/h)")
    out = spent("usage").out
    assert "projection: five_hour spent at " in out and "; daily budget spent at " in out


def test_no_budget_no_budget_projection(spent):
    [account] = spent("usage", "--json").json()["accounts"]
    assert account["projection"]["budget"] is None


def test_daily_and_monthly_exclude_each_other(spent):
    assert "--daily or --monthly, not both" in spent.fails("usage", "--daily", "--monthly",
                                                          code=2).err
