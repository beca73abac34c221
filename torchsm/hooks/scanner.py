"""`torchsm hooks scan`: find the patterns that turn hooks into runaway loops.

Rules are data: an id, what is wrong, how to fix it, and a line matcher. Shell comments
are ignored; a settings.json is read as JSON (its hook commands and env), and the scripts
its hook commands name are scanned too.

Hostile input is expected (issue 14): every matcher is linear in the length of a line and
every pass over a file is one pass (no rescanning per loop, per command or per finding);
files of any size are read line by line with bounded memory (a line longer than
MAX_LINE_BYTES is scanned in pieces); symlinked folders are followed once each, a loop is a
note; binary files are skipped with a note; a file that cannot be read is a note and makes
the scan incomplete, which the command reports instead of "no dangerous patterns found".
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

MAX_SETTINGS_BYTES = 8 * 1024 * 1024  # a .json file up to this size is read whole as settings
MAX_LINE_BYTES = 4 * 1024 * 1024      # a longer line is scanned in pieces of this size
PIECE_OVERLAP = 4096                  # characters of the piece before that a match may start in
BINARY_SNIFF = 8192                   # a NUL byte in the first this-many bytes: a binary file
MAX_SHOWN = 500                       # characters of a line kept in a finding
SKIPPED_DIRS = frozenset({".git", "node_modules", "__pycache__"})


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    rule: str
    text: str
    fix: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{_printable(self.file)}:{self.line}: {self.rule}: "
                f"{_printable(self.text.strip()[:120])}\n    fix: {self.fix}")


@dataclass(frozen=True)
class Note:
    """Something the user should know about a file: skipped, not read, read approximately.
    `unscanned`: content that may hold a dangerous pattern was not read."""

    file: str
    text: str
    unscanned: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{_printable(self.file)}: {_printable(self.text)}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def unscanned(self) -> list[Note]:
        return [n for n in self.notes if n.unscanned]


_AGENT = r"(?<![\w.$-])(?:claude|codex|gemini|aider)(?![\w./-])"
_AGENT_FLAGS = r"(?:-p|--print|-c|--continue|-r|--resume|exec|--message|-m)"
# An agent word, then a flag later in the same command (before | ; & or a line end). As one
# regular expression (`agent[^\n|;&]*?flag`) every agent word scanned on to the end of the
# segment: quadratic on a long line of them. `_agent_call` finds the same in one pass.
_AGENT_WORD = re.compile(_AGENT)
_AGENT_FLAG = re.compile(r"""[\s"',\[]""" + _AGENT_FLAGS + r"""(?=[\s"',\]=]|$)""")
_SEGMENT_END = re.compile(r"[\n|;&]")
NPX_AGENT = re.compile(r"\bnpx\s+(?:-y\s+)?@anthropic-ai/claude-code\b")
SELF_EXEC = re.compile(
    r"""\bexec\s+(?:["']?\$(?:0|\{0\}|\{BASH_SOURCE(?:\[0\])?\}|BASH_SOURCE)(?!\w))"""
    r"""|(?:^|[\s;&(])(?:bash|sh|zsh)\s+["']?\$(?:0|\{0\})\b"""
    r"""|(?:^|[\s;&(|])["']?\$(?:0|\{0\})["']?\s+(?:"\$@"|\$@|&)"""
)
# ...and `os.exec*(` with `sys.argv` later on the same line, in one pass too
_OS_EXEC = re.compile(r"\bos\.exec\w*\(")
_SYS_ARGV = re.compile(r"\bsys\.argv\b")
_LINE_END = re.compile(r"\n")
ENDLESS_LOOP = re.compile(r"^\s*(?:while\s+(?:true\b|:(?=[\s;])|\[\s*1\s*\])|until\s+false\b)"
                          r"|^\s*for\s*\(\(\s*;\s*;\s*\)\)|^\s*while\s+True\s*:")
_PAUSES = re.compile(r"\b(?:sleep|wait|read|inotifywait|timeout|break|exit|return)\b")
_DO_DONE = re.compile(r"\bdo(ne)?\b")
_ECHO = re.compile(r"\s*(?:echo|printf|logger)\b")
API_KEY = re.compile(
    r"""sk-ant-[A-Za-z0-9_-]{16,}"""
    r"""|(?i:(?:anthropic|openai)_api_key|api[_-]?key|auth_token)["']?\s*[:=]\s*["']?"""
    r"""(?!\$|\{\{|<|your|xxx|changeme|\*{3})[A-Za-z0-9_\-]{20,}"""
)

FIXES = {
    "agent-from-hook": "a hook must never start an agent; queue the work "
                       "(`torchsm queue add ...`) and let `torchsm run` start sessions",
    "self-reexec": "do not re-execute the hook; exit and let the supervisor decide "
                   "what runs next",
    "busy-restart-loop": "an endless loop without a sleep spins; bound it, sleep with "
                         "backoff, or use `torchsm run` (it has budgets and cooldowns)",
    "clear-api-key": "remove the key from the file and rotate it; let the agent inherit "
                     "its authentication from the environment",
}


def _followed(line: str, heads: re.Pattern, tail: re.Pattern, stop: re.Pattern) -> bool:
    """Whether a match of `heads` is followed by a match of `tail` that starts before the
    next `stop` character after it (or on it). One pass: the next stop and the next tail
    only move forward as the heads do."""
    stop_at = tail_at = -1
    never = len(line) + 1
    for head in heads.finditer(line):
        end = head.end()
        if stop_at < end:
            found = stop.search(line, end)
            stop_at = found.start() if found else len(line)
        if tail_at < end:
            found = tail.search(line, end)
            tail_at = found.start() if found else never
        if tail_at <= stop_at:
            return True
    return False


def _agent_call(line: str) -> bool:
    return _followed(line, _AGENT_WORD, _AGENT_FLAG, _SEGMENT_END)


def _os_exec_argv(line: str) -> bool:
    return _followed(line, _OS_EXEC, _SYS_ARGV, _LINE_END)


# Each rule first looks for a word its pattern cannot match without (a substring search is
# many times faster than a regular expression on a long line), then matches.

def _agent_from_hook(line: str) -> bool:
    return (any(word in line for word in ("claude", "codex", "gemini", "aider"))
            and (_agent_call(line) or bool(NPX_AGENT.search(line))))


def _self_exec(line: str) -> bool:
    return (("$" in line and bool(SELF_EXEC.search(line)))
            or ("os.exec" in line and _os_exec_argv(line)))


def _has_key(line: str) -> bool:
    if "sk-ant-" not in line:
        lower = line.lower()
        if "key" not in lower and "auth_token" not in lower:
            return False
    return bool(API_KEY.search(line))


LINE_RULES: list[tuple[str, Callable[[str], bool]]] = [
    ("agent-from-hook", _agent_from_hook),
    ("self-reexec", _self_exec),
    ("clear-api-key", _has_key),  # applies to every line of every file
]


# --- walking the paths -----------------------------------------------------------------

def scan(paths: Iterable[str | os.PathLike]) -> Report:
    """Every finding in the given files and folders (recursively), sorted by place, and
    the notes about what was skipped or could not be read. A path that does not exist
    raises FileNotFoundError."""
    scanner = _Scanner()
    for path in paths:
        scanner.top(Path(path))
    report = scanner.report
    report.findings.sort(key=lambda f: (f.file, f.line, f.rule))
    return report


def scan_paths(paths: list[str | os.PathLike]) -> list[Finding]:
    """Every finding in the given files and folders (recursively), sorted by place."""
    return scan(paths).findings


class _Scanner:
    def __init__(self) -> None:
        self.report = Report()
        self.files: set[tuple[int, int]] = set()
        self.dirs: set[tuple[int, int]] = set()

    def note(self, path: Path | str, text: str, unscanned: bool = False) -> None:
        self.report.notes.append(Note(_display(path), text, unscanned))

    def top(self, path: Path) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if not os.path.lexists(path):
                raise FileNotFoundError(path) from None
            self.note(path, f"a symlink to {_link(path)}, which does not exist; not scanned",
                      unscanned=True)
            return
        except OSError as exc:
            self.note(path, _stat_failure(exc), unscanned=True)
            return
        if stat.S_ISDIR(st.st_mode):
            self.tree(path, st)
        elif stat.S_ISREG(st.st_mode):
            self.file(path, st)
        else:
            self.note(path, "not a regular file; not scanned", unscanned=True)

    def tree(self, top: Path, top_st: os.stat_result) -> None:
        """A folder, depth first without recursion; each real folder once."""
        stack: list[tuple[Path, os.stat_result, bool]] = [(top, top_st, False)]
        while stack:
            folder, st, via_link = stack.pop()
            if (st.st_dev, st.st_ino) in self.dirs:
                if via_link:
                    self.note(folder, _revisit(folder))
                continue
            self.dirs.add((st.st_dev, st.st_ino))
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.note(folder, f"folder not scanned: {exc.strerror}", unscanned=True)
                continue
            subdirs = []
            for entry in entries:
                path = Path(entry.path)
                try:
                    is_link = entry.is_symlink()
                    est = os.stat(path)
                except FileNotFoundError:
                    if os.path.islink(path):
                        self.note(path, f"a symlink to {_link(path)}, which does not exist; "
                                  "skipped")
                    continue
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        self.note(path, "symlink loop; skipped")
                    else:
                        self.note(path, _stat_failure(exc), unscanned=True)
                    continue
                if stat.S_ISDIR(est.st_mode):
                    if entry.name not in SKIPPED_DIRS:
                        subdirs.append((path, est, is_link))
                elif stat.S_ISREG(est.st_mode):
                    self.file(path, est)
                # FIFOs, sockets, devices: not hook scripts (and a FIFO would block)
            stack.extend(reversed(subdirs))

    def file(self, path: Path, st: os.stat_result) -> None:
        if (st.st_dev, st.st_ino) in self.files:
            return
        self.files.add((st.st_dev, st.st_ino))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            self.note(path, f"not scanned: {exc.strerror}", unscanned=True)
            return
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat
                self.note(path, "not a regular file; not scanned", unscanned=True)
                return
            os.set_blocking(fd, True)
            f = os.fdopen(fd, "rb")
            fd = -1
            with f:
                self._read(path, f, st)
        except OSError as exc:
            self.note(path, f"not scanned to the end: {exc.strerror or exc}", unscanned=True)
        finally:
            if fd >= 0:
                os.close(fd)

    def _read(self, path: Path, f, st: os.stat_result) -> None:
        if b"\0" in f.peek(BINARY_SNIFF)[:BINARY_SNIFF]:
            self.note(path, "binary file, not scanned")
            return
        name = _display(path)
        decode = _Decoder()
        if path.suffix == ".json" and st.st_size <= MAX_SETTINGS_BYTES:
            text = decode(f.read(), final=True).removeprefix("\ufeff")
            self._note_decoding(path, decode)
            settings = _parse_settings(text)
            if settings is not None:
                self._settings(path, name, text, settings)
            else:
                self.report.findings += scan_text(name, text)
            return
        if path.suffix == ".json":
            self.note(path, f"larger than {_size(MAX_SETTINGS_BYTES)}: scanned as text, "
                      "not read as settings")
        lines = _Lines(name, self.report.findings)
        number = long_lines = 0
        while chunk := _read_chunk(f, MAX_LINE_BYTES):
            number += 1
            if chunk.endswith(b"\n") or len(chunk) < MAX_LINE_BYTES:
                text = decode(_without_eol(chunk), final=True)
                lines.feed(number, text.removeprefix("\ufeff") if number == 1 else text)
            else:
                long_lines += 1
                lines.feed_pieces(number, _pieces(f, chunk, decode))
        lines.finish()
        self._note_decoding(path, decode)
        if long_lines:
            self.note(path, f"{long_lines} line{'s' if long_lines > 1 else ''} longer than "
                      f"{_size(MAX_LINE_BYTES)}: scanned in pieces (comments still skipped; a "
                      f"pattern spread over more than {PIECE_OVERLAP} characters across a "
                      "piece boundary, and loops, are not seen there)")

    def _note_decoding(self, path: Path, decode: _Decoder) -> None:
        if decode.bad:
            self.note(path, "not valid UTF-8: undecodable bytes replaced, the rest scanned")

    def _settings(self, path: Path, name: str, text: str, settings: dict) -> None:
        found = self.report.findings
        lines = _string_lines(text)
        for command in _hook_commands(settings):
            line = lines.get(command, 1)
            found += [Finding(name, line, rule, _shown(rule, command), FIXES[rule])
                      for rule, matches in LINE_RULES if matches(command)]
            for script in _scripts_named(command, path):
                try:
                    st = os.stat(script)
                except (OSError, ValueError):
                    continue
                if stat.S_ISREG(st.st_mode):
                    self.file(script, st)
        keys = set()
        env = settings.get("env")
        if isinstance(env, dict):
            for key, value in env.items():
                if isinstance(value, str) and API_KEY.search(f"{key}={value}"):
                    line = lines.get(value, 1)
                    keys.add(line)
                    found.append(Finding(name, line, "clear-api-key",
                                         _clean(f'"{key}": "{_redact(value)}"'),
                                         FIXES["clear-api-key"]))
        found += [f for f in scan_text(name, text)
                  if f.rule == "clear-api-key" and f.line not in keys]


def _read_chunk(f, size: int) -> bytes:
    """The next line of `f`, or its next `size` bytes when the line is longer."""
    return f.readline(size)


def _pieces(f, first: bytes, decode: _Decoder) -> Iterator[str]:
    """The pieces of a line longer than MAX_LINE_BYTES, decoded, the first being `first`."""
    chunk = first
    while True:
        last = chunk.endswith(b"\n") or len(chunk) < MAX_LINE_BYTES
        yield decode(_without_eol(chunk) if last else chunk, final=last)
        if last:
            return
        chunk = _read_chunk(f, MAX_LINE_BYTES)


def _without_eol(chunk: bytes) -> bytes:
    if chunk.endswith(b"\n"):
        chunk = chunk[:-1]
    return chunk[:-1] if chunk.endswith(b"\r") else chunk


class _Decoder:
    """UTF-8, incrementally (a piece may end inside a character); from the first invalid
    byte on, with replacement characters, and `bad` says so."""

    def __init__(self) -> None:
        self.bad = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def __call__(self, data: bytes, final: bool) -> str:
        if not self.bad:
            state = self._decoder.getstate()
            try:
                return self._decoder.decode(data, final)
            except UnicodeDecodeError:
                self.bad = True
                self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
                self._decoder.setstate(state)
        return self._decoder.decode(data, final)


def _stat_failure(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop; not scanned"
    return f"not scanned: {exc.strerror}"


def _revisit(folder: Path) -> str:
    real = os.path.realpath(folder)
    above = os.path.realpath(folder.parent)
    if os.path.commonpath([real, above]) == real:
        return f"symlink loop: it leads back to {_display(real)}; not followed"
    return f"a symlink to {_display(real)}, a folder already scanned; not scanned twice"


def _link(path: Path) -> str:
    try:
        return _display(os.readlink(path))
    except OSError:
        return "?"


def _size(n: int) -> str:
    return f"{n // 1048576} MiB" if n % 1048576 == 0 else f"{n // 1024} KiB"


# --- the rules over one file's lines ---------------------------------------------------

def scan_text(name: str, text: str) -> list[Finding]:
    """The findings in one script's text."""
    found: list[Finding] = []
    lines = _Lines(name, found)
    for number, line in enumerate(_split_lines(text), 1):
        lines.feed(number, line)
    lines.finish()
    return found


def _split_lines(text: str) -> list[str]:
    """Lines as editors count them: split at \\n (a \\r before it dropped)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


class _Lines:
    """The rules over one file, fed a line at a time: nothing is kept of a line once it
    is checked but the headers of the endless loops still open.

    An endless loop is reported when its body (to its `done`, or the end of its indented
    block in Python, or the end of the file) never sleeps or waits. With a stack of open
    loops and the number of the last line that pauses, each line is handled once: a loop
    paused when that line falls inside it."""

    def __init__(self, name: str, found: list[Finding]):
        self.name = name
        self.found = found
        self.base = Path(name).name
        base = re.escape(self.base)
        self.self_call = re.compile(rf"(?:/|\b(?:bash|sh|zsh|exec|python3?|source)\s+|^\s*)"
                                    rf"{base}(?=[\s\"';&|)`]|$)")
        self.shell_loops: list[tuple[int, int, str]] = []   # (line, depth before it, header)
        self.python_loops: list[tuple[int, int, str]] = []  # (line, indent, header)
        self.depth = 0        # `do`s minus `done`s so far
        self.last_pause = 0   # the last line that sleeps, waits, reads, breaks... (0: none)

    def feed(self, number: int, line: str) -> None:
        code = _strip_comment(line)
        self._rules(number, line, code)
        if self._calls_itself(code):
            self._add(number, "self-reexec", line)
        self._loops(number, line, code)

    def feed_pieces(self, number: int, pieces: Iterator[str]) -> None:
        """A line too long to hold, piece by piece: the comment state carries over, each
        rule is matched on a piece and the end of the one before; the self-call and loop
        rules see the first piece."""
        quote, before, tail, matched = None, " ", "", set()
        for index, piece in enumerate(pieces):
            if quote == "#":
                continue  # the rest of the line is a comment; read on to its end
            code, quote = _strip_piece(piece, quote, before)
            text = tail + code
            for rule, matches in LINE_RULES:
                if rule not in matched and matches(text):
                    matched.add(rule)
                    self._add(number, rule, text)
            if index == 0:
                if self._calls_itself(code):
                    self._add(number, "self-reexec", piece)
                self._loops(number, piece, code)
            tail = code[-PIECE_OVERLAP:]
            before = piece[-1:] or before

    def _calls_itself(self, code: str) -> bool:
        """A script that runs itself through its own path (`/path/hook.sh`, `bash hook.sh`)."""
        return (self.base in code and bool(self.self_call.search(code))
                and not _self_exec(code) and not _ECHO.match(code))

    def _rules(self, number: int, line: str, code: str) -> None:
        for rule, matches in LINE_RULES:
            if matches(code):
                self._add(number, rule, line)

    def _add(self, number: int, rule: str, line: str) -> None:
        self.found.append(Finding(self.name, number, rule, _shown(rule, line), FIXES[rule]))

    def _loops(self, number: int, line: str, code: str) -> None:
        if self.python_loops and code.strip():
            indent = len(code) - len(code.lstrip())
            while self.python_loops and self.python_loops[-1][1] >= indent:
                self._close(self.python_loops.pop())
        if ENDLESS_LOOP.search(code):
            header = _shown("busy-restart-loop", line)
            if code.rstrip().endswith(":"):  # Python: the indented block
                self.python_loops.append((number, len(code) - len(code.lstrip()), header))
            else:
                self.shell_loops.append((number, self.depth, header))
        if not (self.shell_loops or self.python_loops):
            return
        if _PAUSES.search(code):
            self.last_pause = number
        if self.shell_loops and "do" in code:
            done = False
            for word in _DO_DONE.finditer(code):
                if word.group(1):
                    self.depth -= 1
                    done = True
                else:
                    self.depth += 1
            while done and self.shell_loops and self.shell_loops[-1][1] >= self.depth:
                self._close(self.shell_loops.pop())

    def _close(self, loop: tuple[int, int, str]) -> None:
        start, _, header = loop
        if self.last_pause < start:
            self.found.append(Finding(self.name, start, "busy-restart-loop", header,
                                      FIXES["busy-restart-loop"]))

    def finish(self) -> None:
        """The end of the file closes every loop still open."""
        for loop in sorted(self.shell_loops + self.python_loops):
            self._close(loop)
        self.shell_loops, self.python_loops = [], []


def _shown(rule: str, line: str) -> str:
    """The line as reported, cut to MAX_SHOWN characters: a secret is shown only by its
    first characters."""
    if rule == "clear-api-key":
        line = re.sub(r"(sk-ant-|[=:]\s*[\"']?)([A-Za-z0-9_\-]{20,})",
                      lambda m: m.group(1) + _redact(m.group(2)), line)
    else:
        line = re.sub(r"sk-ant-([A-Za-z0-9_-]{16,})", lambda m: "sk-ant-" + _redact(m.group(1)),
                      line)
    if len(line) > MAX_SHOWN:
        line = line[:MAX_SHOWN] + "…"
    return _clean(line)


def _redact(secret: str) -> str:
    return secret[:6] + "…"


_QUOTE_OR_HASH = re.compile(r"[\"'#]")


def _strip_comment(line: str) -> str:
    """Drop a shell/Python comment (a `#` at the start or after whitespace, outside quotes)."""
    if "#" not in line:
        return line
    return _strip_piece(line, None, " ")[0]


def _strip_piece(piece: str, quote: str | None, before: str) -> tuple[str, str | None]:
    """`piece` without its comment, and the state at its end: None, the open quote, or "#"
    (a comment runs on). `before`: the character before the piece (" " at a line start)."""
    for m in _QUOTE_OR_HASH.finditer(piece):
        ch, i = m.group(), m.start()
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif (piece[i - 1] if i else before).isspace():
            return piece[:i], "#"
    return piece, quote


def _parse_settings(text: str) -> dict | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) and ("hooks" in data or "env" in data) else None


def _hook_commands(settings: dict) -> Iterator[str]:
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return
    for groups in hooks.values():
        for group in groups if isinstance(groups, list) else []:
            for hook in (group.get("hooks") or []) if isinstance(group, dict) else []:
                if isinstance(hook, dict) and isinstance(hook.get("command"), str):
                    yield hook["command"]


def _scripts_named(command: str, settings_path: Path) -> Iterator[Path]:
    """The paths a hook command names (relative ones from the project, where Claude Code
    runs hooks)."""
    project = settings_path.parent.parent
    for word in re.findall(r"""[^\s;&|]+""", command.replace('"', "").replace("'", "")):
        if "/" not in word or "\0" in word:
            continue
        word = word.replace("$CLAUDE_PROJECT_DIR", str(project)).replace(
            "${CLAUDE_PROJECT_DIR}", str(project))
        try:
            candidate = Path(word).expanduser()
        except RuntimeError:  # ~user with no such user
            continue
        yield candidate if candidate.is_absolute() else project / candidate


_JSON_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')


def _string_lines(text: str) -> dict[str, int]:
    """Every string in a JSON text, decoded, and the line it first appears on: one pass
    (looking each command up from the top of the file was quadratic)."""
    found: dict[str, int] = {}
    line, at = 1, 0
    for m in _JSON_STRING.finditer(text):
        line += text.count("\n", at, m.start())
        at = m.start()
        literal = m.group()
        if "\\" in literal:
            try:
                value = json.loads(literal)
            except ValueError:
                continue
        else:
            value = literal[1:-1]
        found.setdefault(value, line)
    return found


def _display(path: Path | str) -> str:
    """A path as text that can always be printed (undecodable bytes escaped)."""
    return _clean(os.fspath(path))


def _clean(text: str) -> str:
    """`text` with lone surrogates (undecodable file names, `\\ud800` in JSON) escaped."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _printable(text: str) -> str:
    """Terminal control and bidi characters (from a hostile file) made visible."""
    from torchsm.terminal import printable

    return printable(text, multiline=False)

