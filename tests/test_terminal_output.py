"""Text output never hands a terminal raw control characters (issue 14, finding 12).

Item texts, senders, wake texts, message texts and reasons come from anyone who can add
work or send a message; printed raw, `\\x1b]0;...\\x07` retitles the terminal, `\\x1b[2J`
clears it, and worse sequences exist. Text output shows them as visible escapes; JSON
output escapes them already (and C1 controls, which JSON leaves alone, are escaped too).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata

import pytest

from helpers import torchsm_executable
from torchsm.cli.common import json_line, printable, table

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\rfake\x7f"
# what may reach the terminal: printable text, newlines and tabs
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def assert_clean(out: str) -> None:
    assert out, "no output"
    assert not RAW_CONTROL.search(out), repr(out)


def test_printable_escapes_controls_visibly():
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("bell\x07 cr\r nul\x00 del\x7f csi\x9b") == (
        "bell\\x07 cr\\r nul\\x00 del\\x7f csi\\x9b")
    assert printable("two\nlines\tand a tab") == "two\nlines\tand a tab"
    assert printable("two\nlines\t", multiline=False) == "two\\nlines\\t"
    assert printable("plain text, ünïcödé ✓") == "plain text, ünïcödé ✓"
    assert table([["1", "x\x1b[2J\ny"]], ["ID", "TEXT"]) == "ID  TEXT\n1   x\\x1b[2J\\ny"


def test_queue_texts(fast_torch):
    item_id = fast_torch("queue", "add", HOSTILE).out.strip()
    out = fast_torch("queue", "list").out
    assert_clean(out)
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out
    claimed = fast_torch("queue", "claim", "--nova", "torch").out
    assert_clean(claimed)
    assert claimed.startswith(f"{item_id}\t\\x1b]0;pwned")
    [item] = fast_torch("queue", "list", "--json").json()
    assert item["text"] == HOSTILE  # stored and shown as JSON unchanged


def test_wake_texts_and_senders(fast_torch):
    sent = fast_torch("wake", "torch", HOSTILE, "--sender", "ev\x1b[2Jil")
    assert_clean(sent.out)
    out = fast_torch("wake", "list").out
    assert_clean(out)
    assert "ev\\x1b[2Jil" in out and "\\x1b]0;pwned" in out
    assert_clean(fast_torch("wake", "classify", HOSTILE, "--explain").out)
    [signal] = fast_torch("wake", "list", "--json").json()
    assert signal["message"] == HOSTILE


def test_message_texts(fast_torch):
    assert_clean(fast_torch("message", "send", "torch", "torch", HOSTILE).out)
    out = fast_torch("message", "list", "torch").out
    assert_clean(out)
    assert "\\x1b]0;pwned" in out
    raw = fast_torch("message", "list", "torch", "--json").out
    assert not RAW_CONTROL.search(raw)  # JSON: \u001b ..., and C1 as \u009b
    assert json.loads(raw)[0]["text"] == HOSTILE


def test_message_follow(fast_torch):
    fast_torch("message", "send", "torch", "torch", HOSTILE)
    follow = subprocess.Popen([*torchsm_executable(), "message", "list", "torch", "--follow"],
                              env=fast_torch.env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = follow.stdout.readline().decode()
    finally:
        follow.terminate()
        follow.wait(10)
    assert "\\x1b]0;pwned" in line
    assert_clean(line.rstrip("\n"))


def test_history_reasons(fast_torch):
    fast_torch("transition", "torch", "cool", "--for", "5", "--reason", HOSTILE)
    out = fast_torch("history", "torch").out
    assert_clean(out)
    assert "\\x1b]0;pwned" in out


def test_run_event_lines(fast_torch):
    fast_torch("queue", "add", HOSTILE)
    lines = fast_torch("run", "torch", "--once", "--json", "--", "true").out
    assert not RAW_CONTROL.search(lines)  # JSON: \u001b ..., and C1 as \u009b
    events = [json.loads(line) for line in lines.splitlines()]
    assert any("\x1b]0;pwned\x07" in e["message"] for e in events)
    fast_torch("queue", "add", HOSTILE)
    # a failing agent: its output is quoted in the event lines too
    out = fast_torch("run", "torch", "--once", "--", "sh", "-c",
                "printf 'agent says \\033[2J\\n' >&2; exit 3").out
    assert "session 2 started" in out and "crashed" in out
    assert_clean(out)
    assert "\\x1b]0;pwned" in out and "agent says \\x1b[2J" in out


# --- bidi overrides and invisible format characters; error lines; the log (issue 20, 11) ---

# Right-to-left override, isolates, marks and the Arabic letter mark reorder or hide what a
# terminal shows ("Trojan Source"): `ok\u202e lla` reads as `ok all` backwards.
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
SNEAKY = "\x1b]0;pwned\x07 ok\u202egnp.exe\u2069 zero\u200bwidth tag\U000e0041"


def invisible(text: str) -> list[str]:
    """The format characters (Unicode category Cf) and line/paragraph separators in text."""
    return [c for c in text if unicodedata.category(c) in ("Cf", "Zl", "Zp")]


def assert_visible(out: str) -> None:
    assert_clean(out)
    assert not invisible(out), repr(out)


def test_printable_shows_bidi_and_other_invisible_characters():
    assert printable("a\u202eb\u2066c\u200fd\u061ce") == "a\\u202eb\\u2066c\\u200fd\\u061ce"
    assert printable("tag\U000e0041") == "tag\\U000e0041"
    assert printable("line\u2028sep") == "line\\u2028sep"
    every = "".join(chr(c) for c in range(sys.maxunicode + 1)
                    if unicodedata.category(chr(c)) in ("Cf", "Zl", "Zp"))
    assert not invisible(printable(every)) and not invisible(printable(every, multiline=False))
    assert printable("plain text, ünïcödé ✓ עברית") == "plain text, ünïcödé ✓ עברית"
    line = json_line({"text": BIDI + "\U000e0041"})
    assert not invisible(line) and json.loads(line) == {"text": BIDI + "\U000e0041"}


def test_bidi_in_texts_is_shown_as_escapes(fast_torch):
    fast_torch("queue", "add", SNEAKY)
    out = fast_torch("queue", "list").out
    assert_visible(out)
    assert "ok\\u202egnp.exe\\u2069" in out
    raw = fast_torch("queue", "list", "--json").out
    assert not invisible(raw) and json.loads(raw)[0]["text"] == SNEAKY
    fast_torch("message", "send", "torch", "torch", SNEAKY)
    assert_visible(fast_torch("message", "list", "torch").out)


@pytest.mark.parametrize("args", [
    ["--home", "/tmp/no\x1b]0;pwned\x07where" + BIDI, "status"],  # the click application
    ["transition", "no\x1b]0;pwned\x07" + BIDI, "work"],  # the fast path
    ["hook", "stop", "--nova", "torch", "--home", "/tmp/no\x1b]0;pwned\x07" + BIDI],
], ids=["click", "transition", "hook"])
def test_error_lines_show_escapes(fast_torch, args):
    result = fast_torch.fails(*args, input="{}")
    assert result.err.startswith("torchsm: error: ") and result.err.count("\n") == 1
    assert_visible(result.err)
    assert "\\x1b]0;pwned\\x07" in result.err and "\\u202e" in result.err


def test_warning_lines_show_escapes(fast_torch, tmp_path):
    path = tmp_path / ("items\x1b]0;pwned\x07\u202e.txt")
    path.write_text("first\n{\"text\": \n")
    result = fast_torch("queue", "import", str(path))
    assert result.err.startswith("torchsm: warning: ")
    assert_visible(result.err)
    assert "\\x1b]0;pwned\\x07\\u202e" in result.err


def test_the_logs_session_header_is_one_visible_line(fast_torch):
    fast_torch("queue", "add", "first line " + SNEAKY + "\nsecond line")
    fast_torch("run", "torch", "--once", "--", "true")
    log = (fast_torch.home / "log" / "torch.log").read_text()
    header, footer = [line for line in log.splitlines() if line.startswith("=== ")]
    assert_visible(header)
    assert footer.startswith("=== session 1 ended ")
    assert "\\x1b]0;pwned\\x07 ok\\u202egnp.exe\\u2069" in header
