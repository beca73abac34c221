"""Colour on a terminal, where it helps reading: a Nova's state, the `error:` and
`warning:` prefixes.

Only when the stream is a terminal and the user has not said no (https://no-color.org:
`NO_COLOR`, and `TERM=dumb`); `FORCE_COLOR` or `CLICOLOR_FORCE` turn it on through a pipe
(for tests, and pagers that show colour). Never in --json, never on a hook's output
(Claude Code reads it). Colour is added after a text was made printable, so no text from
others can bring its own escape codes (torchsm.terminal).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Mapping

CODES = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36}
STATE_COLOURS = {"working": "green", "cooling": "yellow", "meditating": "magenta",
                 "dreaming": "blue", "compacting": "cyan"}
RESET = "\x1b[0m"
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def wants_colour(tty: bool, environ: Mapping[str, str]) -> bool:
    """Whether to colour a stream: a forced yes unless the user said no, else a terminal
    that is not `dumb`. A variable counts when set and not empty (`FORCE_COLOR=0`: no)."""
    if environ.get("NO_COLOR"):
        return False
    if any(environ.get(name, "0") not in ("", "0") for name in ("FORCE_COLOR",
                                                                 "CLICOLOR_FORCE")):
        return True
    return tty and environ.get("TERM") != "dumb"


def on(stream=None) -> bool:
    """Whether to colour `stream` (stdout by default) in this process."""
    stream = sys.stdout if stream is None else stream
    return wants_colour(_isatty(stream), os.environ)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def paint(text: str, colour: str | None, *, on: bool) -> str:
    """`text` in `colour` (a name of CODES) when `on`, else as it is."""
    if not on or colour is None:
        return text
    return f"\x1b[{CODES[colour]}m{text}{RESET}"


def state(text: str) -> str | None:
    """The colour of a state name (None for anything else)."""
    return STATE_COLOURS.get(text)


def visible_width(text: str) -> int:
    """How many columns `text` takes on a terminal: its colour codes take none."""
    return len(_SGR.sub("", text))
