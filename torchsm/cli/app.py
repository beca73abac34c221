"""The click application: the command group, its lazily loaded subcommands, and the one
place where errors become `torchsm: error: ...` and exit codes.

Each command parses, makes one library call and renders (text, or JSON with --json).
Subcommand modules load only when their command runs.
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import sys

import click

from torchsm import __version__
from torchsm.cli.common import Env, colour_prefix, common_options
from torchsm.cli.fast import command_word
from torchsm.errors import TorchsmError, describe_unexpected
from torchsm.terminal import error_line, printable

# name -> "module:attribute" under torchsm.cli
COMMANDS = {
    "init": "setup:init",
    "db": "setup:db",
    "nova": "novas:nova",
    "status": "novas:status",
    "transition": "novas:transition",
    "history": "novas:history",
    "hook": "hook:hook",
    "hooks": "hooks:hooks",
    "queue": "queue:queue",
    "wake": "wake:wake",
    "mirror": "mirror:mirror",
    "message": "messages:message",
    "run": "run:run",
    "usage": "usage:usage",
    "logs": "logs:logs",
    "sessions": "sessions:sessions",
    "service": "service:service",
    "dream": "dream:dream",
    "memory": "memory:memory",
    "metrics": "metrics:metrics",
    "alerts": "alerts:alerts",
    "dashboard": "dashboard:dashboard",
    "serve": "serve:serve",
    "doctor": "doctor:doctor",
    "up": "fleet:up",
    "down": "fleet:down",
    "restart": "fleet:restart",
    "ps": "fleet:ps",
    "cluster": "cluster:cluster",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(f"torchsm.cli.{module}"), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="torchsm")
@common_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """torchsm: safe continuous operation for AI coding agents ("Novas").

    Each Nova is a persisted state machine (working, cooling, meditating, dreaming,
    compacting); only the supervisor starts agent sessions, under hard budgets.
    """
    ctx.ensure_object(Env)


def run_click(argv: list[str] | None = None, usage_exit: int = 2) -> int:
    """Run the click application; every failure is one `torchsm: error: ...` line and
    exit 1; command-line usage errors exit `usage_exit` (2; 1 for hooks: Claude Code reads
    2 as "block")."""
    # a hook's stderr is read by Claude Code: no colour there
    hook = command_word(sys.argv[1:] if argv is None else argv) == "hook"
    failed = functools.partial(fail, plain=hook)
    try:
        result = cli.main(args=argv, prog_name="torchsm", standalone_mode=False,
                          obj=Env())
    except click.UsageError as exc:
        _show_usage_error(exc)
        return usage_exit
    except (click.ClickException, TorchsmError) as exc:
        return failed(exc.format_message() if isinstance(exc, click.ClickException)
                      else exc.message)
    except click.Abort:
        return failed("aborted")
    except KeyboardInterrupt:
        return failed("interrupted", code=130)
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except Exception as exc:  # the one place internal errors are turned into a line
        if os.environ.get("TORCHSM_DEBUG"):
            raise
        plain = describe_unexpected(exc)  # e.g. JSON nested 100,000 deep: RecursionError
        if plain is not None:
            return failed(plain)
        return failed(f"internal error: {type(exc).__name__}: {exc} (TORCHSM_DEBUG=1 shows more)")
    return result if isinstance(result, int) else 0


def fail(message: str, code: int = 1, *, plain: bool = False) -> int:
    """The one `torchsm: error: ...` line, its prefix red on a terminal unless `plain`."""
    line = error_line(message)
    click.echo(line if plain else colour_prefix(line, "torchsm: error:", "red", err=True),
               err=True, color=True)  # not stripped: colour.on decided
    return code


def _show_usage_error(exc: click.UsageError) -> None:
    """click's usage, hint and `Error: ...` lines, with what the user typed made
    printable (click quotes most values with repr, but not every one)."""
    shown = io.StringIO()
    exc.show(file=shown)
    click.echo(printable(shown.getvalue()), err=True, nl=False)


def _silence_stdout() -> None:
    # A closed pipe (`torchsm history x | head`) is not an error worth a traceback at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
