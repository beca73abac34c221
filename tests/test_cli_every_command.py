"""Every command of click's tree, generated rather than listed by hand: it answers `--help`
with a usage line and a description, and a bad option or argument ends in one error line
with the documented exit code and no traceback.

Help and bad arguments run in this process through `torchsm.cli.execute`, the function the
console script calls (the same parsing and error formatting, without a new interpreter per
case); each command's bad option runs the real console script in a subprocess, so the
installed entry point's error path is exercised once per command.
"""

from __future__ import annotations

import click
import pytest

from helpers import Cli
from torchsm.cli import execute
from torchsm.cli.app import cli as torchsm_group
from torchsm.config import Home

# What the hand-written help lists covered before this test replaced them: the walk must
# find at least these, so an empty or broken walk cannot pass.
KNOWN_COMMANDS = {
    "init", "db", "db upgrade", "db current", "nova", "nova add", "nova list", "nova show",
    "nova remove", "nova set", "usage", "status", "transition", "history", "hooks",
    "hooks scan", "hooks install", "queue", "queue add", "queue list", "queue claim",
    "queue done", "queue fail", "queue import", "wake", "wake classify", "wake list",
    "dream", "dream run", "dream list", "dream show", "memory", "memory add", "memory list",
    "memory show", "memory forget", "mirror", "mirror status", "mirror flush", "message",
    "message send", "message list",
}
# Arguments whose any text is valid (a task's, a message's): no bad value exists.
ANY_TEXT = {"queue add", "wake classify"}
# What a command needs besides its arguments to reach its arguments' check.
NEEDS = {"nova set": ["--account", "default"], "run": ["--", "true"],
         "service install": ["--", "true"], "hook": ["--nova", "torch"]}


def walk(group: click.Group, path: tuple[str, ...] = ()):
    """(path, command) for every command and group under `group`, depth first."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from walk(command, (*path, name))


TREE = dict(walk(torchsm_group))
COMMANDS = sorted(" ".join(path) for path in TREE)


def arguments(words: str) -> list[click.Argument]:
    return [p for p in TREE[tuple(words.split())].params if isinstance(p, click.Argument)]


def given(argument: click.Argument, value: str) -> str:
    """`value`, or a word the argument takes when it takes only some (a choice)."""
    return argument.type.choices[0] if isinstance(argument.type, click.Choice) else value


def fixed_arity(words: str) -> bool:
    """Takes arguments, none of them variadic: one more is a usage error."""
    found = arguments(words)
    return bool(found) and all(a.nargs == 1 for a in found)


def checkable(words: str) -> bool:
    """Has a required argument that can be given a bad value."""
    return words not in ANY_TEXT and any(a.required for a in arguments(words))


def usage_exit(words: str) -> int:
    """The documented exit code of a usage error: 2, but 1 for `hook` (Claude Code reads
    2 as "block")."""
    return 1 if words.split()[0] == "hook" else 2


def call(capsys, *argv: str) -> tuple[int, str, str]:
    code = execute(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_usage_error(code: int, out: str, err: str, words: str, complaint: str) -> None:
    """Exit `usage_exit`, nothing on stdout, and click's usage text ending in exactly one
    `Error: ...` line that names the complaint."""
    lines = err.splitlines()
    assert (code, out) == (usage_exit(words), ""), (code, out, err)
    assert lines[0].startswith(f"Usage: torchsm {words}"), err
    assert lines[-1].startswith("Error: ") and complaint in lines[-1], err
    assert sum(line.startswith("Error") for line in lines) == 1 and "Traceback" not in err


def test_the_walk_finds_every_known_command_and_nothing_empty():
    assert KNOWN_COMMANDS <= set(COMMANDS)
    assert all(command is not None for command in TREE.values())
    assert set(NEEDS) | ANY_TEXT <= set(COMMANDS)


@pytest.mark.parametrize("words", COMMANDS)
def test_every_command_has_help(capsys, words):
    code, out, err = call(capsys, *words.split(), "--help")
    description = TREE[tuple(words.split())].help
    assert (code, err) == (0, "")
    assert out.startswith(f"Usage: torchsm {words} ")
    assert description and " ".join(description.split()[:8]) in " ".join(out.split())
    assert "--home" in out and "--json" in out and len(out.splitlines()) > 4


@pytest.mark.parametrize("words", COMMANDS)
def test_a_bad_option_is_one_usage_error(bare_cli: Cli, words):
    result = bare_cli(*words.split(), "--no-such-option", check=False)
    assert_usage_error(result.code, result.out, result.err, words,
                       "No such option '--no-such-option'")


@pytest.mark.parametrize("words", [w for w in COMMANDS if fixed_arity(w)])
def test_an_argument_too_many_is_one_usage_error(capsys, bare_cli: Cli, words):
    values = [given(a, "x") for a in arguments(words)]
    code, out, err = call(capsys, "--home", str(bare_cli.home), *words.split(), *values,
                          "surplus", *NEEDS.get(words, []))
    assert_usage_error(code, out, err, words, "Got unexpected extra argument (surplus)")


@pytest.fixture(scope="module")
def quiet_home(tmp_path_factory) -> Home:
    """One initialised home for every bad argument: each is refused, none writes."""
    from torchsm.storage import database

    home = Home(tmp_path_factory.mktemp("every-command") / "home")
    database.initialise(home)
    return home


@pytest.mark.parametrize("words", [w for w in COMMANDS if checkable(w)])
def test_a_bad_argument_is_one_error_line(capsys, monkeypatch, tmp_path, quiet_home, words):
    monkeypatch.setenv("TORCHSM_REDIS_URL", "off")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # `service install`
    monkeypatch.setenv("TORCHSM_SYSTEMCTL", "off")
    bad = [given(a, "Bad Name") for a in arguments(words) if a.required]
    code, out, err = call(capsys, "--home", str(quiet_home.path), *words.split(), *bad,
                          *NEEDS.get(words, []))
    assert (code, out) == (1, ""), (code, out, err)
    assert err.startswith("torchsm: error: ") and err.count("\n") == 1, err
    assert "Bad Name" in err
