"""Accounts on the command line: `nova add --account`, `nova set --account`, the account in
`status`, `nova show` and `nova list`, and `usage` per account (windows, verdict, the
Novas held for a usage limit, cost). Real CLI subprocesses on a real database."""

import time

import pytest

from helpers import Cli, write_config
from torchsm import novas
from torchsm.config import Home, load_config
from torchsm.storage import store
from torchsm.usage import accounts, limits

CONFIG = 'redis_url = "off"\n'


def learn(home: Home, account: str, utilization: float, *, by: str, window="five_hour",
          resets_in=3600.0, now=None) -> float:
    now = time.time() if now is None else now
    row = accounts.WindowRow(window, "allowed_warning", utilization, now + resets_in, now,
                             nova=by)
    with store.open_store(home) as db:
        db.write(lambda conn: accounts.learn(conn, account, [row], now))
    return now


def enforce(home: Home, account: str, now: float):
    with store.open_store(home) as db:
        return limits.enforce(db, home, load_config(home), account, now)


@pytest.fixture
def three(cli: Cli, home: Home) -> Cli:
    """torch on `default`; echo and helix on `work`."""
    write_config(home, CONFIG)
    cli("nova", "add", "torch")
    cli("nova", "add", "echo", "--account", "work")
    cli("nova", "add", "helix", "-a", "work")
    return cli


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["nova"]: r for r in rows}


# --- nova add / set, and where the account shows ----------------------------------------

def test_add_puts_a_nova_on_default_or_the_account_given(cli: Cli, home: Home):
    write_config(home, CONFIG)
    assert cli("nova", "add", "torch").out == "added torch (torch) on account default, working\n"
    out = cli("nova", "add", "echo", "--account", "work").out
    assert out == "added echo (echo) on account work, working\n"
    shown = cli("nova", "add", "helix", "--account", "work", "--json").json()
    assert (shown["nova"], shown["account"]) == ("helix", "work")
    assert {r["nova"]: r["account"] for r in cli("status", "--json").json()} == {
        "torch": "default", "echo": "work", "helix": "work"}


def test_set_account_moves_a_nova_and_every_view_shows_it(three: Cli):
    shown = three("nova", "set", "torch", "--account", "work", "--json").json()
    assert (shown["nova"], shown["account"], shown["state"]) == ("torch", "work", "working")
    assert three("nova", "show", "torch", "--json").json()["account"] == "work"
    assert "account: work" in three("nova", "show", "torch").out
    [row] = three("status", "torch", "--json").json()
    assert row["account"] == "work"
    assert by_name(three("nova", "list", "--json").json())["torch"] == {
        "nova": "torch", "personality": "torch", "account": "work", "state": "working"}
    # text: the account is a column of `status` and `nova list`; `set` prints the Nova
    status = three("status").out.splitlines()
    assert "ACCOUNT" in status[0] and "work" in status[1]
    listed = three("nova", "list").out.splitlines()
    assert listed[0].split() == ["NOVA", "PERSONALITY", "ACCOUNT", "STATE"]
    assert "account: default" in three("nova", "set", "torch", "--account", "default").out
    assert three("nova", "show", "torch", "--json").json()["account"] == "default"


def test_moving_a_nova_off_a_held_account_ends_its_limit_hold(three: Cli, home: Home):
    now = learn(home, "work", 0.97, by="echo")
    enforce(home, "work", now)
    [held] = three("status", "echo", "--json").json()
    assert held["limit_hold"] and held["until"] > held["since"]
    three("nova", "set", "echo", "--account", "spare")
    [row] = three("status", "echo", "--json").json()
    assert row["account"] == "spare" and row["until"] < held["until"]  # the wait ends now
    assert row["limit_hold"] is None  # and auto_resume = false would not keep it either
    report = three("usage", "--json").json()
    held = {a["account"]: [h["nova"] for h in a["held"]] for a in report["accounts"]}
    assert held == {"default": [], "spare": [], "work": ["helix"]}


@pytest.mark.parametrize("account", ["Bad Name", "", "-x", "a" * 40, "UPPER", "_x"])
def test_an_invalid_account_name_is_one_line_and_changes_nothing(three: Cli, account):
    before = three("nova", "list", "--json").json()
    for args in (["nova", "add", "nova9", "--account", account],
                 ["nova", "add", "nova9", f"--account={account}"],
                 ["nova", "set", "torch", "--account", account]):
        result = three.fails(*args)
        assert result.err == (f"torchsm: error: invalid account name {account!r}: "
                              "use [a-z0-9][a-z0-9_-]{0,31}\n"), args
        assert result.out == "" and "Traceback" not in result.err
    assert three("nova", "list", "--json").json() == before


def test_set_on_an_unknown_nova_and_set_without_options(three: Cli):
    result = three.fails("nova", "set", "ghost", "--account", "work")
    assert result.err == "torchsm: error: no Nova named 'ghost'\n" and result.out == ""
    usage = three.fails("nova", "set", "torch", code=2)
    assert "nothing to set" in usage.err and "Traceback" not in usage.err
    assert three("nova", "show", "torch", "--json").json()["account"] == "default"


def test_nova_set_has_help(three: Cli):
    out = three("nova", "set", "--help").out
    assert out.startswith("Usage: torchsm nova set") and "--account" in out
    assert "--home" in out and "--json" in out
    assert "--account" in three("nova", "add", "--help").out


# --- usage per account -------------------------------------------------------------------

def test_usage_shows_each_account_its_windows_verdict_and_held_novas(three: Cli, home: Home):
    now = learn(home, "work", 0.97, by="echo")
    learn(home, "default", 0.30, by="torch", now=now)
    stop = enforce(home, "work", now)
    assert stop.kind == "stop"
    report = three("usage", "--json").json()
    assert set(report) == {"since", "until", "bucket", "accounts", "novas"}
    work, default = (next(a for a in report["accounts"] if a["account"] == name)
                     for name in ("work", "default"))
    assert [a["account"] for a in report["accounts"]] == ["default", "work"]
    assert set(work) == {"account", "novas", "windows", "verdict", "held", "cost_usd_24h",
                         "cost_limit_usd", "projection", "sessions", "turns", "cost_usd",
                         "tokens", "models", "errors"}
    assert work["novas"] == ["echo", "helix"] and default["novas"] == ["torch"]
    [window] = work["windows"]
    assert set(window) == {"window", "status", "utilization", "resets_at", "updated_at",
                           "current", "source", "heard_from", "per_request"}
    assert (window["window"], window["utilization"], window["heard_from"],
            window["source"], window["current"]) == ("five_hour", 0.97, "echo", "event", True)
    assert work["verdict"]["kind"] == "stop"
    assert work["verdict"]["why"].startswith("usage limit: five_hour 97%, resets ")
    assert [h["nova"] for h in work["held"]] == ["echo", "helix"]
    for held in work["held"]:
        assert set(held) == {"nova", "state", "until", "reason"}
        assert held["state"] == "cooling" and held["until"] == work["verdict"]["until"]
        assert held["reason"] == work["verdict"]["why"]
    assert default["verdict"] == {"kind": "ok", "until": None, "why": ""}
    assert default["held"] == [] and default["windows"][0]["utilization"] == 0.30
    assert {n["nova"]: n["account"] for n in report["novas"]} == {
        "torch": "default", "echo": "work", "helix": "work"}
    assert all("windows" not in n for n in report["novas"])
    # the other account's Nova works on
    assert three("status", "torch", "--json").json()[0]["state"] == "working"

    # with NAME: that Nova, and only its account
    one = three("usage", "helix", "--json").json()
    assert [n["nova"] for n in one["novas"]] == ["helix"]
    [account] = one["accounts"]
    assert account["account"] == "work" and account["novas"] == ["echo", "helix"]

    text = three("usage").out
    assert "account default: novas torch; verdict ok" in text
    assert f"account work: novas echo, helix; verdict stop until {work['verdict']['until']}" in text
    assert "WINDOW" in text and "UTILIZATION" in text and "RESETS" in text and "BY" in text
    assert "97%" in text and "30%" in text
    for nova in ("echo", "helix"):
        assert (f"{nova}: held (cooling) until {work['verdict']['until']}: "
                f"{work['verdict']['why']}") in text
    assert "torch: 0 sessions, 0 turns, $0.0000" in text


def test_a_nova_held_for_a_person_is_not_listed_as_held_for_a_limit(three: Cli, home: Home):
    novas.meditate_for_a_person(home, load_config(home), "torch", reason="billing error")
    [default] = [a for a in three("usage", "--json").json()["accounts"]
                 if a["account"] == "default"]
    assert default["held"] == []


def test_an_account_override_of_stop_utilization_applies_to_that_account_only(
        three: Cli, home: Home):
    write_config(home, CONFIG + "[accounts.work]\nstop_utilization = 0.5\n"
                                "slow_utilization = 0.4\nmax_cost_usd_per_day = 2.5\n")
    now = learn(home, "work", 0.6, by="echo")
    learn(home, "default", 0.6, by="torch", now=now)
    verdicts = {a["account"]: a for a in three("usage", "--json").json()["accounts"]}
    assert verdicts["work"]["verdict"]["kind"] == "stop"
    assert verdicts["work"]["verdict"]["why"].startswith("usage limit: five_hour 60%")
    assert verdicts["default"]["verdict"]["kind"] == "ok"  # [usage]: slow 0.8, stop 0.95
    assert (verdicts["work"]["cost_limit_usd"], verdicts["default"]["cost_limit_usd"]) == (
        2.5, 0.0)
    assert "$0.0000 of $2.50 a day" in three("usage").out


def test_an_account_seen_only_through_its_windows_is_listed(three: Cli, home: Home):
    learn(home, "spare", 0.2, by="nobody")
    report = three("usage", "--json").json()
    [spare] = [a for a in report["accounts"] if a["account"] == "spare"]
    assert spare["novas"] == [] and spare["verdict"]["kind"] == "ok"
    assert "account spare: novas none; verdict ok" in three("usage").out


@pytest.mark.parametrize("table, message", [
    ("[accounts.work]\nstop_utilisation = 0.5\n",
     "torchsm.toml: unknown key 'accounts.work.stop_utilisation' (keys: "),
    ('[accounts."Bad Name"]\nstop_utilization = 0.5\n',
     "torchsm.toml: 'accounts.Bad Name' is not a valid account name"),
    ("[accounts.work]\nslow_utilization = 2\n",
     "torchsm.toml: 'accounts.work.slow_utilization' must be above 0 and at most 1"),
    ("[accounts.work]\nmax_cost_usd_per_day = \"lots\"\n",
     "torchsm.toml: 'accounts.work.max_cost_usd_per_day' must be a number"),
    ("accounts = 3\n", "torchsm.toml: 'accounts' must hold one table per account"),
])
def test_a_bad_account_table_is_one_clear_line(three: Cli, home: Home, table, message):
    write_config(home, CONFIG + table)
    for args in (["usage"], ["status"], ["nova", "add", "nova9", "--account", "work"]):
        result = three.fails(*args)
        assert result.err.startswith(f"torchsm: error: {message}"), (args, result.err)
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
    write_config(home, CONFIG)
    assert "nova9" not in by_name(three("nova", "list", "--json").json())
