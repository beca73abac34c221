"""Colour on a terminal: state names, error and warning prefixes; never through a pipe,
with NO_COLOR or TERM=dumb, in --json, or on a hook's output."""

from __future__ import annotations

import re

import pytest

from torchsm.cli.colour import paint, visible_width, wants_colour

GREEN = "\x1b[32m"
RED = "\x1b[31m"
RESET = "\x1b[0m"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("tty, environ, expected", [
    (True, {}, True),
    (False, {}, False),  # a pipe, as in every other test
    (True, {"NO_COLOR": "1"}, False),
    (True, {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
    (True, {"TERM": "dumb"}, False),
    (False, {"FORCE_COLOR": "1"}, True),
    (False, {"CLICOLOR_FORCE": "1"}, True),
    (False, {"FORCE_COLOR": "0"}, False),
    (False, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),  # the user's "no" wins
])
def test_when_colour_is_wanted(tty, environ, expected):
    assert wants_colour(tty, environ) is expected


def test_paint_and_the_width_a_terminal_shows():
    assert paint("working", "green", on=True) == f"{GREEN}working{RESET}"
    assert paint("working", "green", on=False) == "working"
    assert paint("working", None, on=True) == "working"
    assert visible_width(paint("working", "green", on=True)) == 7


def test_status_colours_the_state_and_keeps_the_columns(torch_cli):
    plain = torch_cli("status").out
    coloured = torch_cli("status", FORCE_COLOR="1").out
    assert f"{GREEN}working{RESET}" in coloured
    assert ANSI.sub("", coloured) == plain


def test_ps_colours_the_state(torch_cli):
    coloured = torch_cli("ps", FORCE_COLOR="1").out
    assert f"{GREEN}working{RESET}" in coloured
    assert ANSI.sub("", coloured) == torch_cli("ps").out


def test_no_color_and_json_are_byte_for_byte_plain(torch_cli):
    assert torch_cli("status", FORCE_COLOR="1", NO_COLOR="1").out == torch_cli("status").out
    as_json = torch_cli("status", "--json", FORCE_COLOR="1")
    assert as_json.json()[0]["state"] == "working" and "\x1b" not in as_json.out


def test_an_error_prefix_is_red(torch_cli):
    failed = torch_cli.fails("nova", "show", "nobody", FORCE_COLOR="1")
    assert failed.err.startswith(f"{RED}torchsm: error:{RESET} ")
    assert torch_cli.fails("nova", "show", "nobody").err.startswith("torchsm: error: ")


def test_text_from_others_cannot_bring_its_own_colour(torch_cli):
    torch_cli("queue", "add", f"{RED}looks like an error", "--nova", "torch")
    listed = torch_cli("queue", "list", FORCE_COLOR="1").out
    assert "\\x1b[31mlooks like an error" in listed
    assert RED not in listed


def test_a_hooks_output_is_never_coloured(torch_cli):
    ran = torch_cli("hook", "stop", "--nova", "nobody", input="{}", check=False,
                    FORCE_COLOR="1")
    assert ran.err and "\x1b" not in ran.err + ran.out
