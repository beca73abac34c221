"""Shell completion (issue 22 point 6): click's `_TORCHSM_COMPLETE` protocol through the
real console script, as bash calls it. Nova names complete from the home on the command
line (`--home`), else $TORCHSM_HOME; an uninitialised home completes nothing, silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Cli


def complete(cli: Cli, line: str, **env: str) -> list[str]:
    """What bash would offer for the last word of `line` (a trailing space: a new word)."""
    words = line.split(" ")
    result = cli(_TORCHSM_COMPLETE="bash_complete", COMP_WORDS=line,
                 COMP_CWORD=str(len(words) - 1), **env)
    assert result.err == ""
    return [item.split(",", 1)[1] for item in result.out.splitlines() if item]


@pytest.mark.parametrize("line, expected", [
    ("torchsm status t", ["torch"]),
    ("torchsm status ", ["echo", "helix", "torch"]),
    ("torchsm history h", ["helix"]),
    ("torchsm up torch e", ["echo"]),
    ("torchsm queue list --nova ", ["echo", "helix", "torch"]),
    ("torchsm hooks install --nova e", ["echo"]),
    ("torchsm service status t", ["torch"]),
    ("torchsm nova show t", ["torch"]),
])
def test_nova_names_complete_from_the_home(crew: Cli, line, expected):
    assert complete(crew, line) == expected


def test_a_new_novas_name_is_not_completed(crew: Cli):
    assert complete(crew, "torchsm nova add t") == []


def test_transition_completes_the_novas_then_the_events(crew: Cli):
    """`transition` is parsed by hand before click (torchsm.cli.fast) when written plainly:
    a completion request still reaches click."""
    assert complete(crew, "torchsm transition t") == ["torch"]
    assert complete(crew, "torchsm transition torch ") == [
        "work", "cool", "meditate", "dream", "compact"]
    assert complete(crew, "torchsm transition torch c") == ["cool", "compact"]


def test_the_home_on_the_command_line_wins(crew: Cli, tmp_path: Path):
    elsewhere = Cli(tmp_path / "elsewhere")  # its TORCHSM_HOME: not initialised
    assert complete(elsewhere, "torchsm status ") == []
    assert complete(elsewhere, f"torchsm --home {crew.home} status ") == [
        "echo", "helix", "torch"]
    assert complete(elsewhere, f"torchsm status --home {crew.home} h") == ["helix"]
    assert complete(crew, f"torchsm --home {tmp_path / 'none'} status ") == []


def test_a_broken_home_completes_nothing_and_says_nothing(crew: Cli):
    (crew.home / "torchsm.db").write_bytes(b"not a database at all" * 100)
    assert complete(crew, "torchsm status ") == []


def test_commands_still_complete(crew: Cli):
    assert "transition" in complete(crew, "torchsm tr")
