"""The hot paths stay light: no SQLAlchemy, Alembic or redis-py at run time."""

import json

import pytest

from helpers import HEAVY, loaded_modules

def probe(cli, *args, **kw) -> dict:
    outcome = loaded_modules(cli, *args, **kw)
    outcome.pop("out")
    return outcome


@pytest.mark.parametrize("args", [
    ["transition", "torch", "cool", "--for", "5"],
    ["transition", "torch", "work", "--force"],
    ["status"],
    ["status", "torch", "--json"],
])
def test_hot_commands_do_not_import_heavy_modules(cli, args):
    cli("nova", "add", "torch")
    outcome = probe(cli, *args)
    assert outcome == {"code": 0, "heavy": []}


def test_refusals_stay_light_too(cli):
    cli("nova", "add", "torch")
    cli("transition", "torch", "cool", "--for", "60")
    assert probe(cli, "transition", "torch", "work") == {"code": 1, "heavy": []}


WATCHED = HEAVY + ("click", "transitions")


@pytest.mark.parametrize("event, allowed", [
    ("pre-tool-use", []), ("post-tool-use", []), ("notification", []),
    ("user-prompt-submit", []), ("session-end", []),
    # a continuation claims an item: still no state machine, click or heavy modules
    ("stop", []),
])
def test_hook_path_stays_light(cli, event, allowed):
    cli("nova", "add", "torch")
    cli("queue", "add", "something to continue with")
    outcome = loaded_modules(cli, "hook", event, "--nova", "torch", watch=WATCHED,
                             input='{"session_id": "s1", "hook_event_name": "x"}')
    assert (outcome["code"], outcome["heavy"]) == (0, allowed)
    if event == "stop":
        assert json.loads(outcome["out"])["decision"] == "block"


def test_a_stop_that_finishes_an_item_and_remembers_it_stays_light(cli):
    cli("nova", "add", "torch")
    for text in ("the first", "the next"):
        cli("queue", "add", text)
    stop = '{"session_id": "s1", "last_assistant_message": "first one done"}'
    assert loaded_modules(cli, "hook", "stop", "--nova", "torch", watch=WATCHED,
                          input=stop)["heavy"] == []
    outcome = loaded_modules(cli, "hook", "stop", "--nova", "torch", watch=WATCHED,
                             input=stop)  # finishes the first: its episode is written
    assert (outcome["code"], outcome["heavy"]) == (0, [])
    from helpers import rows

    assert rows(cli, "SELECT kind, source FROM memories") == [("episode", "item:1")]


def test_transition_skips_click(cli):
    cli("nova", "add", "torch")
    outcome = probe(cli, "transition", "torch", "cool", watch=WATCHED)
    assert outcome == {"code": 0, "heavy": ["transitions"]}  # the state machine, nothing else


@pytest.mark.parametrize("args, stdin", [
    (["transition", "torch", "cool", "--for", "5"], None),
    (["status", "torch"], None),
    (["hook", "stop", "--nova", "torch"], '{"session_id": "s1"}'),
    (["hook", "pre-tool-use", "--nova", "torch"], '{"session_id": "s1"}'),
    (["metrics", "torch"], None),  # the text and JSON formats need no prometheus_client
])
def test_prometheus_client_stays_off_the_hook_and_transition_path(cli, args, stdin):
    cli("nova", "add", "torch")
    outcome = loaded_modules(cli, *args, watch=("prometheus_client",), input=stdin)
    assert (outcome["code"], outcome["heavy"]) == (0, [])


def test_the_prometheus_format_does_load_it(cli):
    # the probe above can fail: it sees prometheus_client when a command loads it
    cli("nova", "add", "torch")
    outcome = loaded_modules(cli, "metrics", "--format", "prometheus",
                             watch=("prometheus_client",))
    assert (outcome["code"], outcome["heavy"]) == (0, ["prometheus_client"])


# The dashboard and its server (issue 16) load only on `dashboard` and `serve`. Watched by
# full module name: `torchsm.observe.dashboard` is part of the `torchsm` package the hook needs.
DASHBOARD_MODULES = ("torchsm.observe.dashboard", "torchsm.observe.charts",
                     "torchsm.observe.http_server", "http.server", "prometheus_client")
_FULL_PROBE = """
import json, sys
from torchsm.cli import execute
code = execute(sys.argv[2:])
sys.stdout.flush()
watched = sys.argv[1].split(",")
loaded = sorted(w for w in watched if w in sys.modules)
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def modules_loaded_by(cli, *args, stdin: str | None = None,
                      watch: tuple[str, ...] = DASHBOARD_MODULES, **env: str) -> dict:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _FULL_PROBE, ",".join(watch),
                           *args], input=stdin, capture_output=True, text=True,
                          env=cli.env(**env), timeout=60)
    return json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args, stdin", [
    (["transition", "torch", "cool", "--for", "5"], None),
    (["status", "torch"], None),
    (["hook", "stop", "--nova", "torch"], '{"session_id": "s1"}'),
    (["hook", "pre-tool-use", "--nova", "torch"], '{"session_id": "s1"}'),
    (["hook", "session-start", "--nova", "torch"], '{"session_id": "s1", "source": "startup"}'),
])
def test_the_dashboard_stays_off_the_hook_and_transition_path(cli, args, stdin):
    cli("nova", "add", "torch")
    cli("queue", "add", "something to continue with")
    assert modules_loaded_by(cli, *args, stdin=stdin) == {"code": 0, "loaded": []}


def test_the_dashboard_does_load_them(cli, tmp_path):
    # the probe above can fail: it sees these modules when a command loads them
    cli("nova", "add", "torch")
    found = modules_loaded_by(cli, "dashboard", "--out", str(tmp_path / "page.html"))
    assert found == {"code": 0, "loaded": ["torchsm.observe.charts", "torchsm.observe.dashboard"]}



# Issue 21, point 7: the hook and transition paths pay for start-up alone (FIELD-NOTES:
# `typing` ~11 ms of the fast path's 14 ms import). Watched by top-level name. `re` is not
# among them: `json`, which both paths need, imports it; torchsm's own modules compile no
# pattern there (below).
STDLIB_AVOIDED = ("typing", "pathlib", "urllib", "dataclasses")
HOT_CALLS = [
    (["hook", "pre-tool-use", "--nova", "torch"],
     '{"session_id": "s1", "tool_name": "Bash", "tool_input": {"command": "ls"}}'),
    (["transition", "torch", "cool", "--for", "5"], None),
    (["transition", "torch", "work", "--force"], None),
]


@pytest.mark.parametrize("args, stdin", HOT_CALLS)
def test_the_hot_paths_skip_typing_pathlib_urllib_and_dataclasses(cli, args, stdin):
    cli("nova", "add", "torch")
    outcome = loaded_modules(cli, *args, watch=STDLIB_AVOIDED, input=stdin)
    assert (outcome["code"], outcome["heavy"]) == (0, [])


def test_a_stop_that_continues_skips_typing_pathlib_urllib_and_dataclasses(cli):
    # the Stop hook runs at every turn's end: its decision and the no-progress breaker
    # load with it
    cli("nova", "add", "torch")
    cli("queue", "add", "a task")
    outcome = loaded_modules(cli, "hook", "stop", "--nova", "torch", watch=STDLIB_AVOIDED,
                             input='{"session_id": "s1", "last_assistant_message": "done"}')
    assert (outcome["code"], outcome["heavy"]) == (0, [])


def test_the_stdlib_probe_sees_them_when_loaded(cli):
    # the probe above can fail: `status` goes through click, which loads them
    cli("nova", "add", "torch")
    outcome = loaded_modules(cli, "status", watch=STDLIB_AVOIDED)
    assert outcome["code"] == 0 and "typing" in outcome["heavy"]


_PATTERN_PROBE = """
import json, re, sys
from torchsm.cli import execute
code = execute(sys.argv[1:])
sys.stdout.flush()
compiled = sorted(f"{name}.{attr}" for name, module in list(sys.modules.items())
                  if name.startswith("torchsm") for attr, value in vars(module).items()
                  if isinstance(value, re.Pattern))
print(json.dumps({"code": code, "compiled": compiled}), file=sys.stderr)
"""


def patterns_compiled_by(cli, *args, stdin: str | None = None) -> dict:
    """Run the CLI in a fresh interpreter: its exit code and the regexes torchsm's loaded
    modules hold, compiled (`module.NAME`)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _PATTERN_PROBE, *args], input=stdin,
                          capture_output=True, text=True, env=cli.env(), timeout=60)
    return json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args, stdin", HOT_CALLS)
def test_the_hot_paths_compile_no_regex(cli, args, stdin):
    cli("nova", "add", "torch")
    (cli.home / "torchsm.toml").write_text('[wake]\nquiet_hours = "22:00-07:00"\n'
                                           '[accounts.work]\nstop_utilization = 0.9\n')
    assert patterns_compiled_by(cli, *args, stdin=stdin) == {"code": 0, "compiled": []}


def test_the_pattern_probe_sees_a_compiled_regex(cli):
    # the probe above can fail: `status` loads modules that compile theirs at import
    cli("nova", "add", "torch")
    assert patterns_compiled_by(cli, "status")["compiled"] != []


# Issue 21, point 7, second round: tomllib costs a hook call ~15 ms under load (it imports
# `typing` and `string` and compiles its regexes at import), more than the rest of
# torchsm's modules. An unchanged torchsm.toml is read from its parsed copy.
CONFIG = '[safety]\nhook_burst = 1000\n[wake]\nquiet_hours = "22:00-07:00"\n'


@pytest.mark.parametrize("args, stdin", HOT_CALLS)
def test_the_hot_paths_parse_an_unchanged_config_once(cli, args, stdin):
    cli("nova", "add", "torch")
    (cli.home / "torchsm.toml").write_text(CONFIG)
    cli("status")  # parses it
    outcome = loaded_modules(cli, *args, watch=("tomllib", *STDLIB_AVOIDED), input=stdin)
    assert (outcome["code"], outcome["heavy"]) == (0, [])


def test_a_changed_config_is_parsed_again(cli):
    # the probe above can fail: a config that changed is parsed, and what it says counts
    cli("nova", "add", "torch")
    (cli.home / "torchsm.toml").write_text(CONFIG)
    cli("status")
    (cli.home / "torchsm.toml").write_text(CONFIG.replace("1000", "'ten'"))
    outcome = loaded_modules(cli, *HOT_CALLS[0][0], watch=("tomllib",), input=HOT_CALLS[0][1])
    assert (outcome["code"], outcome["heavy"]) == (1, ["tomllib"])


# `random` (~2 ms with bisect, warnings and hashlib's sha512) only waits out a lock on the
# hook path. The transition path keeps it: novas picks a cooldown's jitter.
@pytest.mark.parametrize("event", ["pre-tool-use", "post-tool-use", "notification"])
def test_the_recording_hooks_skip_random(cli, event):
    cli("nova", "add", "torch")
    outcome = loaded_modules(cli, "hook", event, "--nova", "torch", watch=("random",),
                             input='{"session_id": "s1", "tool_name": "Bash"}')
    assert (outcome["code"], outcome["heavy"]) == (0, [])


def test_the_random_probe_sees_it_when_loaded(cli):
    # the probe above can fail: a transition loads it
    cli("nova", "add", "torch")
    assert loaded_modules(cli, "transition", "torch", "cool", watch=("random",))["heavy"] == [
        "random"]


# Issue 23: the cluster (redis-py) never loads on the hook path, even with the cluster on
# by default and a server answering.
CLUSTER_MODULES = ("redis", "torchsm.cluster")


@pytest.mark.parametrize("args, stdin", [
    (["hook", "stop", "--nova", "torch"], '{"session_id": "s1"}'),
    (["hook", "pre-tool-use", "--nova", "torch"], '{"session_id": "s1"}'),
    (["hook", "session-start", "--nova", "torch"], '{"session_id": "s1", "source": "startup"}'),
    (["transition", "torch", "cool", "--for", "5"], None),
])
def test_the_cluster_stays_off_the_hook_path(cli, home, redis_db, args, stdin):
    from helpers import write_config

    write_config(home, '[cluster]\ndefault = true\nhost = "alpha"\n')
    cli("nova", "add", "torch")
    cli("queue", "add", "--local", "something to continue with")
    found = modules_loaded_by(cli, *args, stdin=stdin, watch=CLUSTER_MODULES,
                              TORCHSM_REDIS_URL=redis_db.url)
    assert found == {"code": 0, "loaded": []}


def test_the_cluster_probe_sees_redis_when_loaded(cli, redis_db):
    found = modules_loaded_by(cli, "cluster", "status", watch=CLUSTER_MODULES,
                              TORCHSM_REDIS_URL=redis_db.url)
    assert found == {"code": 0, "loaded": ["redis", "torchsm.cluster"]}
