"""What the processes of one home share about the mirror, in HOME/queue/: the lock that
keeps publishing in order (`mirror.lock`), and the memory of the server's last outage
(`outage.json`) and last success (`last-success`).

Every CLI call is a new process: without this memory each one would pay a connect timeout
against a dead server, and without the lock two processes could publish out of the order
in which they committed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from contextlib import contextmanager

from torchsm.mirror import redis_wire
from torchsm.mirror.file_queue import FILE_MODE

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from pathlib import Path
    from typing import Any, Iterator


class MirrorLock:
    """flock on HOME/queue/mirror.lock. Reentrant within one holder, so a publish inside
    a caller's `ordered()` does not deadlock on its own lock."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> "MirrorLock":
        if self._depth == 0:
            self._fd = _open_lock_file(self.path)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)


class MirrorMemory:
    """What the processes of one home remember about the server: the last outage
    (HOME/queue/outage.json, removed on the next success) and the last success."""

    def __init__(self, queue_dir: Path, url: str):
        self.outage_path = queue_dir / "outage.json"
        self.success_path = queue_dir / "last-success"
        self.url = redis_wire.mask_url(url)

    def last_outage(self) -> dict[str, Any] | None:
        """`{"url", "at", "error"}` of the remembered outage of this URL, if any."""
        try:
            outage = json.loads(self.outage_path.read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return outage if isinstance(outage, dict) and outage.get("url") == self.url else None

    def outage_remembered(self, now: float, memory_s: float) -> bool:
        outage = self.last_outage()
        return outage is not None and 0 <= now - float(outage.get("at", 0)) < memory_s

    def record_outage(self, now: float, error: str) -> None:
        with _unless_read_only():
            _write_atomically(self.outage_path, json.dumps(
                {"url": self.url, "at": now, "error": error}).encode())

    def record_success(self, now: float) -> None:
        with _unless_read_only():
            _write_atomically(self.success_path, repr(now).encode())
            self.outage_path.unlink(missing_ok=True)

    def last_success(self) -> float | None:
        try:
            return float(self.success_path.read_text())
        except (FileNotFoundError, ValueError):
            return None


@contextmanager
def _unless_read_only() -> Iterator[None]:
    """Skip writing the memory where the home is read-only: it only saves later calls a
    connect timeout, and reading commands still run in such a home."""
    try:
        yield
    except PermissionError:
        pass
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
