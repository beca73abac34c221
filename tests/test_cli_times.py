"""Times in text output: local, with how long ago or until; `--json` and TORCHSM_UTC=1
keep ISO 8601 UTC."""

from __future__ import annotations

import re
import sys

LOCAL_AGO = re.compile(r"\b\d\d:\d\d:\d\d \((now|\d+ s ago|\d+ min ago)\)")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def test_status_shows_since_as_a_local_time_and_its_age(torch_cli):
    text = torch_cli("status", TORCHSM_UTC="").out
    assert LOCAL_AGO.search(text.splitlines()[1]) and not ISO.search(text)


def test_torchsm_utc_keeps_iso_in_text_and_json_is_iso(torch_cli):
    assert ISO.search(torch_cli("status", TORCHSM_UTC="1").out)
    assert ISO.fullmatch(torch_cli("status", "--json", TORCHSM_UTC="").json()[0]["since"])


def test_status_shows_until_as_how_long_until(torch_cli):
    torch_cli("transition", "torch", "cool", "--for", "600")
    text = torch_cli("status", TORCHSM_UTC="").out
    assert re.search(r"in (9|10) min \(\d\d:\d\d:\d\d\)", text)


def test_history_and_queue_list_show_local_times(torch_cli):
    torch_cli("transition", "torch", "cool", "--for", "600")
    torch_cli("queue", "add", "a task", "--nova", "torch")
    for command in (["history", "torch"], ["queue", "list"]):
        text = torch_cli(*command, TORCHSM_UTC="").out
        assert LOCAL_AGO.search(text) and not ISO.search(text), (command, text)


def test_sessions_show_their_start_as_a_local_time(fast_torch):
    fast_torch("queue", "add", "a task", "--nova", "torch")
    fast_torch("run", "torch", "--until-idle", "--", sys.executable, "-m",
               "torchsm.agent.example", "{prompt}")
    text = fast_torch("sessions", TORCHSM_UTC="").out
    assert LOCAL_AGO.search(text.splitlines()[1]) and not ISO.search(text), text
    assert ISO.search(fast_torch("sessions").out)  # the tests' TORCHSM_UTC=1
