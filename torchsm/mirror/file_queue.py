"""The file queue of one stream: `HOME/queue/STREAM.jsonl`, one JSON object a line.

Appends come from many processes. Each line goes out in one `os.write` on an O_APPEND
descriptor, so concurrent appends never tear or interleave; the mirror also holds its lock
around appends, which is what keeps them in order.

Replay reads from a saved byte offset (`STREAM.jsonl.offset`) and moves it forward only
after a batch is in the stream. A replay killed halfway resumes from the last saved offset;
the entries it sends again are recognised by the server as already mirrored. Once every
line is replayed the file is emptied: the offset is removed first, so a crash between the
two steps means replaying again (harmless), never skipping lines appended later.

Lines that are not valid entries go to `STREAM.jsonl.rejected`, untouched.
"""

from __future__ import annotations

import os

from torchsm.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from pathlib import Path

FILE_MODE = 0o600
# read as well as append: the torn-line check reads the last byte
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT


@record
class Batch:
    """Lines read from the queue; `end` is the offset just past the last one."""

    lines: list[bytes]
    end: int


class FileQueue:
    """The queued lines of one stream, in append order."""

    def __init__(self, directory: Path, stream: str):
        self.path = directory / f"{stream}.jsonl"
        self.offset_path = directory / f"{stream}.jsonl.offset"
        self.rejected_path = directory / f"{stream}.jsonl.rejected"

    def append(self, line: bytes) -> None:
        """Append one line (without its newline). Callers hold the mirror lock."""
        if b"\n" in line:
            raise ValueError("a queue line cannot contain a newline")
        fd = _open_append(self.path)
        try:
            data = line + b"\n"
            if not _ends_with_newline(fd):
                # A crash mid-write left a torn last line; start ours on a line of its own
                # so the torn one is rejected alone and this entry survives.
                data = b"\n" + data
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
        finally:
            os.close(fd)

    def has_pending(self) -> bool:
        """True when some line has not been replayed yet (two stats, no read)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        return size > 0 and size > self.replayed_offset(size)

    def replayed_offset(self, size: int | None = None) -> int:
        """Where replay resumes. An offset past the end (a crash while emptying the file)
        counts as 0: replaying twice is harmless, skipping is not."""
        try:
            offset = int(self.offset_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0
        if size is None:
            size = self.path.stat().st_size if self.path.exists() else 0
        return offset if 0 <= offset <= size else 0

    def pending_count(self) -> int:
        """How many lines wait to be replayed (reads the unreplayed part of the file)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.replayed_offset())
                return sum(1 for line in f if line.strip())
        except FileNotFoundError:
            return 0

    def read_batch(self, max_lines: int) -> Batch:
        """Up to `max_lines` non-blank lines from the replay offset."""
        start = self.replayed_offset()
        lines: list[bytes] = []
        end = start
        try:
            with self.path.open("rb") as f:
                f.seek(start)
                while len(lines) < max_lines:
                    line = f.readline()
                    if not line:
                        break
                    end += len(line)
                    if line.strip():
                        lines.append(line.rstrip(b"\n"))
        except FileNotFoundError:
            pass
        return Batch(lines, end)

    def mark_replayed(self, offset: int) -> None:
        """Save the replay offset (atomically: a reader sees the old or the new one)."""
        tmp = self.offset_path.with_name(self.offset_path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(fd, str(offset).encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.offset_path)

    def empty_if_replayed(self, replayed_to: int | None = None) -> bool:
        """Empty the file when every line is replayed (up to its saved offset, or to
        `replayed_to`); True when it is (now) empty."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            self.offset_path.unlink(missing_ok=True)
            return True
        if max(self.replayed_offset(size), replayed_to or 0) < size:
            if replayed_to:
                self.mark_replayed(replayed_to)
            return False
        self.offset_path.unlink(missing_ok=True)
        os.truncate(self.path, 0)
        return True

    def reject(self, lines: list[bytes]) -> None:
        """Move corrupt lines aside, as they were."""
        if not lines:
            return
        fd = _open_append(self.rejected_path)
        try:
            os.write(fd, b"".join(line + b"\n" for line in lines))
        finally:
            os.close(fd)

    def rejected_count(self) -> int:
        try:
            with self.rejected_path.open("rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0


def _open_append(path: Path) -> int:
    try:
        return os.open(path, _APPEND_FLAGS, FILE_MODE)
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(path, _APPEND_FLAGS, FILE_MODE)


def _ends_with_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"
