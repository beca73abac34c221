"""`torchsm hooks install`: merge torchsm's hook entries into Claude Code's settings,
keeping everything else that is there.

Where (`--scope`, Claude Code's own settings files): `local`, the default, is the
project's .claude/settings.local.json, this machine's settings of the project (the hook
commands hold this machine's absolute paths; in a git repository the file is added to
.git/info/exclude, as Claude Code does when it creates it); `project` is the team-shared
.claude/settings.json; `user` is the user's settings ($CLAUDE_CONFIG_DIR or ~/.claude).

Idempotent: torchsm's own entries for the Nova are recognised and replaced, never doubled.
Only entries torchsm wrote itself count as its own: the exact command form it writes,
`ABSOLUTE-TORCHSM --home HOME hook EVENT --nova NAME  # managed by torchsm hooks install`
(for StopFailure behind `trap '' TERM HUP; exec `), under the Claude Code event it belongs
to. Earlier versions wrote the same command without the mark; that exact command (this
torchsm, this home) is recognised too. Anything else that mentions torchsm is the user's.

The file is read and written by torchsm.user_files' rules for files a user names:
atomically, through a symlink to its target (the link stays), with the existing file's
mode and owner (a new file is 0600), never over a read-only file, a FIFO or a device. As
settings run commands, it is never left group- or world-writable whatever the umask. Each
change leaves a backup in the torchsm home, never beside the settings where `git add
.claude` would pick it up: HOME/backups/hooks/DIGEST/NAME.torchsm-backup-STAMP, one folder
per settings file (its path in `settings-path`); the newest BACKUPS_KEPT are kept.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import stat
import sys
import time
from pathlib import Path
from typing import Any

from torchsm import user_files
from torchsm.errors import FileChangedMeanwhile, FileUnwritable, ProjectNotFound, SettingsRefused

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
_NOVA = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\Z")
_BACKUP = re.compile(r"settings(?:\.local)?\.json\.torchsm-backup-(\d{8}-\d{6}-\d{6})"
                     r"(?:\.(\d{1,6}))?\Z")
SCOPES = ("local", "project", "user")
LOCAL_EXCLUDE = "/.claude/settings.local.json"


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
        raise SettingsRefused(f"{where}: 'hooks'", "is not an object", fix_by_hand=True)
    merged = dict(settings)
    hooks = dict(merged.get("hooks") or {})
    for claude_event, event in EVENTS.items():
        groups = hooks.get(claude_event)
        if groups is None:
            groups = []
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise SettingsRefused(f"{where}: 'hooks.{claude_event}'", "is not a list of objects",
                                  fix_by_hand=True)
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


def settings_path(scope: str, project: Path, env: dict[str, str] | None = None) -> Path:
    """The settings file of `scope` (one of SCOPES), as Claude Code reads it."""
    if scope == "user":
        env = os.environ if env is None else env
        folder = env.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".claude")
        return Path(folder) / "settings.json"
    name = "settings.local.json" if scope == "local" else "settings.json"
    return project / ".claude" / name


def install(project: Path, nova: str, home: Path, now: float | None = None,
            scope: str = "local") -> dict[str, Any]:
    """Write the merged settings (atomically, after a backup in the home). Returns what was
    done, with `warnings`: what `hooks scan` flags in the file after the install."""
    if scope != "user":
        _require_project(project)
    path = settings_path(scope, project)
    dest = user_files.destination(path)
    current, raw = _read(dest)
    merged = merged_settings(current, nova, home, where=str(path))
    done = {"settings": str(path), "scope": scope, "changed": False, "backup": None,
            "events": list(EVENTS.values())}
    if scope == "local":
        _exclude_from_git(project)
    _write_merged(dest, merged, current, raw, home, now, done)
    done["warnings"] = flagged(path)
    return done


def _write_merged(dest: user_files.Destination, merged: dict, current: dict, raw: bytes,
                  home: Path, now: float | None, done: dict[str, Any]) -> None:
    if dest.target != dest.named:
        done["target"] = str(dest.target)
    if merged == current:
        return
    user_files.check_writable(dest)
    mode = user_files.not_writable_by_others(user_files.kept_mode(dest, NEW_FILE_MODE))
    backup = _write_with_backup(dest, _dumps(merged), raw, mode, now, home)
    done.update(changed=True, backup=str(backup) if backup else None, mode=f"{mode:04o}")
    if dest.found is not None and stat.S_IMODE(dest.found.st_mode) != mode:
        done["mode_was"] = f"{stat.S_IMODE(dest.found.st_mode):04o}"


def flagged(path: Path) -> list[str]:
    """What `hooks scan` flags in the settings file: one line each."""
    from torchsm.hooks import scanner

    try:
        report = scanner.scan([path])
    except OSError:
        return []
    return [f"{f.file}:{f.line}: {f.rule}: {f.text.strip()[:120]}" for f in report.findings]


def _exclude_from_git(project: Path) -> None:
    """As Claude Code does when it creates settings.local.json: a repository's own
    exclude file gets it, unless it is there already (nothing else is changed)."""
    info = project / ".git" / "info"
    if not info.is_dir():
        return
    exclude = info / "exclude"
    try:
        text = exclude.read_text() if exclude.exists() else ""
        if LOCAL_EXCLUDE in text.splitlines():
            return
        with open(exclude, "a") as f:
            f.write(("" if not text or text.endswith("\n") else "\n") + LOCAL_EXCLUDE + "\n")
    except OSError:
        pass  # a read-only repository: git may show the file; the install still stands


def backup_folder(home: Path, settings: Path) -> Path:
    """HOME/backups/hooks/DIGEST: the backups of one settings file, out of any project."""
    digest = hashlib.sha256(str(settings).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(home) / "backups" / "hooks" / digest


def _require_project(project: Path) -> None:
    """The project must be there: install adds its .claude folder, never the project
    itself, so a typo in --project is an error, not a new tree of folders."""
    if not project.is_dir():
        raise ProjectNotFound(project, exists=project.exists())


def _write_with_backup(dest: user_files.Destination, data: bytes, raw: bytes, mode: int,
                       now: float | None, home: Path) -> Path | None:
    """Back the old settings up (none for a new file), then replace them; a failure
    leaves neither the new settings nor their backup."""
    owner = None if dest.found is None else (dest.found.st_uid, dest.found.st_gid)
    backup = None
    try:
        if dest.found is None:
            user_files.make_dirs(dest.target.parent, NEW_DIR_MODE)
        else:
            backup = _backup(_backups_of(home, dest.named), dest.named.name, raw, mode, now)
        user_files.replace(dest, data, mode=mode, owner=owner)
    except BaseException as exc:
        if backup is not None:  # the settings were not replaced: no backup of them either
            backup.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise FileUnwritable(dest.named, exc.strerror or exc, nothing_changed=True) from None
        raise
    if backup is not None:
        _prune_backups(backup.parent, backup.name)
    return backup


def _read(dest: user_files.Destination) -> tuple[dict[str, Any], bytes]:
    """The settings as found (an empty object for a new or empty file) and their bytes."""
    if dest.found is None:
        return {}, b""
    path = dest.named
    try:
        raw = user_files.read(dest.target)
    except FileNotFoundError:
        raise FileChangedMeanwhile(path, "reading") from None
    if not raw.strip():
        return {}, raw
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SettingsRefused(path, f"is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise SettingsRefused(path, f"is not valid JSON ({exc})") from None
    except RecursionError:
        raise SettingsRefused(path, "is nested too deeply to be settings") from None
    if not isinstance(data, dict):
        raise SettingsRefused(path, "does not hold a JSON object")
    return data, raw


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _dumps(settings: dict[str, Any]) -> bytes:
    try:
        return (json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape: keep it escaped
        return (json.dumps(settings, indent=2) + "\n").encode("ascii")


def _backups_of(home: Path, settings: Path) -> Path:
    folder = backup_folder(home, settings)
    user_files.make_dirs(folder, 0o700)
    named = folder / "settings-path"
    if not named.exists():
        named.write_text(f"{settings}\n")
    return folder


def _backup(folder: Path, name: str, raw: bytes, mode: int, now: float | None) -> Path:
    """A new backup of `raw` (the settings file `name`) in `folder`; an earlier one is
    never overwritten."""
    moment = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(moment)) + \
        f"-{int(round(moment % 1, 6) * 1_000_000) % 1_000_000:06d}"
    # the same stamp again (a fast machine, a clock set back): the next counter, so names
    # sort in the order the backups were made
    taken = [int(m.group(2) or 0) for m in map(_BACKUP.match, os.listdir(folder))
             if m and m.group(1) == stamp]
    first = max(taken) + 1 if taken else 0
    for n in range(first, first + 1000):
        path = folder / (f"{name}.torchsm-backup-{stamp}" + (f".{n:03d}" if n else ""))
        try:
            fd = user_files.create_exclusive(path, mode, None)
        except FileExistsError:
            continue
        try:
            user_files.write_all(fd, raw)
            os.fsync(fd)
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
