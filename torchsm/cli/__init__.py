"""The `torchsm` command line: a thin layer over the library.

`torchsm hook ...` is the hottest path there is (Claude Code runs it on every tool call
and waits), and `torchsm transition` is close behind: a plainly written call of either is
parsed by hand (torchsm.cli.fast) and never loads click; everything else, including any
unusual call (`--help`, an unknown option), goes to the click application in
torchsm.cli.app.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    sys.exit(execute(argv))


# Not `run`: importing the `torchsm run` command's module, torchsm.cli.run, would replace
# a package attribute of that name.
def execute(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    from torchsm.cli.fast import command_word, parse_plain_call, run_plain_call

    call = parse_plain_call(argv)
    if call is not None:
        return run_plain_call(call)
    from torchsm.cli.app import run_click

    # a hook's usage error must not exit 2, which Claude Code reads as "block"
    return run_click(argv, usage_exit=1 if command_word(argv) == "hook" else 2)
