"""torchsm.toml's parsed copy: the file is parsed once per change, not on every call.

Every hook call reads the config, and parsing TOML was the dearest part of a hook's start:
tomllib imports `typing` and `string` and compiles its regexes, about as much as all of
torchsm's own modules (BENCHMARKS.md). So the parsed document is kept beside the file,
as JSON (which the hook path loads anyway), in HOME/torchsm.toml.parsed.json, with the
exact text it was parsed from. A text that differs in any way is parsed again and the copy
replaced, so an edit counts at the next call whatever the file's times say. The config is
validated from the copy as from the file; the copy only saves the parse.

Only what JSON gives back unchanged is copied (a TOML date is not). A copy that cannot be
read or written (a read-only home, anything but a regular file) is ignored: the file is
parsed, as before the copy existed. Deleting the copy is always safe.
"""

from __future__ import annotations

import json
import os
import stat

COPY_NAME = "torchsm.toml.parsed.json"
FORMAT = 1  # raise it when the copy's layout changes: an older copy is then parsed again
MAX_BYTES = 1 << 20  # a copy larger than this is not torchsm's
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)  # a FIFO never blocks
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)


def copy_path(config_file: str) -> str:
    return os.path.join(os.path.dirname(config_file), COPY_NAME)


def parsed_copy(config_file: str, text: str) -> dict | None:
    """What `text` (the config file's content) parses to, when the copy holds it; else None."""
    saved = _load(copy_path(config_file))
    if (not isinstance(saved, dict) or saved.get("format") != FORMAT
            or saved.get("text") != text or not isinstance(saved.get("parsed"), dict)):
        return None
    return saved["parsed"]


def _load(path: str) -> object:
    """The copy's JSON, or None when there is no readable, regular, sane copy."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(MAX_BYTES + 1)
        return json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def keep_parsed(config_file: str, text: str, parsed: dict) -> None:
    """Replace the copy with `parsed`, the document `text` parses to, when JSON holds it
    unchanged; atomically (readers see the old copy or the new one), or not at all."""
    try:
        data = json.dumps({"format": FORMAT, "text": text, "parsed": parsed})
        if json.loads(data)["parsed"] != parsed:  # NaN is not equal to itself
            return
    except (TypeError, ValueError, RecursionError):  # a date or time: JSON has none
        return
    _write_atomically(copy_path(config_file), data.encode(), config_file)


def _write_atomically(path: str, data: bytes, config_file: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, _WRITE_FLAGS, 0o600)
        try:
            _same_owner(fd, config_file)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _same_owner(fd: int, config_file: str) -> None:
    """root writing a user's home leaves the copy to the config file's owner, who runs the
    hooks and may then read it."""
    if os.geteuid() != 0:
        return
    owner = os.stat(config_file)
    os.fchown(fd, owner.st_uid, owner.st_gid)
