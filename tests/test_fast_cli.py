"""The click-free parser of the hot commands: plain calls are taken, anything else is
left to click (which explains it)."""

import json
import subprocess
import sys

import pytest

from torchsm.cli.fast import PlainCall, parse_plain_call

TAKEN = [
    ("hook stop --nova torch", PlainCall("hook", ["stop"], {"nova": "torch"})),
    ("--home /h hook stop --nova=torch", PlainCall("hook", ["stop"], {"home": "/h", "nova": "torch"})),
    ("hook pre-tool-use --nova torch --home /h", PlainCall("hook", ["pre-tool-use"],
                                                           {"nova": "torch", "home": "/h"})),
    ("transition torch cool", PlainCall("transition", ["torch", "cool"], {})),
    ("--json transition torch cool --for 30 -r why --force",
     PlainCall("transition", ["torch", "cool"], {"json": True, "for": "30", "reason": "why",
                                                 "force": True})),
    ("transition torch work --reason=a b", None),  # three positionals
]
LEFT_TO_CLICK = [
    "hook --help", "hook stop --nova", "hook stop --nova a --nova b", "hook stop -n torch",
    "hook stop --nova torch --bogus", "hook", "transition torch", "transition torch cool --for x",
"transition torch cool --force=yes", "status",
    "--version", "", "queue add hook", "transition torch cool --json --json",
]


@pytest.mark.parametrize("argv, expected", TAKEN)
def test_plain_calls_are_taken(argv, expected):
    assert parse_plain_call(argv.split()) == expected


@pytest.mark.parametrize("argv", LEFT_TO_CLICK)
def test_everything_else_goes_to_click(argv):
    assert parse_plain_call(argv.split()) is None


def through_click(cli, *args):
    code = "import sys; from torchsm.cli.app import run_click; sys.exit(run_click(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=cli.env())
    return proc.returncode, proc.stdout, proc.stderr


def test_transition_fast_path_behaves_like_click(cli):
    cli("nova", "add", "torch")
    fast = cli("transition", "torch", "cool", "--for", "30", "--json").json()
    code, out, _ = through_click(cli, "transition", "torch", "cool", "--for", "30", "--json")
    assert code == 0 and set(json.loads(out)) == set(fast)
    assert fast["from"] == "working" and json.loads(out)["from"] == "cooling"
    for args in (["transition", "torch", "dream"], ["transition", "ghost", "cool"],
                 ["transition", "torch", "cool", "--for", "-5"]):
        result = cli(*args, check=False)
        assert (result.code, result.out, result.err) == through_click(cli, *args)
