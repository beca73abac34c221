"""`queue import`: legacy flat-file queues and JSONL, parsed into work items.

A line starting with `{` is JSONL (`{"text": ..., "nova": ..., "priority": ...}`); any other
line is one legacy item, and `WORK_PROCESSED: text` keeps its text.

Safe twice, by content: every line gets a key from its content and its occurrence in the
file (the second `same` line is another item than the first), never from the file's path.
So importing the file again, a copy, a moved file or the same lines through a pipe adds
only lines not imported before; a line that some other file already brought in counts as
imported too. Items imported by earlier versions, which keyed by path, are recognised by
their old key as well.

The file may be a pipe or a FIFO (`queue import /dev/stdin`); at most
user_files.MAX_READ_BYTES of it are read (/dev/zero is one clear line, not all memory).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from torchsm import user_files
from torchsm.config import MAX_COUNT
from torchsm.errors import ImportFailed, UserFileError
from torchsm.tiers import Tier

LEGACY_DONE_PREFIX = "WORK_PROCESSED:"
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class ImportReport:
    path: str
    added: int = 0
    duplicates: int = 0  # already imported by an earlier run
    blank: int = 0
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def as_json(self) -> dict[str, Any]:
        return {"file": self.path, "added": self.added, "duplicates": self.duplicates,
                "blank": self.blank,
                "malformed": [{"line": n, "error": why} for n, why in self.malformed]}


@dataclass(frozen=True)
class _ParsedLine:
    text: str
    nova: str | None
    priority: Tier
    max_attempts: int | None
    source_key: str
    path_key: str  # the key earlier versions gave the line (by the file's path)



def read_import_file(path: Path) -> list[bytes]:
    """The file's lines as bytes, or ImportFailed when it cannot be read or is not text."""
    try:
        data = user_files.read(path, streams=True)
    except FileNotFoundError as exc:
        raise ImportFailed(f"cannot read {path}: {exc.strerror}") from None
    except UserFileError as exc:  # a folder, a socket, more than MAX_READ_BYTES
        raise ImportFailed(exc.message) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFailed(f"{path} is UTF-16 text: torchsm imports UTF-8 (convert it, e.g. "
                           f"`iconv -f UTF-16 -t UTF-8`)")
    if b"\0" in data:
        line = data[:data.index(b"\0")].count(b"\n") + 1
        raise ImportFailed(f"{path} is not a text file (NUL byte on line {line})")
    # a UTF-8 byte order mark (Windows editors write one) is not part of the first line
    return data.removeprefix(UTF8_BOM).splitlines()


def parse_import_lines(lines: list[bytes], source: str, known_novas: set[str],
                       report: ImportReport) -> Iterator[_ParsedLine]:
    """Each importable line as an item; blank and malformed lines are counted in `report`.

    A line starting with `{` is JSONL (`{"text": ..., "nova": ..., "priority": ...}`);
    any other line is one legacy item, and `WORK_PROCESSED: text` keeps its text."""
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        try:
            content = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            report.malformed.append((number, "not valid UTF-8"))
            continue
        if not content:
            report.blank += 1
            continue
        # The nth occurrence of the same content is a distinct item: two identical lines
        # stay two items, and a rerun maps each to the key it had before.
        seen[content] = seen.get(content, 0) + 1
        keys = _source_key(content, seen[content]), _path_key(source, content, seen[content])
        try:
            yield _parse_line(content, known_novas, *keys)
        except ValueError as exc:
            report.malformed.append((number, str(exc)))


def _parse_line(content: str, known_novas: set[str], *keys: str) -> _ParsedLine:
    if content.startswith("{"):
        return _parse_json_line(content, known_novas, *keys)
    text = content
    if text.startswith(LEGACY_DONE_PREFIX):
        text = text[len(LEGACY_DONE_PREFIX):].strip()
        if not text:
            raise ValueError(f"{LEGACY_DONE_PREFIX} without text")
    return _ParsedLine(text, None, Tier.MEDIUM, None, *keys)


def _parse_json_line(content: str, known_novas: set[str], *keys: str) -> _ParsedLine:
    try:
        record = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise ValueError("not valid JSON: arrays or objects nested too deeply") from None
    if not isinstance(record, dict):
        raise ValueError("a JSON line must be an object")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('"text" must be a non-empty string')
    return _ParsedLine(text.strip(), _json_nova(record, known_novas),
                       _json_priority(record), _json_max_attempts(record), *keys)


def _json_nova(record: dict, known_novas: set[str]) -> str | None:
    nova = record.get("nova")
    if nova is None:
        return None
    if not isinstance(nova, str) or nova not in known_novas:
        raise ValueError(f"no Nova named {nova!r}")
    return nova


def _json_priority(record: dict) -> Tier:
    priority = record.get("priority")
    if priority is None:
        return Tier.MEDIUM
    try:
        return Tier(priority)
    except ValueError:
        raise ValueError(f"unknown priority {priority!r}") from None


def _json_max_attempts(record: dict) -> int | None:
    attempts = record.get("max_attempts")
    if attempts is None:
        return None
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not (
            1 <= attempts <= MAX_COUNT):
        raise ValueError(f'"max_attempts" must be a whole number from 1 to {MAX_COUNT}')
    return attempts


def _source_key(content: str, occurrence: int) -> str:
    """The line's key: its content and occurrence, wherever the file is."""
    return _path_key("content:", content, occurrence)


def _path_key(source: str, content: str, occurrence: int) -> str:
    """The key of earlier versions, by the file's resolved path (which starts with `/`:
    it never equals a content key)."""
    return hashlib.sha256(f"{source}\0{occurrence}\0{content}".encode()).hexdigest()
