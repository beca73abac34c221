"""What torchsm tells the agent: a session's prompt, and the next task a Stop-hook
continuation hands over. One home for the wording, so both say the same about how a
work item is finished. Stdlib only (the Stop hook uses it).

Everything here is bounded: Claude Code reads at most 10,000 characters of a hook's stdout
(FIELD-NOTES), and a prompt given as an argument must fit the OS's limit on one argument
(128 KiB on Linux). A longer text is cut by `cut`, which ends it with a command that
prints the whole."""

from __future__ import annotations

import json

from torchsm.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Any, Callable

# The most a hook prints of text, measured as JSON-escaped characters (what Claude Code
# reads: json.dumps escapes non-ASCII and control characters, a few characters each). The
# JSON envelope around it adds under a hundred: the whole stdout stays under 10,000.
HOOK_TEXT_MAX = 9_000
# The most a session's prompt may be, in UTF-8 bytes (Linux: 131,072 per argument).
PROMPT_MAX = 100_000


def json_size(text: str) -> int:
    """Characters `text` takes inside a JSON string as json.dumps writes it."""
    return len(json.dumps(text)) - 2


def utf8_size(text: str) -> int:
    """Bytes `text` takes in a command's argument."""
    return len(text.encode("utf-8", "surrogatepass"))


def cut(text: str, limit: int, what: str, command: str, *,
        size: Callable[[str], int] = json_size) -> str:
    """`text` itself when `size(text) <= limit`; else the longest head of it that fits
    with a note saying that it was cut and that `command` prints the whole `what`. The
    result's size is at most `limit` (when the note alone fits)."""
    if size(text) <= limit:
        return text
    note = (f"\n[... cut here: the whole {what} is {len(text):,} characters; "
            f"`{command}` prints it]")
    room = limit - size(note)
    low, high = 0, max(0, min(len(text), room))  # every character costs at least 1
    while low < high:  # the longest head that fits
        middle = (low + high + 1) // 2
        if size(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    head = text[:low]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > 0 and space >= low - 200:  # at a word, when one ends near the cut
        head = head[:space]
    return head + note


@record
class Part:
    """One line of a hook's context: `prefix` kept whole, then `text`, which may be cut
    (`what` and `command` name it and how to see it whole), sharing the room with the
    other parts' texts in proportion to `weight`."""

    prefix: str
    text: str = ""
    what: str = "text"
    command: str = "torchsm status"
    weight: int = 1


def fit(parts: list[Part], limit: int = HOOK_TEXT_MAX, sep: str = "\n") -> str:
    """The parts joined by `sep`, their texts cut so that the whole is at most `limit`
    (json_size). A text that fits its share is whole; what it leaves goes to the others."""
    fixed = sum(json_size(p.prefix) for p in parts) + json_size(sep) * max(len(parts) - 1, 0)
    sizes = [json_size(p.text) for p in parts]
    shares = [0] * len(parts)
    room = max(limit - fixed, 0)
    weight = sum(p.weight for p in parts if p.text)
    for i in sorted((i for i, p in enumerate(parts) if p.text),
                    key=lambda i: sizes[i] / parts[i].weight):
        shares[i] = min(sizes[i], room * parts[i].weight // weight)
        room, weight = room - shares[i], weight - parts[i].weight
    out = sep.join(p.prefix + (cut(p.text, shares[i], p.what, p.command) if p.text else "")
                   for i, p in enumerate(parts))
    if json_size(out) > limit:  # only when the prefixes alone are too long
        commands = [p.command for p in parts if p.text] or [Part("").command]
        out = cut(out, limit, "text", commands[0])
    return out


def _how_to_finish(item: Any, then: str = "") -> str:
    return (f"When it is finished, just stop: torchsm marks item {item.id} done{then}. If "
            f"you finish or give it up yourself, run `torchsm queue done {item.id}` or "
            f"`torchsm queue fail {item.id} --error WHY`.")


def _how_to_remember(nova: str | None = None) -> str:
    # the supervisor sets $TORCHSM_NOVA; a Stop hook knows the name (and a session that
    # no supervisor started has no such variable)
    who = nova if nova is not None else '"$TORCHSM_NOVA"'
    return f'To remember something for later sessions: `torchsm memory add {who} "..."`.'


def _item_text(item: Any, limit: int, size: Callable[[str], int]) -> str:
    return cut(item.text, limit, "task", f"torchsm queue show {item.id}", size=size)


def item_prompt(item: Any, limit: int = PROMPT_MAX) -> str:
    """A work item as a session's prompt: its text, then how to finish it; at most
    `limit` UTF-8 bytes (a long text is cut, with the command that prints it whole)."""
    foot = (f"\n\n[torchsm work item {item.id} ({item.priority.value}). {_how_to_finish(item)}"
            f" {_how_to_remember()}]")
    return _item_text(item, limit - utf8_size(foot), utf8_size) + foot


def cluster_item_prompt(item: Any, limit: int = PROMPT_MAX) -> str:
    """A cluster work item as a session's prompt, like a local item's; its fate is the
    session's (a cluster item has no `queue done`)."""
    foot = (f"\n\n[torchsm cluster work item {item.item_id} ({item.priority.value}). When "
            f"it is finished, just stop: torchsm marks it done; a failed session gives it "
            f"back for another attempt. {_how_to_remember()}]")
    return cut(item.text, limit - utf8_size(foot), "task", "torchsm cluster status",
               size=utf8_size) + foot


def continuation_reason(item: Any, limit: int = HOOK_TEXT_MAX, nova: str | None = None) -> str:
    """The Stop hook's `reason`: the next task, in the same session; at most `limit`
    characters once JSON-escaped. `nova` names the Nova in the memory hint."""
    head = f"torchsm: next task (work item {item.id}, {item.priority.value}):\n\n"
    foot = (f"\n\n{_how_to_finish(item, ' and hands you the next one')} "
            f"{_how_to_remember(nova)}")
    return head + _item_text(item, limit - json_size(head + foot), json_size) + foot


def wake_prompt(tier: str, sender: str | None, message: str, nova: str = "NAME",
                limit: int = PROMPT_MAX) -> str:
    """A due wake signal as a session's prompt (a long message cut like an item)."""
    head = f"Wake signal ({tier}){f' from {sender}' if sender else ''}: "
    return head + cut(message, limit - utf8_size(head), "message", f"torchsm wake list {nova}",
                      size=utf8_size)


def restart_prompt(reason: str | None, item: Any | None, limit: int = PROMPT_MAX) -> str:
    """After a session stopped with work left (the Stop hook asked for a restart)."""
    note = ("torchsm: the last session stopped with work left"
            + (f" ({reason})" if reason else "") + ".")
    if item is None:
        return f"{note} Carry on where it stopped."
    return f"{note}\n\n{item_prompt(item, limit - utf8_size(note) - 2)}"
