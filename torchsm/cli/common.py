"""What every command shares: the global options, the home and config, output."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import click

from torchsm.cli import colour
from torchsm.config import Config, Home, HomeChoice, home_choice, load_config, resolve_home
from torchsm.terminal import json_line, printable, warning_line  # noqa: F401 (for commands)


@dataclass
class Env:
    """Global options, accepted before or after the subcommand name."""

    home_option: str | None = None
    json: bool = False
    _home: Home | None = field(default=None, repr=False)
    _config: Config | None = field(default=None, repr=False)

    @property
    def home(self) -> Home:
        if self._home is None:
            self._home = resolve_home(self.home_option)
        return self._home

    @property
    def home_choice(self) -> HomeChoice:
        """Which home, and why: what `init`, `status` and `doctor` tell the user."""
        return home_choice(self.home_option)

    def home_described(self) -> str:
        """`PATH (why)`: the home and what chose it."""
        return f"{self.home.path} ({self.home_choice.reason})"

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.home)
        return self._config

    def emit(self, data: Any, text: str | Callable[[], str] | None = None) -> None:
        """Print `data` as one line of JSON with --json, else the text rendering, its
        control characters made visible (`printable`)."""
        if self.json:
            click.echo(json_line(data))
        elif text is not None:
            shown = text() if callable(text) else text
            # color=True: click would strip our codes when stdout is not a terminal, and
            # FORCE_COLOR asks for them there (colour.on decided already)
            click.echo(shown if isinstance(shown, Printed) else printable(shown), color=True)


def _set_home(ctx: click.Context, _param, value):
    if value is not None:
        ctx.find_object(Env).home_option = value


def _set_json(ctx: click.Context, _param, value):
    if value:
        ctx.find_object(Env).json = True


def common_options(command: Callable) -> Callable:
    command = click.option("--json", "json_output", is_flag=True, expose_value=False,
                           callback=_set_json, help="Machine-readable output on stdout.")(command)
    return click.option("--home", metavar="DIR", expose_value=False, callback=_set_home,
                        help="torchsm home (default: $TORCHSM_HOME, else ./var of a torchsm "
                             "checkout, else $XDG_STATE_HOME/torchsm).")(command)


pass_env = click.make_pass_decorator(Env)


class Printed(str):
    """A text already made printable, which may hold torchsm's own colour codes: `emit`
    prints it as it is (the codes would otherwise be shown as escapes)."""


def warn(message: str) -> None:
    """One `torchsm: warning: ...` line on stderr, made printable; the prefix yellow on
    a terminal."""
    line = warning_line(message)
    click.echo(colour_prefix(line, "torchsm: warning:", "yellow", err=True), err=True,
               color=True)


def colour_prefix(line: str, prefix: str, name: str, *, err: bool) -> str:
    """`line` with its `prefix` painted, when its stream (stderr with `err`) wants colour."""
    wanted = colour.on(sys.stderr if err else sys.stdout)
    return colour.paint(prefix, name, on=wanted) + line[len(prefix):]


def table(rows: list[list[str]], header: list[str],
          colours: dict[str, Callable[[str], str | None]] | None = None) -> Printed:
    """Left-aligned columns, like `ps`; a cell's control characters, newlines and tabs
    included, are shown as escapes (`printable`), so each row stays one line. `colours`
    maps a column's header to the colour of a cell's text (torchsm.cli.colour), painted
    on a terminal after the widths are measured."""
    cells = [header] + [[("-" if c is None else printable(str(c), multiline=False))
                         for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    painters = _painters(header, colours or {})
    lines = [_line(row, widths, painters if n else {}) for n, row in enumerate(cells)]
    return Printed("\n".join(lines))


def _painters(header: list[str], colours: dict) -> dict[int, Callable]:
    if not colours or not colour.on():
        return {}
    return {i: colours[name] for i, name in enumerate(header) if name in colours}


def _line(row: list[str], widths: list[int], painters: dict[int, Callable]) -> str:
    padded = [_painted(c, painters.get(i)) + " " * (w - len(c))
              for i, (c, w) in enumerate(zip(row, widths))]
    return "  ".join(padded).rstrip()


def _painted(cell: str, painter: Callable | None) -> str:
    return cell if painter is None else colour.paint(cell, painter(cell), on=True)


class AgentCommandAfterDashes(click.Command):
    """[ARGS...] -- COMMAND: what follows `--` is the agent command, kept in
    ctx.meta["agent_command"] apart from the arguments before it (click would merge them
    into one variadic argument)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            if not args[at + 1:]:
                raise click.UsageError(f"no agent command after --: {ctx.command_path} "
                                       "... -- COMMAND [ARG...]", ctx)
            ctx.meta["agent_command"] = args[at + 1:]
            args = args[:at]
        return super().parse_args(ctx, args)
