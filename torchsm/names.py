"""Nova and account names: `[a-z0-9][a-z0-9_-]{0,31}`. A module of its own so the hot paths can check
a name without loading the state machine, nor `re` (~5 ms to import)."""

from __future__ import annotations

from torchsm.errors import InvalidName

DEFAULT_ACCOUNT = "default"  # the account of a Nova added without one
# the hook events torchsm handles, as `torchsm hook EVENT` names them (table hook_runs)
HOOK_EVENTS = ("session-start", "user-prompt-submit", "pre-tool-use", "post-tool-use", "stop",
               "stop-failure", "subagent-stop", "pre-compact", "session-end", "notification")

_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_NEXT = _FIRST | {"_", "-"}


def is_name(text: str) -> bool:
    """Whether `text` matches `[a-z0-9][a-z0-9_-]{0,31}` whole."""
    return 0 < len(text) <= 32 and text[0] in _FIRST and all(c in _NEXT for c in text[1:])


def check_name(name: str) -> str:
    if not is_name(name):
        raise InvalidName(name)
    return name


def check_account(name: str) -> str:
    """Account names follow the same pattern as Nova names."""
    if not isinstance(name, str) or not is_name(name):
        raise InvalidName(name, "account")
    return name
