"""`torchsm status` REASON is the current reason: why the Nova is in its state now and
what it waits for, not the reason of its last transition.

Issue 22: after a dream a working Nova showed "dream 1 done" as its reason, as if it
were what it was doing."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from helpers import FAST, T0, torchsm_executable, write_config
from torchsm import novas
from torchsm.clock import format_time
from torchsm.observe.nova_status import current_reason
from torchsm.storage import store


def status_row(cli) -> dict:
    return cli("status", "torch", "--json").json()[0]


def reason_column(cli) -> str:
    header, row = cli("status", "torch").out.splitlines()[:2]
    return row[header.index("REASON"):]


def test_after_a_dream_an_unsupervised_nova_says_no_supervisor_runs(torch_cli):
    torch_cli("dream", "torch")
    row = status_row(torch_cli)
    assert (row["state"], row["reason"]) == ("working", "dream 1 done")  # the history's
    assert row["why"] == ("working; no supervisor runs for torch "
                          "(`torchsm run torch -- COMMAND` starts one)")
    assert reason_column(torch_cli) == row["why"]


def test_after_a_dream_a_supervised_idle_nova_says_what_its_supervisor_waits_for(
        torch_cli, home):
    write_config(home, FAST.replace("0.2", "600"))
    torch_cli("dream", "torch")
    run = subprocess.Popen([*torchsm_executable(), "run", "torch", "--", "true"],
                           env=torch_cli.env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while status_row(torch_cli)["plan"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        row = status_row(torch_cli)
        column = reason_column(torch_cli)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(15)
    assert row["why"] == "idle: no work; looking again in 600s" == row["plan"]["why"]
    assert column == row["why"] and "dream 1 done" not in column


def test_a_cooling_nova_says_until_when_and_why(torch_cli):
    torch_cli("transition", "torch", "cool", "--for", "600", "--reason", "too hot")
    row = status_row(torch_cli)
    assert row["why"] == f"cooling until {row['until']} (too hot)"


# --- the pure rule ------------------------------------------------------------------------

def nova(**changes) -> store.NovaRow:
    row = store.NovaRow(1, "torch", "torch", "working", T0 - 100, None, "dream 1 done", 0,
                        None, T0 - 7200)
    return row._replace(**changes)


RUNNING = {"pid": os.getpid(), "state": "running", "why": "session 4 running (item 2: x)"}
RHYTHM = {"pid": os.getpid(), "state": "waiting", "why": "rhythm: torch (sustained) rests 25s",
          "next_start": format_time(T0 + 20)}
AT = format_time(T0 + 600)

CASES = [
    (nova(), None, "working; no supervisor runs for torch (`torchsm run torch -- COMMAND` "
                   "starts one)"),
    (nova(), RUNNING, "session 4 running (item 2: x)"),
    (nova(), RHYTHM, f"next start at {format_time(T0 + 20)}: rhythm: torch (sustained) "
                     "rests 25s"),
    (nova(state="cooling", until=T0 + 600, reason="backoff after a failure"), None,
     f"cooling until {AT} (backoff after a failure)"),
    (nova(state="cooling", until=T0 + 600, reason="five_hour at 97%",
          limit_hold="five_hour at 97%"), RHYTHM,
     f"held by account default's usage limit until {AT} (five_hour at 97%)"),
    (nova(state="meditating", until=T0 + 600, reason="billing_error",
          limit_hold=novas.ACCOUNT_HOLD + "billing_error"), None,
     "held: `torchsm transition torch work` resumes it (billing_error)"),
    (nova(state="meditating", until=T0 - 5, reason="3 cooldowns in an hour"), None,
     f"meditating: its wait ended at {format_time(T0 - 5)} (3 cooldowns in an hour); "
     "no supervisor runs for torch to resume it"),
    (nova(state="cooling", until=T0 - 5, reason="five_hour", limit_hold="five_hour"), None,
     "held for a usage limit (five_hour); auto_resume is off: `torchsm transition torch "
     "work` resumes it"),
    (nova(state="dreaming", reason="dream 3"), None, "dreaming: dream 3"),
    (nova(state="compacting", reason="pre-compact (auto)"), RUNNING,
     "compacting: pre-compact (auto)"),
]


@pytest.mark.parametrize("row,plan,expected", CASES)
def test_current_reason(row, plan, expected):
    auto_resume = row.reason != "five_hour"  # the one case with auto_resume off
    assert current_reason(row, plan, auto_resume, T0) == expected
