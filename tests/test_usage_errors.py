"""A word the command line cannot take is a usage error (exit 2, click's usage, hint and
`Error:` lines), as the README promises: a bad duration, priority, status or event. What is stored stays as it was. A value the command line can take
but the home refuses (no Nova of that name, a transition not allowed now) stays exit 1."""

import pytest

from helpers import Cli

BAD_WORDS = [
    (["metrics", "--since", "5x"], "'--since': bad duration '5x'"),
    (["usage", "--since", "0h"], "'--since': bad duration '0h'"),
    (["dashboard", "--out", "-", "--since", "3651d"], "'--since': bad duration '3651d'"),
    (["queue", "add", "tidy", "--priority", "urgent"], "'--priority' / '-p': unknown priority 'urgent'"),
    (["queue", "list", "--status", "open"], "'--status' / '-s': unknown status 'open'"),
    (["transition", "torch", "sleep"], "'EVENT': 'sleep' is not one of"),
    (["transition", "torch", "sleep", "--reason", "r"], "'EVENT': 'sleep' is not one of"),
]


@pytest.mark.parametrize("args, words", BAD_WORDS, ids=lambda a: " ".join(a)
                         if isinstance(a, list) else None)
def test_a_word_the_command_line_cannot_take_exits_2(torch_cli: Cli, args, words):
    before = torch_cli("--json", "status").out, torch_cli("--json", "queue", "list").out
    result = torch_cli.fails(*args, code=2)
    assert result.out == ""
    assert result.err.startswith("Usage: torchsm "), result.err
    assert f"Error: Invalid value for {words}" in result.err or f"Error: {words}" in result.err
    assert "Traceback" not in result.err
    assert (torch_cli("--json", "status").out, torch_cli("--json", "queue", "list").out) == before


def test_what_the_home_refuses_stays_exit_1(torch_cli: Cli):
    assert torch_cli.fails("transition", "nobody", "work").err.startswith("torchsm: error: ")
    torch_cli("transition", "torch", "cool", "--for", "600")
    refused = torch_cli.fails("transition", "torch", "work")
    assert refused.err.startswith("torchsm: error: cannot work torch: cooling until ")
