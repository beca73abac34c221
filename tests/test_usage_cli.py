"""`torchsm usage`: the real CLI over a ledger and usage windows on a real database."""

import time

import pytest

from helpers import Cli, add_novas
from torchsm.storage import store
from torchsm.usage import accounts, ledger
from torchsm.usage.report import parse_duration


def add_session(home, nova_id, started, *, cost=0.01, turns=1, outcome="ok", status=None):
    def write(conn):
        sid = ledger.start(conn, nova_id=nova_id, kind="item", prompt="p", item_id=None,
                           signal_id=None, at=started)
        ledger.finish(conn, sid, ledger.SessionEnd(
            ended_at=started + 5, exit_status=0 if outcome == "ok" else 1, outcome=outcome,
            cost_usd=cost, num_turns=turns, api_error_status=status))

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
