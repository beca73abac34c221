"""The hot commands without click: `torchsm hook EVENT --nova NAME` (Claude Code runs it on
every tool call and waits) and `torchsm transition NAME EVENT ...` (hooks and scripts fire
it). A plainly written call is parsed here by hand; anything else (`--help`, an unknown
or repeated option, a bad value) returns None and goes to click, which explains it.

A hook call always ends with exit 0 or 1: exit 2 would tell Claude Code to block.
"""

from __future__ import annotations

import os
import sys

from torchsm.records import record


@record
class PlainCall:
    command: str
    words: list[str]  # the positional arguments after the command
    options: dict[str, str | bool]


# command -> (positional count, options taking a value, flags); --home/--json are global
SPECS = {
    "hook": (1, {"nova"}, set()),
    "transition": (2, {"reason", "for"}, {"force"}),
}
SHORT = {"-r": "reason"}


def parse_plain_call(argv: list[str]) -> PlainCall | None:
    """The call when argv is a plain use of a fast command, else None."""
    spec = SPECS.get(command_word(argv))
    if spec is None:
        return None
    count, valued, flags = spec
    valued, flags = valued | {"home"}, flags | {"json"}
    options: dict[str, str | bool] = {}
    positional: list[str] = []
    args = iter(argv)
    for arg in args:
        name, eq, value = (SHORT[arg], "", "") if arg in SHORT else (
            arg[2:].partition("=") if arg.startswith("--") else (None, "", ""))
        if name is None:
            if arg.startswith("-"):
                return None
            positional.append(arg)
        elif name in options or name not in valued | flags or (name in flags and eq):
            return None
        elif name in flags:
            options[name] = True
        else:
            options[name] = value if eq else next(args, None)
            if options[name] is None:
                return None
    command, *rest = positional
    if len(rest) != count or not _numbers_ok(options):
        return None
    if command == "transition" and not _is_event(rest[1]):
        return None  # click tells the usage error
    return PlainCall(command, rest, options)


def command_word(argv: list[str]) -> str | None:
    """The subcommand's name: the first word that is not a global option or its value."""
    args = iter(argv)
    for arg in args:
        if arg == "--home":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _is_event(word: str) -> bool:
    from torchsm.machine import Event  # the transition loads it anyway

    return word in Event._value2member_map_


def _numbers_ok(options: dict[str, str | bool]) -> bool:
    try:
        return "for" not in options or float(options["for"]) == float(options["for"])
    except ValueError:
        return False


class Interrupted(BaseException):
    """A signal that ends a hook (SIGTERM, SIGHUP), raised where the hook is, like Ctrl-C's
    KeyboardInterrupt: open transactions roll back and the hook ends with one line.
    A BaseException, so no `except Exception` on the way can swallow it."""


def run_plain_call(call: PlainCall) -> int:
    hook = call.command == "hook"
    prefix = f"hook {call.words[0]}: " if hook else ""
    try:
        if hook:
            _signals_end_the_hook()
        return (_run_hook if hook else _run_transition)(call)
    except (KeyboardInterrupt, Interrupted) as exc:
        # a hook never exits 2 nor prints a traceback; the agent may stop
        _ignore_signals()
        why = "SIGINT" if isinstance(exc, KeyboardInterrupt) else str(exc)
        _error(f"{prefix}interrupted ({why})" + ("; the agent may stop" if hook else ""))
        return 1 if hook else 130
    except Exception as exc:  # noqa: BLE001 - one line on stderr, never a traceback
        from torchsm.errors import TorchsmError

        if isinstance(exc, TorchsmError):
            message = exc.message
        elif os.environ.get("TORCHSM_DEBUG"):
            raise
        else:
            message = f"internal error: {type(exc).__name__}: {exc}"
        _error(f"{prefix}{message}")
        return 1


def _error(message: str) -> None:
    from torchsm.terminal import error_line

    print(error_line(message), file=sys.stderr)


_ENDING = ("SIGINT", "SIGTERM", "SIGHUP")


def _signals_end_the_hook() -> None:
    """SIGINT, SIGTERM and SIGHUP raise (Interrupted, or KeyboardInterrupt for SIGINT)
    instead of killing the hook; a signal already ignored (`trap '' TERM HUP`, which
    `hooks install` writes for stop-failure) stays ignored."""
    import signal

    def ending(signum, _frame):
        _ignore_signals()  # a second signal must not interrupt the rollback or the message
        name = signal.Signals(signum).name
        raise KeyboardInterrupt if name == "SIGINT" else Interrupted(name)

    for name in _ENDING:
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, ending)


def _ignore_signals() -> None:
    import signal

    for name in _ENDING:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)


def _run_hook(call: PlainCall) -> int:
    """Handle one hook call; print what Claude Code should read."""
    if "nova" not in call.options:
        from torchsm.errors import TorchsmError

        raise TorchsmError("--nova NAME is required")
    from torchsm.config import load_config, resolve_home
    from torchsm.hooks.handlers import run_hook

    # bytes: text that is not UTF-8 is decoded with replacement by the handler
    stdin = sys.stdin
    raw = (getattr(stdin, "buffer", stdin).read()
           if stdin is not None and not stdin.isatty() else b"")
    home = resolve_home(call.options.get("home"))
    result = run_hook(home, load_config(home), call.words[0], str(call.options["nova"]), raw)
    if result.stdout:
        print(result.stdout)
    if result.warning:
        from torchsm.terminal import printable

        print(f"torchsm: {printable(result.warning, multiline=False)}", file=sys.stderr)
    return 0


def _run_transition(call: PlainCall) -> int:
    for_s = float(call.options["for"]) if "for" in call.options else None
    from torchsm import novas
    from torchsm.config import load_config, resolve_home

    home = resolve_home(call.options.get("home"))
    name, event = call.words
    result = novas.transition(home, load_config(home), name, event,
                              reason=call.options.get("reason"), for_s=for_s,
                              force=bool(call.options.get("force")))
    if call.options.get("json"):
        from torchsm.terminal import json_line

        print(json_line(result.as_json()))
    else:
        print(result.describe())
    return 0
