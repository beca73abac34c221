"""`torchsm hooks install`: merge torchsm's hook entries into a project's
.claude/settings.json, keeping everything else that is there.

Idempotent: torchsm's own entries for the Nova are recognised and replaced, never doubled.
Only entries torchsm wrote itself count as its own: the exact command form it writes,
`ABSOLUTE-TORCHSM --home HOME hook EVENT --nova NAME  # managed by torchsm hooks install`
(for StopFailure behind `trap '' TERM HUP; exec `), under the Claude Code event it belongs
to. Earlier versions wrote the same command without the mark; that exact command (this
torchsm, this home) is recognised too. Anything else that mentions torchsm is the user's.

The file is written the way an editor that cares would: atomically (a temp file in the same
folder, fsync, rename), through a symlink to its target (the link stays), with the existing
file's mode and owner (a new file is 0600), never group- or world-writable whatever the
umask, and never over a read-only file. Each change leaves a backup beside the settings
file (`settings.json.torchsm-backup-STAMP`); the newest BACKUPS_KEPT are kept.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import stat
import sys
import time
from pathlib import Path
from typing import Any

from torchsm.errors import TorchsmError

# Claude Code's hook name -> torchsm's kebab-case event
EVENTS = {
    "SessionStart": "session-start",
    "UserPromptSubmit": "user-prompt-submit",
    "PreToolUse": "pre-tool-use",
    "PostToolUse": "post-tool-use",
    "Stop": "stop",
    "StopFailure": "stop-failure",
    "SubagentStop": "subagent-stop",
    "PreCompact": "pre-compact",
    "SessionEnd": "session-end",
    "Notification": "notification",
}
HOOK_TIMEOUT_S = 30
# Claude Code kills the StopFailure hook at once in -p mode; an ignored signal stays
# ignored across exec, so the handler runs to the end (FIELD-NOTES).
SIGNAL_PROOF = {"stop-failure"}
SIGNAL_PROOF_PREFIX = "trap '' TERM HUP; exec "
# A shell comment at the end of every command torchsm writes: how it knows its own entries.
MARK = "# managed by torchsm hooks install"
BACKUPS_KEPT = 5
NEW_FILE_MODE = 0o600
NEW_DIR_MODE = 0o755
_NOT_BY_OTHERS = ~0o022 & 0o777  # settings run commands: nobody else may write them
_NOVA = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\Z")
_BACKUP = re.compile(r"settings\.json\.torchsm-backup-(\d{8}-\d{6}-\d{6})(?:\.(\d{1,6}))?\Z")


def torchsm_command() -> list[str]:
    """How to run this torchsm, by absolute path."""
    script = Path(sys.executable).parent / "torchsm"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "torchsm"]


def hook_command(event: str, nova: str, home: Path, marked: bool = True) -> str:
    argv = [*torchsm_command(), "--home", str(home), "hook", event, "--nova", nova]
    command = shlex.join(argv)
    if marked:
        command = f"{command} {MARK}"
    if event in SIGNAL_PROOF:
        return SIGNAL_PROOF_PREFIX + command
    return command


def owned_by_torchsm(command: str, home: Path) -> tuple[str, str] | None:
    """(event, nova) when `command` is an entry `hooks install` wrote, else None.

    Marked: the exact form with any absolute torchsm and home (another venv, an earlier
    install). Unmarked (earlier versions): only the exact command this torchsm would write
    for `home`."""
    if not isinstance(command, str) or " hook " not in command or " --nova " not in command:
        return None
    body = command.removeprefix(SIGNAL_PROOF_PREFIX)
    marked = body.endswith(" " + MARK)
    if marked:
        body = body[:-len(MARK) - 1]
    try:
        argv = shlex.split(body)
    except ValueError:
        return None
    if shlex.join(argv) != body or len(argv) < 7:
        return None
    prefix, tail = argv[:-6], argv[-6:]
    if tail[0] != "--home" or tail[2] != "hook" or tail[4] != "--nova":
        return None
    event, nova = tail[3], tail[5]
    if event not in EVENTS.values() or not _NOVA.match(nova) or not tail[1].startswith("/"):
        return None
    if (event in SIGNAL_PROOF) != command.startswith(SIGNAL_PROOF_PREFIX):
        return None
    if not _is_torchsm(prefix):
        return None
    if marked or command == hook_command(event, nova, home, marked=False):
        return event, nova
    return None


def _is_torchsm(prefix: list[str]) -> bool:
    if len(prefix) == 1:
        return prefix[0].startswith("/") and os.path.basename(prefix[0]) == "torchsm"
    return (len(prefix) == 3 and prefix[0].startswith("/") and prefix[1:] == ["-m", "torchsm"])


def merged_settings(settings: dict[str, Any], nova: str, home: Path,
                    where: str = "settings.json") -> dict[str, Any]:
    """`settings` with torchsm's entry for every event (and the user's own entries kept)."""
    if not isinstance(settings.get("hooks", {}), dict):
        raise TorchsmError(f"{where}: 'hooks' is not an object; fix it by hand first, "
                           "nothing was changed")
    merged = dict(settings)
    hooks = dict(merged.get("hooks") or {})
    for claude_event, event in EVENTS.items():
        groups = hooks.get(claude_event)
        if groups is None:
            groups = []
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise TorchsmError(f"{where}: 'hooks.{claude_event}' is not a list of objects; "
                               "fix it by hand first, nothing was changed")
        kept = [g for g in (_without_ours(group, event, nova, home) for group in groups)
                if g is not None]
        kept.append({"hooks": [{"type": "command",
                                "command": hook_command(event, nova, home),
                                "timeout": HOOK_TIMEOUT_S}]})
        hooks[claude_event] = kept
    merged["hooks"] = hooks
    return merged


def _without_ours(group: dict, event: str, nova: str, home: Path) -> dict | None:
    if not isinstance(group.get("hooks"), list):
        return group
    kept = [h for h in group["hooks"] if not (
        isinstance(h, dict) and owned_by_torchsm(h.get("command"), home) == (event, nova))]
    if len(kept) == len(group["hooks"]):
        return group
    if not kept:
        return None
    return {**group, "hooks": kept}


def install(project: Path, nova: str, home: Path, now: float | None = None) -> dict[str, Any]:
    """Write the merged settings (atomically, after a backup). Returns what was done."""
    path = project / ".claude" / "settings.json"
    target = _target(path)
    current, raw, st = _read(path, target)
    merged = merged_settings(current, nova, home, where=str(path))
    done = {"settings": str(path), "changed": False, "backup": None,
            "events": list(EVENTS.values())}
    if target != path:
        done["target"] = str(target)
    if merged == current:
        return done
    if st is not None and (not st.st_mode & 0o222 or not os.access(target, os.W_OK)):
        raise TorchsmError(f"{path} is read-only; make it writable (chmod u+w) to let torchsm "
                           "add its hooks, or add them by hand; nothing was changed")
    mode = NEW_FILE_MODE if st is None else stat.S_IMODE(st.st_mode) & _NOT_BY_OTHERS
    owner = None if st is None else (st.st_uid, st.st_gid)
    data = _dumps(merged)
    backup = None
    try:
        if st is None:
            _make_dirs(target.parent)
        else:
            backup = _backup(path.parent, raw, mode, owner, now)
        _write_atomically(target, data, mode, owner, st)
    except BaseException as exc:
        if backup is not None:  # the settings were not replaced: no backup of them either
            backup.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise TorchsmError(f"cannot write {path}: {exc.strerror or exc}; "
                               "nothing was changed") from None
        raise
    if backup is not None:
        _prune_backups(path.parent, backup.name)
    done.update(changed=True, backup=str(backup) if backup else None, mode=f"{mode:04o}")
    if st is not None and stat.S_IMODE(st.st_mode) != mode:
        done["mode_was"] = f"{stat.S_IMODE(st.st_mode):04o}"
    return done


def _target(path: Path) -> Path:
    """The file to replace: `path`, or the file its symlinks lead to."""
    if not path.is_symlink():
        return path
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        raise TorchsmError(f"{path} is a symlink to {os.readlink(path)}, which does not exist; "
                           "create it or remove the link; nothing was changed") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TorchsmError(f"{path} is a symlink loop; fix the link; nothing was changed") \
                from None
        raise TorchsmError(f"cannot follow {path}: {exc.strerror}; nothing was changed") from None


def _read(path: Path, target: Path) -> tuple[dict[str, Any], bytes, os.stat_result | None]:
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return {}, b"", None
    except OSError as exc:
        raise TorchsmError(f"cannot read {path}: {exc.strerror}; nothing was changed") from None
    if not stat.S_ISREG(st.st_mode):
        raise TorchsmError(f"{path} is not a regular file; nothing was changed")
    try:
        raw = target.read_bytes()
    except OSError as exc:
        raise TorchsmError(f"cannot read {path}: {exc.strerror}; nothing was changed") from None
    if not raw.strip():
        return {}, raw, st
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TorchsmError(f"{path} is not valid UTF-8 (byte {exc.start}); nothing was changed") \
            from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise TorchsmError(f"{path} is not valid JSON ({exc}); nothing was changed") from None
    except RecursionError:
        raise TorchsmError(f"{path} is nested too deeply to be settings; nothing was changed") \
            from None
    if not isinstance(data, dict):
        raise TorchsmError(f"{path} does not hold a JSON object; nothing was changed")
    return data, raw, st


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _dumps(settings: dict[str, Any]) -> bytes:
    try:
        return (json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape: keep it escaped
        return (json.dumps(settings, indent=2) + "\n").encode("ascii")


def _make_dirs(folder: Path) -> None:
    """Create the missing folders, none writable by group or others whatever the umask."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        os.mkdir(made, NEW_DIR_MODE)
        os.chmod(made, stat.S_IMODE(os.stat(made).st_mode) & _NOT_BY_OTHERS)


def _create(path: Path, mode: int, owner: tuple[int, int] | None) -> int:
    """A new file (O_EXCL) with exactly `mode` and the owner of the file it stands for."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, NEW_FILE_MODE)
    try:
        if owner is not None and (os.fstat(fd).st_uid, os.fstat(fd).st_gid) != owner:
            try:
                os.fchown(fd, *owner)  # root writing a user's file, or another group
            except OSError:
                pass
        os.fchmod(fd, mode)  # after chown, which may clear set-id bits; umask plays no part
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _write_atomically(target: Path, data: bytes, mode: int, owner: tuple[int, int] | None,
                      before: os.stat_result | None) -> None:
    folder = target.parent
    tmp = folder / f".{target.name}.torchsm-{os.getpid()}-{time.monotonic_ns()}.tmp"
    fd = _create(tmp, mode, owner)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        _unchanged_since(target, before)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _sync_folder(folder)


def _unchanged_since(target: Path, before: os.stat_result | None) -> None:
    """Refuse to replace a file someone else wrote while we were merging."""
    try:
        now = os.stat(target)
    except FileNotFoundError:
        now = None
    same = (now is None and before is None) or (
        now is not None and before is not None
        and (now.st_ino, now.st_size, now.st_mtime_ns) == (before.st_ino, before.st_size,
                                                           before.st_mtime_ns))
    if not same:
        raise TorchsmError(f"{target} changed while torchsm was merging its hooks; "
                           "nothing was changed, run the command again")


def _sync_folder(folder: Path) -> None:
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


def _backup(folder: Path, raw: bytes, mode: int, owner: tuple[int, int] | None,
            now: float | None) -> Path:
    """A new backup of `raw` beside the settings file; an earlier one is never overwritten."""
    moment = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(moment)) + \
        f"-{int(round(moment % 1, 6) * 1_000_000) % 1_000_000:06d}"
    # the same stamp again (a fast machine, a clock set back): the next counter, so names
    # sort in the order the backups were made
    taken = [int(m.group(2) or 0) for m in map(_BACKUP.match, os.listdir(folder))
             if m and m.group(1) == stamp]
    first = max(taken) + 1 if taken else 0
    for n in range(first, first + 1000):
        path = folder / (f"settings.json.torchsm-backup-{stamp}" + (f".{n:03d}" if n else ""))
        try:
            fd = _create(path, mode, owner)
        except FileExistsError:
            continue
        try:
            _write_all(fd, raw)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return path
    raise OSError(errno.EEXIST, "too many backups with the same time stamp")


def _prune_backups(folder: Path, newest: str) -> None:
    """Keep the newest BACKUPS_KEPT of torchsm's backups (`newest`, just made, always);
    nothing else is touched."""
    found = []
    for name in os.listdir(folder):
        m = _BACKUP.match(name)
        if m and name != newest:
            found.append(((m.group(1), int(m.group(2) or 0)), name))
    for _key, name in sorted(found)[:max(0, len(found) - (BACKUPS_KEPT - 1))]:
        try:
            os.unlink(folder / name)
        except OSError:
            pass
