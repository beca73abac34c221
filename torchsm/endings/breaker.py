"""The no-progress breaker: a Nova whose last N sessions (or a session whose last N
continuations) all ended the same way is going round in circles, and starting (or
continuing) it again at once only burns the budget. One rule for both: the supervisor
asks it of the ledger's sessions (torchsm.endings.responses), the Stop hook of the continuations
of its session (torchsm.hooks.stop).

Pure: the caller passes the endings (newest first).
"""

from __future__ import annotations

import re

from torchsm.records import record


@record
class Ending:
    """How a session (or a continuation) ended, for the breaker. A record, not a dataclass
    nor a typing.NamedTuple: the Stop hook builds these, and either import costs it ~10 ms."""

    outcome: str
    error: str | None
    api_error_status: int | None
    last_assistant_message: str | None
    item_status: str | None  # its work item's status now, if it had one

_NUMBERS = re.compile(r"\d+(?:\.\d+)?")
_FAILED_ITEM = ("failed", "dead")
_SUCCESS = "ok"


def no_progress(endings: list[Ending], n: int, what: str = "sessions") -> str | None:
    """Why the last `n` endings (`what`: sessions, continuations) made no progress, or
    None. They did not when they all ended with the same error, or each failed its work
    item, or all ended with the same last assistant message without finishing an item
    (n < 1: the breaker is off)."""
    if n < 1 or len(endings) < n:
        return None
    last = endings[:n]
    if all(e.outcome != _SUCCESS for e in last) and len({_error_key(e) for e in last}) == 1:
        return f"no progress: {n} {what} in a row ended with the same error ({_short(last[0].error or last[0].outcome)})"
    if all(e.item_status in _FAILED_ITEM for e in last):
        return f"no progress: {n} {what} in a row each failed their work item"
    messages = {_normalised(e.last_assistant_message) for e in last}
    # "Done." after each of three finished items is progress, not a loop
    finished_items = any(e.item_status == "done" for e in last)
    if len(messages) == 1 and None not in messages and not finished_items:
        return (f"no progress: {n} {what} in a row ended with the same message "
                f"({_short(last[0].last_assistant_message)})")
    return None


def _error_key(ending: Ending) -> tuple:
    # "crashed 0.1s after the start" and "crashed 0.2s after the start" are the same error
    return ending.outcome, ending.api_error_status, _NUMBERS.sub("#", ending.error or "")


def _normalised(message: str | None) -> str | None:
    return " ".join(message.split()) if message and message.strip() else None


def _short(text: str | None, width: int = 80) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[:width - 3] + "..."
