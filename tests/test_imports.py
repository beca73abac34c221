"""The hot paths stay light: no SQLAlchemy, Alembic or redis-py at run time."""

import json
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "alembic", "redis")

PROBE = """
import json, sys
from torchsm.cli import run
code = run(sys.argv[1:])
sys.stdout.flush()
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
""" % (HEAVY,)


def loaded_modules(cli, *args):
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, env=cli.env())
    return json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [
    ["transition", "torch", "cool", "--for", "5"],
    ["transition", "torch", "work", "--force"],
    ["status"],
    ["status", "torch", "--json"],
])
def test_hot_commands_do_not_import_heavy_modules(cli, args):
    cli("nova", "add", "torch")
    outcome = loaded_modules(cli, *args)
    assert outcome == {"code": 0, "heavy": []}


def test_refusals_stay_light_too(cli):
    cli("nova", "add", "torch")
    cli("transition", "torch", "cool", "--for", "60")
    assert loaded_modules(cli, "transition", "torch", "work") == {"code": 1, "heavy": []}


HOOK_PROBE = """
import json, sys
from torchsm.cli import run
code = run(sys.argv[1:])
sys.stdout.flush()
loaded = sorted({m.split('.')[0] for m in sys.modules} & {"sqlalchemy", "alembic", "redis",
                                                          "click", "transitions"})
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


@pytest.mark.parametrize("event, allowed", [
    ("pre-tool-use", []), ("post-tool-use", []), ("notification", []),
    ("user-prompt-submit", []), ("session-end", []),
    # a continuation claims an item: still no state machine, click or heavy modules
    ("stop", []),
])
def test_hook_path_stays_light(cli, event, allowed):
    cli("nova", "add", "torch")
    cli("queue", "add", "something to continue with")
    proc = subprocess.run([sys.executable, "-c", HOOK_PROBE, "hook", event, "--nova", "torch"],
                          input='{"session_id": "s1", "hook_event_name": "x"}',
                          capture_output=True, text=True, env=cli.env())
    outcome = json.loads(proc.stderr.strip().splitlines()[-1])
    assert outcome == {"code": 0, "loaded": allowed}
    if event == "stop":
        assert json.loads(proc.stdout)["decision"] == "block"


def test_transition_skips_click(cli):
    cli("nova", "add", "torch")
    proc = subprocess.run([sys.executable, "-c", HOOK_PROBE, "transition", "torch", "cool"],
                          capture_output=True, text=True, env=cli.env())
    outcome = json.loads(proc.stderr.strip().splitlines()[-1])
    assert outcome == {"code": 0, "loaded": ["transitions"]}  # the state machine, nothing else
