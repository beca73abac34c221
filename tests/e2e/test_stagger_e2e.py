"""Many Novas of one account resume one by one (issue 22, point 3), end to end: the real
Claude Code (pinned) in subscription mode, hooks installed, each Nova under its own
`torchsm run`, against a stand-in account whose current window is used up.

The account's limit was heard before (a `rejected` rate_limit_event, the reset a few
seconds ahead), so every Nova holds until the reset plus the margin. Measured before the
stagger: five held Novas all started in the same second after the reset. Now they start
one stagger apart; the stand-in refuses nothing (a request sent into the used-up window
would be refused)."""

import time

import pytest

from account_runs import CONFIG, PERSONALITY, _prepare, _start, _stop
from helpers import Cli, rows, write_config
from standin import Account, StandIn
from torchsm.config import Home
from torchsm.storage import store
from torchsm.usage import accounts

# Run apart from the parallel tests (scripts/test): it measures start times in seconds.
pytestmark = pytest.mark.serial

NOVAS = ("n1", "n2", "n3", "n4", "n5")
MARGIN_S, STAGGER_S = 1, 1.5  # CONFIG's reset_margin_s; this test's start_stagger_s
WINDOW_S, ALLOWANCE = 60, 50
LEAD_S = 10  # the reset this far ahead: five supervisors are up and holding before it


def used_up_account(reset: int) -> Account:
    """A stand-in account whose window ends at `reset` with its allowance spent."""
    account = Account(WINDOW_S, ALLOWANCE, start=reset - WINDOW_S)
    for n in range(ALLOWANCE):
        account.answer(n, {}, {"x-claude-code-session-id": "before"})
    return account


def hear_the_limit(home: Home, reset: int) -> None:
    """What a Nova of the account heard when it ran into the limit."""
    now = time.time()
    with store.open_store(home) as db:
        db.write(lambda conn: accounts.learn(conn, "default", [accounts.WindowRow(
            "five_hour", "rejected", 1.0, reset, now, nova="n1")], now))


def ended_sessions(cli: Cli) -> int:
    return rows(cli, "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL")[0][0]


def test_five_held_novas_of_one_account_resume_one_by_one(claude_bin, tmp_path):
    home = tmp_path / "home"
    cli = Cli(home)
    cli("init")
    write_config(Home(home), CONFIG.replace("start_stagger_s = 0\n",
                                            f"start_stagger_s = {STAGGER_S}\n")
                 + "".join(PERSONALITY.format(name=n) for n in NOVAS))
    for name in NOVAS:
        _prepare(cli, name, "default", 1, tmp_path)
    reset = int(time.time()) + LEAD_S
    hear_the_limit(Home(home), reset)
    standin = StandIn(used_up_account(reset)).start()
    runs = {}
    try:
        runs = {name: _start(cli, name, claude_bin, tmp_path, standin.url) for name in NOVAS}
        deadline = time.time() + LEAD_S + 90
        while ended_sessions(cli) < len(NOVAS) and time.time() < deadline:
            time.sleep(0.5)
    finally:
        for run in runs.values():
            _stop(run)
        standin.stop()
    starts = [at - reset for (at,) in rows(
        cli, "SELECT started_at FROM sessions ORDER BY started_at")]
    requests = [r for r in standin.policy.requests if r.client != "before"]
    firsts: dict[str, float] = {}
    for r in requests:
        firsts.setdefault(r.client, r.time - reset)
    print(f"session starts after the reset (s): {[round(s, 2) for s in starts]}")
    print(f"first request of each session after the reset (s): "
          f"{sorted(round(f, 2) for f in firsts.values())}")
    print(f"requests {len(requests)}, refused {sum(not r.accepted for r in requests)}")
    assert sum(not r.accepted for r in requests) == 0, requests
    assert len(starts) == len(NOVAS), starts
    assert starts[0] >= MARGIN_S
    assert min(b - a for a, b in zip(starts, starts[1:])) >= STAGGER_S, starts
    # one by one, within the margin plus four staggers (plus a loaded machine's second)
    assert starts[-1] <= MARGIN_S + 4 * STAGGER_S + 1, starts
    assert rows(cli, "SELECT count(*) FROM work_items WHERE status = 'done'")[0][0] == 5
