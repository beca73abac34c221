"""HOME/log/NAME.log: what a Nova's agent printed, stdout and stderr, session by session.

Written as it comes: every block of complete lines the supervisor reads goes to the file
at once, unbuffered, so `tail -f` (or `torchsm logs -f`) shows a session while it runs.
Each session's part opens with a line torchsm writes, `=== session ID ...`, and closes
with `=== session ID ended ...`; the recovery adds `=== session ID after its supervisor
died ...` before what an orphaned agent wrote. A line of the agent's own that begins with
`===` is written with one space before it, so no agent can forge a session's bounds.

Past `[logs] max_bytes` the file is rotated between two lines: NAME.log becomes
NAME.log.1, NAME.log.1 becomes NAME.log.2, ..., and what is past NAME.log.KEEP goes. One
process writes a Nova's log at a time (its supervisor, or whoever recovers after it,
holding the Nova's lock). Readers read the kept files oldest first, and a follower that
finds NAME.log replaced reads the old file to its end before it opens the new one.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from torchsm.config import Config, Home, LogsConfig
from torchsm.terminal import printable

MARK = "=== session "
ENDED = "ended"
FOLLOW_POLL_S = 0.25


def log_path(home: Home, name: str) -> Path:
    return home.log_dir / f"{name}.log"


class AgentLog:
    """The writer of Nova `name`'s log; thread-safe (the agent's stdout and stderr are
    read on two threads)."""

    def __init__(self, home: Home, name: str, settings: LogsConfig):
        home.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path, self.settings = log_path(home, name), settings
        self._lock = threading.Lock()
        self._fd = self._open()

    def header(self, session_id: int, text: str) -> None:
        """Open session `session_id`'s part; `text` (times, what it is for) may quote
        anyone's words, so it is made one visible line."""
        self._write(f"{MARK}{session_id} {printable(text, multiline=False)}\n")

    def footer(self, session_id: int, text: str) -> None:
        self._write(f"{MARK}{session_id} {ENDED} {printable(text, multiline=False)}\n")

    def write(self, text: str) -> None:
        """Complete lines the agent printed (a last line without its newline gets one)."""
        if not text:
            return
        text = text if text.endswith("\n") else text + "\n"
        self._write(("\n" + text).replace("\n===", "\n ===")[1:])

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", errors="replace")
        with self._lock:
            size = os.fstat(self._fd).st_size
            if size and size + len(data) > self.settings.max_bytes:
                os.close(self._fd)
                rotate(self.path, self.settings.keep)
                self._fd = self._open()
            _write_all(self._fd, data)

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> "AgentLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rotate(path: Path, keep: int) -> None:
    """NAME.log -> NAME.log.1 -> ... -> NAME.log.KEEP; the oldest goes."""
    old = [Path(f"{path}.{n}") for n in range(1, keep + 1)]
    if old:
        for newer, older in zip(reversed(old[:-1]), reversed(old[1:])):
            _move(newer, older)
        _move(path, old[0])
    else:
        path.unlink(missing_ok=True)


def _move(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except FileNotFoundError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def exit_words(exit_status: int | None) -> str:
    """An agent's exit status (negative: the signal that killed it) for a footer."""
    if exit_status is None:
        return "no exit status recorded"
    return f"exit {exit_status}" if exit_status >= 0 else f"killed by signal {-exit_status}"


# --- reading --------------------------------------------------------------------------------

def open_current(home: Home, name: str) -> IO[bytes] | None:
    """NAME.log open for reading, or None when the Nova has no log yet."""
    try:
        return open(log_path(home, name), "rb")
    except FileNotFoundError:
        return None


def old_files(home: Home, name: str) -> list[Path]:
    """The rotated files NAME.log.N that are there, oldest (highest N) first."""
    prefix = f"{name}.log."
    numbers = [int(p.name[len(prefix):]) for p in home.log_dir.glob(f"{prefix}*")
               if p.name[len(prefix):].isdigit()]
    return [home.log_dir / f"{prefix}{n}" for n in sorted(numbers, reverse=True)]


def kept_lines(home: Home, name: str, current: IO[bytes] | None = None) -> Iterator[str]:
    """Every line kept of Nova `name`'s log, oldest first. With `current` (open_current),
    NAME.log is read through it, which is then at the end of what was read: a follower
    goes on from there."""
    for path in old_files(home, name):
        try:
            with open(path, "rb") as f:
                yield from _decoded(f)
        except FileNotFoundError:
            continue  # rotated away meanwhile
    if current is not None:
        yield from _decoded(current)
    else:
        with open_current(home, name) or open(os.devnull, "rb") as f:
            yield from _decoded(f)


def _decoded(f: IO[bytes]) -> Iterator[str]:
    for line in iter(f.readline, b""):
        yield line.decode("utf-8", errors="replace")


def follow(home: Home, name: str, current: IO[bytes] | None, *,
           stop: Callable[[], bool] = lambda: False,
           poll_s: float = FOLLOW_POLL_S) -> Iterator[str]:
    """The lines written to Nova `name`'s log after `current`'s position, as they come,
    until `stop()`; across rotations (like `tail -F`), and from the first line of a log
    that did not exist yet (`current` None). A last line still being written is held
    back until its newline comes."""
    pending = b""
    while not stop():
        chunk = current.readline() if current is not None else b""
        if chunk:
            pending += chunk
            if pending.endswith(b"\n"):
                yield pending.decode("utf-8", errors="replace")
                pending = b""
        elif _replaced(log_path(home, name), current):
            if current is not None:  # what was written to it before it was replaced
                yield from _decoded(io.BytesIO(pending + current.read()))
                pending = b""
            current = _next_file(home, name, current)
        else:
            time.sleep(poll_s)
    if current is not None:
        current.close()


def _next_file(home: Home, name: str, done: IO[bytes] | None) -> IO[bytes] | None:
    """The file written after `done` (which is closed) once it was rotated: the one just
    newer than where it is now (NAME.log.K -> NAME.log.K-1), so that a follower that
    lags two rotations behind loses nothing; else NAME.log."""
    if done is None:
        return open_current(home, name)
    inode = os.fstat(done.fileno()).st_ino
    done.close()
    files = old_files(home, name) + [log_path(home, name)]
    for older, newer in zip(files, files[1:]):
        if _inode(older) == inode:
            with contextlib.suppress(FileNotFoundError):
                return open(newer, "rb")
    return open_current(home, name)


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _replaced(path: Path, current: IO[bytes] | None) -> bool:
    """Whether `path` names another file than `current` now (a rotation, or a first log)."""
    try:
        found = os.stat(path).st_ino
    except FileNotFoundError:
        return False
    return current is None or found != os.fstat(current.fileno()).st_ino


def check_session(home: Home, config: Config, name: str, session_id: int | None) -> None:
    """NovaNotFound unless Nova `name` exists; SessionNotFound unless session
    `session_id` (when given) was one of its sessions."""
    from torchsm.errors import SessionNotFound
    from torchsm.names import check_name
    from torchsm.storage import store
    from torchsm.usage import ledger

    def check(conn) -> None:
        nova = store.nova_named(conn, check_name(name))
        if session_id is not None and ledger.nova_of(conn, session_id) != nova.id:
            raise SessionNotFound(session_id, name)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        db.read(check)


# --- one session's part -----------------------------------------------------------------------

def marked_session(line: str) -> tuple[int, bool] | None:
    """(session id, whether it ends it) of a line torchsm wrote; None for the agent's."""
    if not line.startswith(MARK):
        return None
    words = line[len(MARK):].split(maxsplit=2)
    if not words or not words[0].isdigit():
        return None
    return int(words[0]), len(words) > 1 and words[1] == ENDED


class SessionFilter:
    """Which lines belong to one session: from any line torchsm marked with its id to its
    footer, or to the next mark of another session (a session whose supervisor died has
    no footer until the recovery writes one)."""

    def __init__(self, session_id: int):
        self.session_id = session_id
        self.inside = self.ended = False

    def keeps(self, line: str) -> bool:
        mark = marked_session(line)
        if mark is None:
            return self.inside
        session_id, ends = mark
        self.inside = session_id == self.session_id and not ends
        if session_id == self.session_id:
            self.ended = ends
            return True
        return False


def session_part(lines: Iterable[str], session_id: int) -> Iterator[str]:
    chosen = SessionFilter(session_id)
    return (line for line in lines if chosen.keeps(line))


def last(lines: Iterable[str], count: int | None) -> list[str]:
    """The last `count` lines (all with None)."""
    return list(lines) if count is None else list(collections.deque(lines, maxlen=count))


TAIL_BYTES = 64 * 1024  # read of each file's end for a tail: 20 lines fit many times over


def tail(home: Home, name: str, count: int) -> list[str]:
    """The last `count` lines kept of Nova `name`'s log, from the ends of its files,
    newest file first, until enough: a log keeps up to (keep + 1) x max_bytes (80 MiB by
    default) and the dashboard shows a tail of each Nova's on every page."""
    lines: list[str] = []
    for path in [log_path(home, name), *reversed(old_files(home, name))]:
        lines = _end_lines(path) + lines
        if len(lines) >= count:
            break
    return last(lines, count)


def _end_lines(path: Path) -> list[str]:
    """The whole lines in the last TAIL_BYTES of `path` (none when it is gone)."""
    try:
        with open(path, "rb") as f:
            start = max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES)
            f.seek(start)
            lines = list(_decoded(f))
    except FileNotFoundError:
        return []
    return lines[1:] if start and len(lines) > 1 else lines  # the first may be cut
