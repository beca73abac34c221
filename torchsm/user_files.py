"""Files a user names: `dashboard --out FILE`, the .claude/settings.json of `hooks
install`, the unit file of `service install`, `queue import FILE`, what `doctor` reads.
One set of rules for all of them, so that no command replaces what a path turns out to be:

- a symlink is written through to the file it leads to, and the link stays; a link that
  leads nowhere, or loops, is refused;
- a regular file is replaced atomically (a temp file beside it, fsync, rename, fsync of
  the folder), keeping its mode and owner unless the caller says otherwise; a read-only
  file is refused, and so is one that changed since it was looked at;
- a FIFO or a character device (/dev/null, a terminal) is written in place, as a stream,
  the way the shell's `>` writes it, where the command takes streams; else it is refused;
- a folder, a socket or a block device is refused: never replaced, never written into.

Reading is bounded (MAX_READ_BYTES) and, unless the command takes streams, only of a
regular file, opened without blocking: a FIFO nobody writes to is refused, not waited on.
Every failure is one UserFileError line that names the path.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

from torchsm.errors import (FileChangedMeanwhile, FileUnreadable, FileUnwritable,
                            UserFileError)

MAX_READ_BYTES = 64 * 1024 * 1024
NOT_CHANGED = "nothing was changed"
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}
_STREAMS = (stat.S_IFIFO, stat.S_IFCHR)
_NOT_BY_OTHERS = ~0o022 & 0o777


class Destination(NamedTuple):
    """Where a write to the path a user named goes, as found just before writing."""

    named: Path  # the path as the user gave it
    target: Path  # `named`, or the regular file its symlinks lead to
    found: os.stat_result | None  # the target as it was; None: it does not exist yet

    @property
    def is_stream(self) -> bool:
        """A FIFO or character device: written in place, never replaced."""
        return self.found is not None and stat.S_IFMT(self.found.st_mode) in _STREAMS


def destination(path: Path, *, streams: bool = False) -> Destination:
    """Look at `path` before writing it: follow its symlinks, and refuse what must not be
    written (see the module's rules). `streams`: the command may write into a FIFO or a
    character device."""
    found = _stat(path)
    if found is None:
        return Destination(path, path, None)
    kind = stat.S_IFMT(found.st_mode)
    if kind == stat.S_IFREG:
        return Destination(path, _real_path(path), found)
    if streams and kind in _STREAMS:
        return Destination(path, path, found)
    raise UserFileError(f"{path} is {_KINDS.get(kind, 'not a regular file')}, not a file "
                        f"torchsm writes; {NOT_CHANGED}")


def _stat(path: Path) -> os.stat_result | None:
    """What `path` leads to; None when nothing is there (a dangling symlink is refused)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise UserFileError(f"{path} is a symlink to {os.readlink(path)}, which does not "
                                f"exist; create it or remove the link; {NOT_CHANGED}") from None
        return None
    except OSError as exc:
        raise _refusal(path, exc) from None


def _real_path(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path, strict=True))
    except OSError as exc:
        raise _refusal(path, exc) from None


def _refusal(path: Path, exc: OSError) -> UserFileError:
    if exc.errno == errno.ELOOP:
        return UserFileError(f"{path} is a symlink loop; fix the link; {NOT_CHANGED}")
    return UserFileError(f"cannot use {path}: {exc.strerror or exc}; {NOT_CHANGED}")


def write(path: Path, data: bytes, *, new_mode: int = 0o600,
          streams: bool = False) -> Destination:
    """Write `data` to the file a user named: into a FIFO or device as a stream (when
    `streams`), else replacing the regular file atomically, its mode and owner kept (a
    new file gets `new_mode`)."""
    dest = destination(path, streams=streams)
    if dest.is_stream:
        _write_stream(dest, data)
    else:
        replace(dest, data, mode=kept_mode(dest, new_mode))
    return dest


def kept_mode(dest: Destination, new_mode: int) -> int:
    """The existing file's permission bits, or `new_mode` for a new one."""
    return new_mode if dest.found is None else stat.S_IMODE(dest.found.st_mode)


def not_writable_by_others(mode: int) -> int:
    """`mode` without group and world write: for files whose content runs commands."""
    return mode & _NOT_BY_OTHERS


def check_writable(dest: Destination) -> None:
    """Refuse a read-only file (root included): replacing it would ignore its mode."""
    if dest.found is None:
        return
    if not dest.found.st_mode & 0o222 or not os.access(dest.target, os.W_OK):
        raise UserFileError(f"{dest.named} is read-only; make it writable (chmod u+w) or "
                            f"choose another file; {NOT_CHANGED}")


def replace(dest: Destination, data: bytes, *, mode: int,
            owner: tuple[int, int] | None = None) -> None:
    """Replace the regular file (or create it) in one step, with exactly `mode` whatever
    the umask, and `owner` (default: the existing file's owner, when torchsm may give it)."""
    check_writable(dest)
    if owner is None and dest.found is not None:
        owner = (dest.found.st_uid, dest.found.st_gid)
    try:
        _write_atomically(dest.target, data, mode, owner, dest.found)
    except OSError as exc:
        raise FileUnwritable(dest.named, exc.strerror or exc, nothing_changed=True) from None


def _write_stream(dest: Destination, data: bytes) -> None:
    """Write into a FIFO or device as `>` does: no temp file, no truncation, no rename."""
    try:
        fd = os.open(dest.named, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise FileUnwritable(dest.named, exc.strerror) from None
    try:
        if stat.S_IFMT(os.fstat(fd).st_mode) not in _STREAMS:
            raise FileChangedMeanwhile(dest.named, "writing")
        write_all(fd, data)
    except OSError as exc:
        raise FileUnwritable(dest.named, exc.strerror or exc) from None
    finally:
        os.close(fd)


def create_exclusive(path: Path, mode: int, owner: tuple[int, int] | None) -> int:
    """A new file (O_EXCL) with exactly `mode`, given to `owner` where torchsm may."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        _give(fd, owner)
        os.fchmod(fd, mode)  # after chown, which may clear set-id bits; umask plays no part
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return fd


def _give(fd: int, owner: tuple[int, int] | None) -> None:
    info = os.fstat(fd)
    if owner is None or (info.st_uid, info.st_gid) == owner:
        return
    try:
        os.fchown(fd, *owner)  # root writing a user's file, or another group
    except OSError:
        pass  # not ours to give: the file stays the writer's


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_atomically(target: Path, data: bytes, mode: int, owner: tuple[int, int] | None,
                      before: os.stat_result | None) -> None:
    tmp = target.parent / f".{target.name}.torchsm-{os.getpid()}-{time.monotonic_ns()}.tmp"
    fd = create_exclusive(tmp, mode, owner)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _unchanged_since(target, before)
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _sync_folder(target.parent)


def _unchanged_since(target: Path, before: os.stat_result | None) -> None:
    """Refuse to replace a file someone else wrote (or put there) since it was looked at."""
    try:
        now = os.stat(target)
    except FileNotFoundError:
        now = None
    if _identity(now) != _identity(before):
        raise FileChangedMeanwhile(target, "writing")


def _identity(found: os.stat_result | None) -> tuple | None:
    return None if found is None else (found.st_ino, found.st_size, found.st_mtime_ns)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so a rename in it survives a power loss (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(folder: Path, mode: int = 0o755) -> None:
    """Create `folder` and its missing parents with `mode` (less what the umask takes),
    never writable by group or others, even under umask 000."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        os.mkdir(made, mode)
        os.chmod(made, not_writable_by_others(stat.S_IMODE(os.stat(made).st_mode)))


def read(path: Path, *, limit: int = MAX_READ_BYTES, streams: bool = False) -> bytes:
    """The bytes of the file a user named, at most `limit` of them. A FIFO or device is
    read as a stream only when `streams` (else refused, never waited on); a folder or
    socket is refused. FileNotFoundError when there is nothing at `path`; any other
    failure is a UserFileError."""
    fd = _open_for_reading(path, streams)
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise FileUnreadable(path, exc.strerror or exc) from None
    if len(data) > limit:
        raise UserFileError(f"{path} is larger than {_size(limit)}: too large for "
                            "torchsm to read")
    return data


def _open_for_reading(path: Path, streams: bool) -> int:
    flags = os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC | (0 if streams else os.O_NONBLOCK)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FileUnreadable(path, exc.strerror or exc) from None
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind == stat.S_IFREG or (streams and kind in _STREAMS):
        os.set_blocking(fd, True)
        return fd
    os.close(fd)
    raise UserFileError(f"{path} is {_KINDS.get(kind, 'not a regular file')}, not a file "
                        "torchsm reads")


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
