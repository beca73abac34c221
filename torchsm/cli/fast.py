"""`torchsm hook EVENT --nova NAME` without click: parsed by hand, run, and always ended
with exit 0 or 1 (exit 2 would tell Claude Code to block)."""

from __future__ import annotations

import os
import sys
from typing import NamedTuple


class HookCall(NamedTuple):
    event: str
    nova: str
    home: str | None


def parse_hook_call(argv: list[str]) -> HookCall | None:
    """The call when argv is exactly `[--home DIR] hook EVENT --nova NAME [--home DIR]`
    (options also as `--opt=value`); None for anything else, which click then handles."""
    options: dict[str, str] = {}
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in ("home", "nova") or name in options:
                return None
            if not eq:
                value = next(args, None)
                if value is None:
                    return None
            options[name] = value
        elif arg.startswith("-"):
            return None
        else:
            words.append(arg)
    if len(words) != 2 or words[0] != "hook" or "nova" not in options:
        return None
    return HookCall(words[1], options["nova"], options.get("home"))


def run_hook_call(call: HookCall, stdin=None, stdout=None, stderr=None) -> int:
    """Handle one hook call; print what Claude Code should read; return 0 or 1."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        from torchsm.config import load_config, resolve_home
        from torchsm.hooks import run_hook

        raw = stdin.read() if not stdin.isatty() else ""
        home = resolve_home(call.home)
        result = run_hook(home, load_config(home), call.event, call.nova, raw)
    except Exception as exc:  # noqa: BLE001 - a hook must never die with a traceback
        from torchsm.errors import TorchsmError

        if isinstance(exc, TorchsmError):
            message = exc.message
        elif os.environ.get("TORCHSM_DEBUG"):
            raise
        else:
            message = f"internal error: {type(exc).__name__}: {exc}"
        print(f"torchsm: error: hook {call.event}: {message}", file=stderr)
        return 1
    if result.stdout:
        print(result.stdout, file=stdout)
    if result.warning:
        print(f"torchsm: {result.warning}", file=stderr)
    return 0
