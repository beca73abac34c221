"""What may reach a terminal (or a log a person reads in one) of text torchsm did not write.

Work items, senders, wake signals, messages, memories, reasons, file names and paths come
from anyone who can add work, send a message or name a file. Printed raw, `\\x1b]0;...\\x07`
retitles the terminal and `\\x1b[2J` clears it; a right-to-left override (U+202E) or an
isolate (U+2066-U+2069) reorders what is shown ("Trojan Source": `ok\\u202egnp.exe` reads
`okexe.png`), and zero-width or tag characters hide text altogether. `printable` shows every
such character as a visible escape; `json_line` escapes them in JSON (the same document).
Stdlib only: the hook path and the hand-parsed `transition` use it for their error lines.
"""

from __future__ import annotations

import json
import math
import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Any

# C0 controls (ESC starts every escape sequence; BEL, BS, CR rewrite what is shown), DEL and
# the C1 controls (U+0080-U+009F: U+009B is a one-character CSI for terminals that take
# 8-bit controls). Newline and tab are kept where a text may span lines.
_C0_C1 = "\x00-\x08\x0b-\x1f\x7f-\x9f"
# Unicode's invisible format characters (category Cf: bidi embeddings, overrides, isolates
# and marks, U+061C, zero-width spaces and joiners, the BOM, tag characters, ...) and the
# line and paragraph separators (Zl, Zp), which no terminal shows as what they are.
_FORMAT = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
           "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
           "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
           "\U000e0020-\U000e007f")
_HIDDEN = re.compile(f"[{_C0_C1}{_FORMAT}]")
_HIDDEN_IN_A_LINE = re.compile(f"[\n\t{_C0_C1}{_FORMAT}]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# JSON escapes C0 itself; DEL, C1 and the format characters it leaves raw
_JSON_RAW = re.compile(f"[\x7f-\x9f{_FORMAT}]")


def _visible(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else (
        f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def printable(text: str, *, multiline: bool = True) -> str:
    """`text` fit for a terminal: every control character (ESC, BEL, CR, DEL, C1, ...) and
    every invisible format character (bidi overrides and isolates, zero-width characters,
    tags) shown as a visible escape (`\\x1b`, `\\r`, `\\u202e`), so that no text can move
    the cursor, retitle or clear the terminal, reorder or hide what is printed. Newlines
    and tabs stay unless not `multiline`."""
    pattern = _HIDDEN if multiline else _HIDDEN_IN_A_LINE
    return pattern.sub(_visible, text) if pattern.search(text) else text


def json_line(data: Any) -> str:
    """`data` as one line of JSON, non-ASCII text as is except DEL, the C1 controls and
    the format characters, which are \\u-escaped (the same JSON, harmless on a terminal).
    A number that is not finite (a sum past a float, a cost an older torchsm stored) is
    `null`: `Infinity` and `NaN` are not JSON, and strict parsers refuse the document."""
    try:
        line = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except ValueError:
        line = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False)
    return _JSON_RAW.sub(_json_escape, line) if _JSON_RAW.search(line) else line


def _finite(data: Any) -> Any:
    """`data` with every float that is not finite replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data


def _json_escape(match: re.Match) -> str:
    # json.dumps's own escape for the character: \\uXXXX, or a surrogate pair beyond U+FFFF
    return json.dumps(match.group())[1:-1]


def html_text(text: str) -> str:
    """`text` for an HTML page: escaped, and shown as `printable` shows it on one line (a
    bidi override reorders a page as it does a terminal)."""
    from html import escape

    return escape(printable(text, multiline=False))


def error_line(message: str) -> str:
    """The one stderr line of a failure: `torchsm: error: MESSAGE`, made printable."""
    return f"torchsm: error: {printable(message, multiline=False)}"


def warning_line(message: str) -> str:
    """One stderr line of a warning: `torchsm: warning: MESSAGE`, made printable."""
    return f"torchsm: warning: {printable(message, multiline=False)}"
