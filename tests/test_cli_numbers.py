"""Numbers on the command line: every numeric option refuses what is not finite or out of
its range (a usage error, exit 2), an id beyond what SQLite can hold is simply not there
(exit 1), and what is stored stays as it was. The options are found by walking click's
command tree, so a new one is covered without a hand list."""

import json
import sqlite3

import click
import pytest

from helpers import Cli, write_config
from torchsm.config import Home

HOSTILE = ["nan", "inf", "-inf", "99999999999999999999"]
# checked by the library behind the hot path (torchsm.novas.transition), exit 1 with its
# own line: tests/test_odd_files.py::test_transition_for_must_be_finite_and_in_range
LIBRARY_CHECKED = {("transition", "--for")}


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        yield (*path, name), command


def numeric_options() -> list[tuple[tuple[str, ...], click.Command, click.Option]]:
    from torchsm.cli.app import cli

    return [(path, command, param) for path, command in _commands(cli)
            for param in command.params
            if isinstance(param, click.Option) and not param.is_flag
            and isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType))]


def invocation(path, command: click.Command, option: click.Option, value: str) -> list[str]:
    """`path`, its required arguments and options as `torch`, and `option value`."""
    args = [*path]
    for param in command.params:
        if isinstance(param, click.Argument) and param.required and param.nargs == 1:
            args.append("torch")
        elif isinstance(param, click.Option) and param.required and param is not option:
            args += [param.opts[0], "torch"]
    args += [option.opts[0], value]
    if any(isinstance(p, click.Argument) and p.nargs == -1 for p in command.params):
        args += ["--", "true"]
    return args


OPTIONS = [(path, command, option) for path, command, option in numeric_options()
           if (" ".join(path), option.opts[0]) not in LIBRARY_CHECKED]


def test_the_walk_finds_the_numeric_options():
    found = {(" ".join(path), option.opts[0]) for path, _, option in OPTIONS}
    assert {("history", "--limit"), ("queue claim", "--lease"), ("status", "--interval"),
            ("queue add", "--max-attempts"), ("run", "--max-sessions"),
            ("dream list", "--limit"), ("memory list", "--limit"),
            ("message list", "--limit"), ("serve", "--port")} <= found


@pytest.fixture
def stocked(cli: Cli) -> Cli:
    cli("nova", "add", "torch")
    cli("queue", "add", "the one item")
    return cli


def dump(cli: Cli) -> list[str]:
    conn = sqlite3.connect(cli.home / "torchsm.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.mark.parametrize("path, command, option", OPTIONS,
                         ids=[f"{' '.join(p)} {o.opts[0]}" for p, _, o in OPTIONS])
def test_a_number_that_is_not_finite_or_too_large_is_a_usage_error(stocked, path, command,
                                                                   option):
    before = dump(stocked)
    for value in HOSTILE:
        result = stocked.fails(*invocation(path, command, option, value), code=2, timeout=20)
        assert f"Invalid value for '{option.opts[0]}'" in result.err, (value, result.err)
        assert "internal error" not in result.err and "Traceback" not in result.err
    assert dump(stocked) == before


ID_COMMANDS = [(["queue", "show"], "no work item"), (["queue", "done"], "no work item"),
               (["queue", "fail"], "no work item"), (["memory", "show"], "no memory"),
               (["memory", "forget"], "no memory"), (["dream", "show"], "no dream")]


@pytest.mark.parametrize("args, message", ID_COMMANDS,
                         ids=[" ".join(args) for args, _ in ID_COMMANDS])
def test_an_id_beyond_sqlite_integers_is_no_such_thing(stocked, args, message):
    before = dump(stocked)
    result = stocked.fails(*args, "99999999999999999999")
    assert result.err == f"torchsm: error: {message} 99999999999999999999\n"
    assert dump(stocked) == before


@pytest.mark.parametrize("args", [["queue", "done"], ["memory", "forget"], ["dream", "show"]],
                         ids=" ".join)
def test_an_id_in_other_digits_is_not_an_id(stocked, args):
    result = stocked.fails(*args, "١٢")  # Arabic-Indic digits: str.isdigit says yes
    assert result.err.startswith("torchsm: error: invalid ") and "'١٢'" in result.err


@pytest.mark.parametrize("command", [["usage"], ["metrics"], ["dashboard", "--out", "-"]],
                         ids=" ".join)
@pytest.mark.parametrize("since", ["99999999999999999999d", "1e400s", "3651d"])
def test_a_since_beyond_ten_years_is_a_bad_duration(stocked, command, since):
    result = stocked.fails(*command, "--since", since, code=2)  # a usage error
    assert result.err.splitlines()[-1].startswith(
        f"Error: Invalid value for '--since': bad duration '{since}': ")
    assert result.out == ""


def test_an_import_line_with_too_many_attempts_is_one_malformed_line(stocked, tmp_path):
    source = tmp_path / "items.jsonl"
    source.write_text('{"text": "huge", "max_attempts": 99999999999999999999}\n'
                      '{"text": "fine", "max_attempts": 2}\n')
    result = stocked("queue", "import", str(source), "--json")
    assert result.json()["added"] == 1
    assert f"{source}:1: " in result.err and "max_attempts" in result.err
    texts = [i["text"] for i in stocked("queue", "list", "--json").json()]
    assert texts == ["the one item", "fine"]


# --- what an older torchsm may have stored: readers stay whole ---------------------------

def strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def absurd(stocked: Cli) -> Cli:
    """Two finished sessions reporting 2**62 turns and tokens and a cost of 1e308 each:
    their sums overflow SQLite's integers and a float."""
    conn = sqlite3.connect(stocked.home / "torchsm.db")
    with conn:
        for _ in range(2):
            conn.execute(
                "INSERT INTO sessions (nova_id, started_at, ended_at, kind, prompt, outcome,"
                " num_turns, cost_usd, input_tokens, output_tokens) SELECT id,"
                " unixepoch('now') - 600, unixepoch('now') - 300, 'item', 'p', 'ok', ?, ?, ?, ?"
                " FROM novas WHERE name = 'torch'", (2**62, 1e308, 2**62, 2**62))
    conn.close()
    return stocked


def test_a_dream_over_absurd_sessions_still_dreams(absurd):
    view = absurd("dream", "torch", "--json").json()
    assert view["status"] == "done"
    strict_json(absurd("dream", "show", str(view["id"]), "--json").out)


@pytest.mark.parametrize("command", [["usage", "--json"], ["metrics", "--json"]],
                         ids=" ".join)
def test_json_output_never_says_infinity(absurd, command):
    strict_json(absurd(*command).out)


def test_the_dashboard_draws_no_nan(absurd):
    page = absurd("dashboard", "--out", "-").out
    assert "nan" not in page.replace("nothing in the window", "") and "inf\"" not in page


def test_an_absurd_stored_cost_does_not_break_the_cost_budget(absurd):
    write_config(Home(absurd.home), 'redis_url = "off"\n[supervisor]\n'
                                    'max_cost_usd_per_day = 10\n')
    result = absurd("run", "torch", "--once", "--", "true", timeout=60)
    assert "session 3 ok" in result.out, result.out
