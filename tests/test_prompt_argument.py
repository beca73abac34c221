"""`{prompt}` is substituted only as a whole argument (issue 14, finding 10).

Inside a larger argument (`sh -c 'echo {prompt}'`) the item's text would become part of a
shell script, so an item could run commands; such a COMMAND is refused at startup.
"""

import pytest

from helpers import Cli, rows
from torchsm.agent.session import build_argv, check_template
from torchsm.errors import AgentCommandError

HOSTILE = "; touch PWNED"


@pytest.mark.parametrize("template", [
    ["sh", "-c", "echo {prompt}"],
    ["agent", "--prompt={prompt}"],
    ["agent", "{prompt}{prompt}"],
    ["agent", " {prompt}"],
])
def test_a_placeholder_inside_a_larger_argument_is_refused(template):
    with pytest.raises(AgentCommandError) as caught:
        check_template(template)
    assert caught.value.message.startswith("{prompt} must be a whole argument")
    with pytest.raises(AgentCommandError):
        build_argv(template, HOSTILE)


def test_a_whole_argument_is_replaced_verbatim():
    assert build_argv(["echo", "{prompt}"], HOSTILE) == (["echo", HOSTILE], False)
    # the prompt's own text is never expanded again
    assert build_argv(["a", "{prompt}", "{prompt}"], "{prompt} x") == (
        ["a", "{prompt} x", "{prompt} x"], False)
    assert build_argv(["a", "-p"], "x") == (["a", "-p"], True)
    check_template(["sh", "-c", 'echo "$1"', "sh", "{prompt}"])  # the safe shell form


def test_run_refuses_an_embedded_placeholder_at_startup(fast_torch, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    fast_torch("queue", "add", HOSTILE)
    result = fast_torch.fails("run", "torch", "--once", "--cwd", str(work), "--",
                         "sh", "-c", "echo {prompt}")
    assert result.out == ""
    assert result.err.startswith("torchsm: error: {prompt} must be a whole argument")
    assert result.err.count("\n") == 1 and "'echo {prompt}'" in result.err
    assert not (work / "PWNED").exists() and list(work.iterdir()) == []
    assert rows(fast_torch, "SELECT COUNT(*) FROM sessions") == [(0,)]
    [item] = fast_torch("queue", "list", "--json").json()
    assert (item["status"], item["attempts"]) == ("pending", 0)


def test_run_passes_a_hostile_text_as_one_argument(fast_torch, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    fast_torch("queue", "add", HOSTILE)
    fast_torch("queue", "add", HOSTILE)
    out = fast_torch("run", "torch", "--once", "--cwd", str(work), "--", "echo", "{prompt}").out
    assert "session 1 ok" in out
    fast_torch("run", "torch", "--once", "--cwd", str(work), "--",
          "sh", "-c", 'printf %s "$1" > got', "sh", "{prompt}")
    assert not (work / "PWNED").exists()
    assert HOSTILE in (work / "got").read_text()
    assert [i["status"] for i in fast_torch("queue", "list", "--json").json()] == ["done", "done"]


def test_run_help_says_so(bare_cli: Cli):
    out = " ".join(bare_cli("run", "--help").out.split())
    assert "{prompt} must be a whole argument" in out
