"""Claude Code hook handlers: one per event, and the hook health monitor.

This is the hot path (Claude Code runs a hook on every tool call and waits for it): it
loads only the stdlib sqlite3 store, the work queue and what one event needs; the state
machine and the mirror load only on the paths that change a state. A handler records,
decides and returns. It never starts a process: the supervisor alone does that.
"""

from __future__ import annotations

import json
import os
import time

from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.hooks import context
from torchsm.hooks.context import HookContext, HookResult
from torchsm.errors import HookInputError, UnknownEvent
from torchsm.names import check_name
from torchsm.storage import store
from torchsm.work import work_queue
from torchsm.work.prompts import HOOK_TEXT_MAX, Part, fit, json_size

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Any, Callable, Mapping

COMPACTING_TTL_S = 120
CONTEXT_MESSAGES = 5
SNAPSHOT_TRANSITIONS = 10


def run_hook(home: Home, config: Config, event: str, nova: str, raw: str | bytes, *,
             now: float | None = None, env: Mapping[str, str] | None = None) -> HookResult:
    """Handle one hook call and record it (nova, event, session, duration, outcome).

    `raw` is stdin as read (bytes, best): text that is not UTF-8, or a lone surrogate
    escape (`"\\ud800"`), becomes U+FFFD, so nothing odd reaches SQLite or the output."""
    started = time.monotonic()
    handler = HANDLERS.get(event)
    if handler is None:
        raise UnknownEvent(event, HANDLERS, what="hook event")
    check_name(nova)
    payload, problem = _parse_payload(raw)
    with store.open_store(home, config.db.lock_timeout_s) as db:
        row = db.read(lambda conn: store.nova_named(conn, nova))
        ctx = HookContext(home, config, db, row, event, payload,
                          time.time() if now is None else now,
                          os.environ if env is None else env, started)
        result = HookResult("error", detail=problem) if problem else handler(ctx)
        if not result.recorded:
            context.save_run(ctx, result)
    if problem:
        raise HookInputError(problem)
    return result


# a lone surrogate: from a `\ud800` escape, or a byte that was not UTF-8 (surrogateescape).
# Patterns, compiled (and cached by `re`) on first use: most payloads need neither, and
# importing `re` costs every hook call ~5 ms.
_SURROGATE = "[\ud800-\udfff]"
_SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"


def clean_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD: safe to store and print."""
    import re

    return re.sub(_SURROGATE, "\ufffd", text)


def _found(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def _parse_payload(raw: str | bytes) -> tuple[dict[str, Any], str | None]:
    raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else clean_text(raw)
    raw = raw.removeprefix("\ufeff")
    if not raw.strip():
        return {}, "no JSON on stdin"
    try:
        payload = json.loads(raw)
    except ValueError:
        return {}, "stdin is not valid JSON"
    except RecursionError:
        return {}, "stdin is JSON nested too deeply"
    if not isinstance(payload, dict):
        return {}, "stdin is not a JSON object"
    # a `\\udXXX` escape may have left a lone one
    if "\\u" in raw and _found(_SURROGATE_ESCAPE, raw):
        payload = _clean_strings(payload)
    return payload, None


def _clean_strings(value: Any) -> Any:
    """Every string in a parsed JSON value (keys too) through clean_text; a loop, not a
    recursion: json.loads nests deeper than a recursion of ours may."""
    root = [value]
    todo: list[tuple[Any, Any]] = [(root, 0)]
    while todo:
        holder, key = todo.pop()
        item = holder[key]
        if isinstance(item, str):
            holder[key] = clean_text(item)
        elif isinstance(item, list):
            todo.extend((item, i) for i in range(len(item)))
        elif isinstance(item, dict):
            if any(_found(_SURROGATE, k) for k in item):
                cleaned = {clean_text(k): v for k, v in item.items()}
                item.clear()
                item.update(cleaned)
            todo.extend((item, k) for k in item)
    return root[0]


def _record_only(ctx: HookContext) -> HookResult:
    return HookResult("recorded")


# --- Stop: the one decision and its application live in torchsm.hooks.stop ------------

def _on_stop(ctx: HookContext) -> HookResult:
    """Continue the session with the next work item, or let the agent stop."""
    from torchsm.hooks import stop

    return stop.answer(ctx)


def _hold_the_account(ctx: HookContext, usage) -> str:
    """The account's windows say stop: every Nova on the account holds until the reset."""
    from torchsm.usage import limits

    members = ctx.db.read(lambda conn: store.novas_on_account(conn, ctx.nova.account))
    limits.hold(ctx.home, ctx.config, members, usage, ctx.now)
    return usage.why


# --- PreToolUse: the usage gate within a turn --------------------------------------------

def _on_pre_tool_use(ctx: HookContext) -> HookResult:
    """A tool call means one more request (its result goes back to the model) with no Stop
    hook before it. When the account's windows say stop, the turn ends here: the tool is
    denied and Claude Code told not to continue, which sends nothing more (FIELD-NOTES),
    and every Nova on the account holds until the reset. Otherwise record only.

    The hottest path (every tool call): one query of the account's windows; a stop does
    not depend on requests in flight, so the pure verdict over them is all it takes."""
    from torchsm.config import usage_for
    from torchsm.usage import accounts, pacing

    windows = ctx.db.read(lambda conn: accounts.load_windows(conn, ctx.nova.account))
    if not windows:  # an API-key user
        return HookResult("recorded")
    usage = pacing.verdict(windows, usage_for(ctx.config, ctx.nova.account), ctx.now)
    if usage.kind != "stop":
        return HookResult("recorded")
    why = _hold_the_account(ctx, usage)
    reason = (f"torchsm: {why}; the turn ends before this tool call, and {ctx.nova.name} "
              f"holds until {format_time(usage.until)}")
    return HookResult("blocked", stdout=json.dumps({
        "continue": False, "stopReason": reason,
        "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                               "permissionDecisionReason": reason}}),
        detail=f"{why}; held until {format_time(usage.until)}"[:500])


# --- StopFailure -----------------------------------------------------------------------

_DID = {"cooling": "cooled", "meditating": "meditated"}  # a hook run's outcome, by state


def _on_stop_failure(ctx: HookContext) -> HookResult:
    """An API error ended the turn: the one answer to it (torchsm.endings.responses), applied once
    and recorded under the supervised session, if any. Its output is ignored by Claude
    Code."""
    from torchsm.endings import answers
    from torchsm.endings.responses import Situation, turn_ending

    error = str(ctx.payload.get("error") or "unknown")
    message = str(ctx.payload.get("last_assistant_message") or ctx.payload.get("error_details")
                  or "")
    ending = turn_ending(error, message, context.supervised_session(ctx))
    answered = ctx.db.read(lambda conn: answers.session_answer(conn, ending.session_id,
                                                               ctx.nova.id))
    applied = answers.answer(ctx.home, ctx.config, ctx.db, ctx.nova, ending,
                             Situation(answered), ctx.now)
    if applied.held is not None:
        state = ctx.db.read(lambda conn: store.load_nova(conn, ctx.nova.name)).state
        return HookResult("meditated" if state == "meditating" else "cooled",
                          detail=f"{error}: account {ctx.nova.account} held until "
                                 f"{format_time(applied.held.until)}: {applied.held.why}"[:500],
                          warning=applied.warning)
    if applied.transition is not None:
        return HookResult(_DID.get(applied.transition.target, "recorded"),
                          detail=f"{error}: {message}"[:500])
    return HookResult("recorded", detail=applied.response.why[:500])


# --- PreCompact and SessionStart ----------------------------------------------------------

def _on_pre_compact(ctx: HookContext) -> HookResult:
    """Transition to compacting, save the work state, tell the other Novas."""
    from torchsm import novas
    from torchsm.errors import TransitionRefused
    from torchsm.mirror import outbox, streams

    trigger = str(ctx.payload.get("trigger") or "auto")
    # the snapshot first: if it cannot be made, the Nova is not left compacting without one
    content = json.dumps(_snapshot(ctx, trigger))
    ctx.db.write(lambda conn: store.save_snapshot(
        conn, nova_id=ctx.nova.id, at=ctx.now, session_id=ctx.session_id, trigger=trigger,
        content=content))
    try:
        novas.transition(ctx.home, ctx.config, ctx.nova.name, "compact",
                         reason=f"context compaction ({trigger})", now=ctx.now)
        note = None
    except TransitionRefused as exc:
        note = exc.message  # a cooling Nova still keeps its work state
    data = {"trigger": trigger, "session_id": ctx.session_id, "status": "COMPACTING",
            "status_ttl_s": COMPACTING_TTL_S}
    # after the transition's own entry, whose status carries no TTL
    def broadcast(conn) -> None:
        for stream in (streams.MESSAGES_STREAM, streams.OPS_STREAM):
            outbox.put(conn, ctx.config, stream,
                       streams.Entry.new("compacting", ctx.nova.name, data, ctx.now))

    ctx.db.write(broadcast)
    outbox.deliver(ctx.home, ctx.config)
    return HookResult("recorded", detail=note or f"snapshot saved ({trigger})")


def _snapshot(ctx: HookContext, trigger: str) -> dict[str, Any]:
    def read(conn):
        item = work_queue.current_item(conn, ctx.nova.name)
        history = store.recent_history(conn, ctx.nova.id, SNAPSHOT_TRANSITIONS)
        inbox = store.load_inbox(conn, ctx.nova.name, CONTEXT_MESSAGES)
        return item, history, inbox

    item, history, inbox = ctx.db.read(read)
    return {
        "nova": ctx.nova.name, "at": format_time(ctx.now), "trigger": trigger,
        "session_id": ctx.session_id,
        "current_item": {"id": item.id, "text": item.text, "priority": item.priority.value}
        if item else None,
        "recent_transitions": [{"from": h[0], "to": h[1], "event": h[2], "reason": h[3],
                                "at": format_time(h[4])} for h in history],
        "messages": [{"from": m.sender, "text": m.text, "at": format_time(m.at)} for m in inbox],
    }


def _on_session_start(ctx: HookContext) -> HookResult:
    """After a compaction: back to working, with the saved work state as context.
    Otherwise: the current task and the messages waiting for the Nova."""
    if ctx.payload.get("source") == "compact":
        return _after_compaction(ctx)
    def read(conn):
        return (work_queue.current_item(conn, ctx.nova.name),
                store.load_inbox(conn, ctx.nova.name, CONTEXT_MESSAGES))

    item, inbox = ctx.db.read(read)
    parts = [Part(f"torchsm: you are Nova {ctx.nova.name} ({ctx.nova.personality}), "
                  f"state {ctx.nova.state}.")]
    if item:
        parts.append(_task_part(f"Current task (work item {item.id}): ", item.id, item.text))
    parts += [_message_part(ctx.nova.name, m.sender, format_time(m.at), m.text) for m in inbox]
    return _context(_with_memory(ctx, parts))


def _with_memory(ctx: HookContext, parts: list[Part]) -> str:
    """`parts` (the task or the snapshot, messages) and what the Nova remembers: the
    latest dream's insights (up to a third of `[memory] context_chars`) and its memories
    (the rest of it), all within what Claude Code reads of a hook's output."""
    from torchsm.dreams import recall

    room = ctx.config.memory.context_chars

    def read(conn) -> tuple[str, str]:
        insights, keys = recall.insights_context(conn, ctx.nova.name, room // 3)
        left = room - json_size(insights) - (json_size("\n") if insights else 0)
        # an insight remembered (kind `insight`, the finding's key) is said once
        return insights, recall.context_for(conn, ctx.config, ctx.nova.name, left, keys)

    insights, memories = ctx.db.read(read)
    recalled = [text for text in (insights, memories) if text]
    base_room = HOOK_TEXT_MAX - sum(json_size(t) + json_size("\n") for t in recalled)
    return "\n".join([fit(parts, base_room), *recalled])


def _task_part(prefix: str, item_id: int, text: str) -> Part:
    return Part(prefix, text, "task", f"torchsm queue show {item_id}", weight=3)


def _message_part(nova: str, sender: str, at: str | None, text: str) -> Part:
    return Part(f"Message from {sender} ({at}): ", text, "message",
                f"torchsm message list {nova}")


def _after_compaction(ctx: HookContext) -> HookResult:
    from torchsm import novas
    from torchsm.errors import TransitionRefused

    if ctx.nova.state == "compacting":
        try:
            novas.transition(ctx.home, ctx.config, ctx.nova.name, "work",
                             reason="compaction finished", now=ctx.now)
        except TransitionRefused:
            pass
    saved = ctx.db.read(lambda conn: store.latest_snapshot(conn, ctx.nova.id))
    if saved is None:
        return _context(_with_memory(ctx, [Part(
            f"torchsm: Nova {ctx.nova.name}: no work state was saved before this "
            "compaction.")]))
    return _context(_with_memory(ctx, snapshot_parts(json.loads(saved))))


def snapshot_parts(snapshot: dict[str, Any]) -> list[Part]:
    nova = snapshot["nova"]
    parts = [Part(f"torchsm: work state of Nova {nova} saved before the context "
                  f"compaction at {snapshot['at']}.")]
    item = snapshot.get("current_item")
    if item:
        parts.append(_task_part(f"Current task (work item {item['id']}, {item['priority']}): ",
                                item["id"], item["text"]))
    if snapshot.get("recent_transitions"):
        parts.append(Part("Recent transitions: ", "; ".join(
            f"{t['at']} {t['from']}->{t['to']}" + (f" ({t['reason']})" if t["reason"] else "")
            for t in snapshot["recent_transitions"]), "list of transitions",
            f"torchsm history {nova}"))
    parts += [_message_part(nova, m["from"], m["at"], m["text"])
              for m in snapshot.get("messages", [])]
    return parts


def _context(text: str) -> HookResult:
    output = {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}
    return HookResult("context", stdout=json.dumps(output))


HANDLERS: dict[str, Callable[[HookContext], HookResult]] = {
    "session-start": _on_session_start,
    "user-prompt-submit": _record_only,
    "pre-tool-use": _on_pre_tool_use,
    "post-tool-use": _record_only,
    "stop": _on_stop,
    "stop-failure": _on_stop_failure,
    "subagent-stop": _record_only,
    "pre-compact": _on_pre_compact,
    "session-end": _record_only,
    "notification": _record_only,
}
