"""`torchsm hook EVENT --nova NAME`, for the calls the fast path leaves to click
(`--help`, options in unusual places). Same handler, same exit codes: 0 or 1, never 2."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options
from torchsm.cli.complete import nova_names


@click.command()
@click.argument("event", metavar="EVENT")
@click.option("--nova", required=True, metavar="NAME", help="The Nova this agent is.",
              shell_complete=nova_names)
@common_options
@click.pass_context
def hook(ctx: click.Context, event: str, nova: str) -> None:
    """Claude Code hook handler: reads the hook's JSON on stdin. EVENT is one of
    session-start, user-prompt-submit, pre-tool-use, post-tool-use, stop, stop-failure,
    subagent-stop, pre-compact, session-end, notification. Never exits 2."""
    from torchsm.cli.fast import PlainCall, run_plain_call

    home = ctx.find_object(Env).home_option
    options = {"nova": nova, **({"home": home} if home else {})}
    ctx.exit(run_plain_call(PlainCall("hook", [event], options)))
