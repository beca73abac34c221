"""What every command shares: the global options, the home and config, output."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import click

from torchsm.config import Config, Home, load_config, resolve_home


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
            click.echo(printable(text() if callable(text) else text))


# What must not reach a terminal raw: C0 controls (ESC starts every escape sequence; BEL,
# BS, CR rewrite what is shown), DEL and the C1 controls (U+0080-U+009F: U+009B is a
# one-character CSI for terminals that take 8-bit controls). Newline and tab are kept
# where a text may span lines.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROLS_IN_A_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# JSON escapes C0 itself; DEL and C1 it leaves raw
_JSON_RAW = re.compile(r"[\x7f-\x9f]")


def _visible(match: re.Match) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char):02x}"


def printable(text: str, *, multiline: bool = True) -> str:
    """`text` fit for a terminal: every control character (ESC, BEL, CR, DEL, C1, ...)
    shown as a visible escape (`\\x1b`, `\\r`), so text from work items, senders, wake
    signals, messages and reasons can neither move the cursor, retitle or clear the
    terminal, nor hide what is printed. Newlines and tabs stay unless not `multiline`."""
    pattern = _CONTROLS if multiline else _CONTROLS_IN_A_LINE
    return pattern.sub(_visible, text) if pattern.search(text) else text


def json_line(data: Any) -> str:
    """`data` as one line of JSON, non-ASCII text as is except DEL and C1 controls,
    which are \\u-escaped (the same JSON, harmless on a terminal). A number that is not
    finite (a sum past a float, a cost an older torchsm stored) is `null`: `Infinity`
    and `NaN` are not JSON, and strict parsers refuse the whole document."""
    try:
        line = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except ValueError:
        line = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False)
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", line) \
        if _JSON_RAW.search(line) else line


def _finite(data: Any) -> Any:
    """`data` with every float that is not finite replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data


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
                        help="torchsm home (default: $TORCHSM_HOME, else ./var).")(command)


pass_env = click.make_pass_decorator(Env)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns, like `ps`; a cell's control characters, newlines and tabs
    included, are shown as escapes (`printable`), so each row stays one line."""
    cells = [header] + [[("-" if c is None else printable(str(c), multiline=False))
                         for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in cells)
