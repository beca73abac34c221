"""Issue 22 point 2: a Nova keeps its own agent command (`nova add|set NAME --command`),
stored as a JSON list of words in novas.command; `nova show` shows it."""

from __future__ import annotations

import json
import sqlite3

import pytest

from helpers import Cli


def stored(cli: Cli, name: str):
    conn = sqlite3.connect(cli.home / "torchsm.db")
    try:
        return conn.execute("SELECT command FROM novas WHERE name = ?", (name,)).fetchone()[0]
    finally:
        conn.close()


def test_add_keeps_the_command_split_as_a_shell_would(cli: Cli):
    cli("nova", "add", "torch", "--command", "claude -c -p {prompt} --append 'two words'")
    assert json.loads(stored(cli, "torch")) == ["claude", "-c", "-p", "{prompt}", "--append",
                                                "two words"]
    shown = cli("nova", "show", "torch", "--json").json()
    assert shown["command"] == ["claude", "-c", "-p", "{prompt}", "--append", "two words"]
    assert "command: claude -c -p '{prompt}' --append 'two words'" in cli("nova", "show",
                                                                          "torch").out


def test_set_replaces_it_and_an_empty_text_clears_it(cli: Cli, torch: str):
    assert cli("nova", "show", "torch", "--json").json()["command"] is None
    shown = cli("nova", "set", "torch", "--command", "python3 agent.py", "--json").json()
    assert shown["command"] == ["python3", "agent.py"]
    cli("nova", "set", "torch", "--command", "")
    assert stored(cli, "torch") is None
    assert "command: -" in cli("nova", "show", "torch").out


def test_set_may_change_the_account_and_the_command_at_once(cli: Cli, torch: str):
    shown = cli("nova", "set", "torch", "--account", "work", "--command", "true",
                "--json").json()
    assert (shown["account"], shown["command"]) == ("work", ["true"])


@pytest.mark.parametrize("text, message", [
    ("   ", "the command '   ' names no program: give one, or '' to keep none"),
    ("''", "the command \"''\" names no program: give one, or '' to keep none"),
    ("claude 'unclosed", "cannot split the command \"claude 'unclosed\": No closing "
                         "quotation"),
])
def test_a_command_with_nothing_to_run_is_refused(cli: Cli, torch: str, text, message):
    result = cli.fails("nova", "set", "torch", "--command", text)
    assert result.err == f"torchsm: error: {message}\n"
    assert stored(cli, "torch") is None


def test_a_prompt_inside_an_argument_is_refused_as_run_refuses_it(cli: Cli, torch: str):
    result = cli.fails("nova", "set", "torch", "--command", "sh -c 'echo {prompt}'")
    assert result.err.startswith("torchsm: error: {prompt} must be a whole argument")
    assert stored(cli, "torch") is None


def test_set_with_nothing_to_set_is_a_usage_error(cli: Cli, torch: str):
    result = cli.fails("nova", "set", "torch", code=2)
    assert "nothing to set: give --account ACCOUNT or --command 'COMMAND'" in result.err


def test_the_command_of_a_missing_nova(cli: Cli):
    result = cli.fails("nova", "set", "ghost", "--command", "true")
    assert result.err == "torchsm: error: no Nova named 'ghost'\n"
