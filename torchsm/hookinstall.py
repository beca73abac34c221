"""`torchsm hooks install`: merge torchsm's hook entries into a project's
.claude/settings.json, keeping everything else that is there.

Idempotent: torchsm's own entries for the Nova are recognised and replaced, never doubled.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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


def torchsm_command() -> list[str]:
    """How to run this torchsm, by absolute path."""
    script = Path(sys.executable).parent / "torchsm"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "torchsm"]


def hook_command(event: str, nova: str, home: Path) -> str:
    argv = [*torchsm_command(), "--home", str(home), "hook", event, "--nova", nova]
    command = " ".join(shlex.quote(part) for part in argv)
    if event in SIGNAL_PROOF:
        return f"trap '' TERM HUP; exec {command}"
    return command


def _is_ours(command: str, nova: str) -> bool:
    return bool(re.search(r"torchsm\S*\s.*\bhook\s+[a-z-]+\s+--nova\s+'?" + re.escape(nova)
                          + r"'?(?:\s|$)", command))


def merged_settings(settings: dict[str, Any], nova: str, home: Path) -> dict[str, Any]:
    """`settings` with torchsm's entry for every event (and the user's own entries kept)."""
    merged = dict(settings)
    hooks = dict(merged.get("hooks") or {})
    if not isinstance(merged.get("hooks", {}), dict):
        raise TorchsmError("settings.json: 'hooks' is not an object; fix it by hand first")
    for claude_event, event in EVENTS.items():
        groups = [_without_ours(group, nova) for group in hooks.get(claude_event) or []]
        groups = [g for g in groups if g is not None]
        groups.append({"hooks": [{"type": "command",
                                  "command": hook_command(event, nova, home),
                                  "timeout": HOOK_TIMEOUT_S}]})
        hooks[claude_event] = groups
    merged["hooks"] = hooks
    return merged


def _without_ours(group: Any, nova: str) -> Any:
    if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
        return group
    kept = [h for h in group["hooks"]
            if not (isinstance(h, dict) and _is_ours(str(h.get("command", "")), nova))]
    if not kept:
        return None
    return {**group, "hooks": kept}


def install(project: Path, nova: str, home: Path, now: float | None = None) -> dict[str, Any]:
    """Write the merged settings (atomically, after a backup). Returns what was done."""
    path = project / ".claude" / "settings.json"
    current = _read(path)
    merged = merged_settings(current, nova, home)
    if merged == current:
        return {"settings": str(path), "changed": False, "backup": None,
                "events": list(EVENTS.values())}
    backup = None
    if path.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        backup = path.with_name(f"settings.json.{stamp}.bak")
        backup.write_bytes(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".settings.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    os.replace(tmp, path)
    return {"settings": str(path), "changed": True, "backup": str(backup) if backup else None,
            "events": list(EVENTS.values())}


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except ValueError as exc:
        raise TorchsmError(f"{path} is not valid JSON ({exc}); nothing was changed") from None
    if not isinstance(data, dict):
        raise TorchsmError(f"{path} does not hold a JSON object; nothing was changed")
    return data
