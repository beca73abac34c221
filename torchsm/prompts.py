"""What torchsm tells the agent: a session's prompt, and the next task a Stop-hook
continuation hands over. One home for the wording, so both say the same about how a
work item is finished. Stdlib only (the Stop hook uses it)."""

from __future__ import annotations

from typing import Any


def _how_to_finish(item: Any, then: str = "") -> str:
    return (f"When it is finished, just stop: torchsm marks item {item.id} done{then}. If "
            f"you finish or give it up yourself, run `torchsm queue done {item.id}` or "
            f"`torchsm queue fail {item.id} --error WHY`.")


def item_prompt(item: Any) -> str:
    """A work item as a session's prompt: its text, then how to finish it."""
    return (f"{item.text}\n\n[torchsm work item {item.id} ({item.priority.value}). "
            f"{_how_to_finish(item)}]")


def continuation_reason(item: Any) -> str:
    """The Stop hook's `reason`: the next task, in the same session."""
    return (f"torchsm: next task (work item {item.id}, {item.priority.value}):\n\n{item.text}"
            f"\n\n{_how_to_finish(item, ' and hands you the next one')}")


def wake_prompt(tier: str, sender: str | None, message: str) -> str:
    return f"Wake signal ({tier}){f' from {sender}' if sender else ''}: {message}"


def restart_prompt(reason: str | None, item: Any | None) -> str:
    """After a session stopped with work left (the Stop hook asked for a restart)."""
    note = ("torchsm: the last session stopped with work left"
            + (f" ({reason})" if reason else "") + ".")
    return f"{note}\n\n{item_prompt(item)}" if item else f"{note} Carry on where it stopped."
