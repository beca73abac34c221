"""`torchsm run NAME -- COMMAND [ARG...]`: the supervisor loop (torchsm.supervisor.loop)."""

from __future__ import annotations

import signal
import threading
import time

import click

from torchsm.cli.common import Env, common_options, json_line, pass_env, printable
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import count
from torchsm.clock import format_time


agent_output_option = click.option(
    "--agent-output", type=click.Choice(["auto", "claude-code", "plain"]), default="auto",
    show_default=True,
    help="What COMMAND prints. claude-code: Claude Code's JSON (stream-json or json), whose "
         "usage and cost signals are read; plain: anything else, judged by its exit status "
         "alone; auto: claude-code when COMMAND is `claude ... --output-format "
         "stream-json|json`, else plain.")


@click.command()
@click.argument("name", shell_complete=nova_names)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- COMMAND [ARG...]")
@click.option("--once", is_flag=True, help="Start at most one session, then exit.")
@click.option("--max-sessions", type=count(), metavar="N",
              help="Exit after N sessions.")
@click.option("--until-idle", is_flag=True,
              help="Exit when there is nothing to do (no due wake signal, restart request "
                   "or claimable work item).")
@click.option("--cwd", metavar="DIR", help="Run the agent in DIR (default: here).")
@agent_output_option
@common_options
@pass_env
def run(env: Env, name: str, command: tuple[str, ...], once: bool, max_sessions: int | None,
        until_idle: bool, cwd: str | None, agent_output: str) -> None:
    """Supervise Nova NAME: start COMMAND for each session, within the budgets.

    Each session's prompt is a due wake signal, a restart request or the next work item.
    An argument `{prompt}` of COMMAND is replaced by it, as one argument; without
    `{prompt}` the prompt goes to COMMAND's stdin. {prompt} must be a whole argument:
    inside a larger one (`sh -c 'echo {prompt}'`) the prompt's text could run as
    commands, so such a COMMAND is refused (in a shell: `sh -c '... "$1"' sh {prompt}`,
    or read $TORCHSM_PROMPT). COMMAND inherits this environment plus TORCHSM_NOVA,
    TORCHSM_HOME, TORCHSM_PROMPT, TORCHSM_SESSION and, for a work item, TORCHSM_ITEM.
    For Claude Code:

    \b
        torchsm run torch -- claude -c -p {prompt} --output-format stream-json --verbose

    Usage limits, costs and API errors are read only from an agent that speaks Claude
    Code's JSON (--agent-output): what any other agent prints (its task, echoed) never
    holds an account or changes a budget.

    At most [supervisor] max_sessions_per_hour sessions start in any sliding hour, never
    closer than the personality's rhythm allows; failures cool the Nova with backoff (or
    until an announced usage-limit reset) and repeated ones make it meditate. SIGTERM or
    SIGINT stop the loop cleanly: the agent gets SIGTERM, then SIGKILL after
    [supervisor] stop_grace_s, and its work item goes back to the queue. One supervisor
    per Nova. Prints one line per event (JSON lines with --json).
    """
    from torchsm.agent import session
    from torchsm.supervisor import loop, process

    session.check_template(command)  # before anything starts
    options = loop.RunOptions(tuple(command), cwd, once, max_sessions, until_idle,
                                    agent_output)
    stop = threading.Event()
    with process.stop_on_signals(stop) as received:
        summary = process.supervise(env.home, env.config, name, options, stop=stop,
                                       report=_printer(env))
    why = f"stopped by {signal.Signals(received[0]).name}" if received else summary.why
    _printer(env)({"event": "end", "nova": name, "at": format_time(time.time()),
                   "sessions": summary.sessions,
                   "message": f"supervisor ends after {summary.sessions} session"
                              f"{'' if summary.sessions == 1 else 's'}: {why}", "why": why})


def _printer(env: Env):
    def show(event: dict) -> None:
        if env.json:
            click.echo(json_line(event))
        else:
            # an event's message quotes item texts, wake texts and the agent's output:
            # one line each, its control characters made visible
            at = (event.get("at") or "")[11:]
            click.echo(printable(f"{at + ' ' if at else ''}{event['nova']}: "
                                 f"{event['message']}", multiline=False))

    return show
