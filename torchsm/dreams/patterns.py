"""A dream's phase 0: pattern recognition over the Nova's recent experience.

What the span holds, counted, without judging it yet: the activity of every source, the
error texts that came back, the last messages sessions kept ending with, the bangs, the
rests by cause, who sent what. Each finding is an `Insight` that cites its evidence (ids,
counts, the time range, the error text). Pure: the same experience gives the same
insights, in the same order.

`Insight` and the wording helpers below serve the later phases too.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from torchsm.clock import format_time
from torchsm.dreams.experience import ErrorGroup, Experience

EVIDENCE_IDS = 20  # ids listed in evidence; the count says how many there were in all
QUOTE_CHARS = 80  # an error or message quoted in an insight's text


class Insight(NamedTuple):
    phase: int  # 0 patterns | 1 reflection | 2 plan
    kind: str
    key: str  # the same finding in another dream has the same key
    text: str  # one readable sentence that names the numbers
    evidence: dict[str, Any]
    weight: int  # importance: the dream's insights are ranked by it
    action: dict[str, Any] | None = None  # phase 2: what to do
    work_item: int | None = None  # phase 2: the work item it added ([dreams] propose_work)


def recognise(exp: Experience) -> list[Insight]:
    """Phase 0: the patterns of the span (none when nothing happened in it)."""
    if exp.empty:
        return []
    found = [activity(exp)]
    found += [error_text(exp, group) for group in exp.errors[:EVIDENCE_IDS]]
    found += [repeated_message(text, ids) for text, ids in exp.sessions.repeated]
    if exp.hooks.bangs:
        found.append(bangs(exp))
    if exp.history.rests:
        found.append(rests(exp))
    if exp.signals or exp.messages:
        found.append(senders(exp))
    return found


def activity(exp: Experience) -> Insight:
    s, q = exp.sessions, exp.queue
    parts = []
    if s.count:
        parts.append(f"{plural(s.count, 'session')} ({counts(s.by_outcome)}, "
                     f"${s.cost:.2f}, {plural(s.turns, 'turn')})")
    if q.finished:
        parts.append(f"{plural(sum(q.finished.values()), 'item')} finished "
                     f"({counts(q.finished)})")
    for n, what in ((q.open_count, "open item"), (exp.hooks.count, "hook run"),
                    (exp.history.count, "transition"),
                    (_total(exp.signals), "wake signal"), (_total(exp.messages), "message")):
        if n:
            parts.append(plural(n, what))
    evidence = {**span_evidence(exp.span.start, exp.span.end), "read": exp.read,
                "capped": list(exp.capped),
                "sessions": {"count": s.count, "ids": list(s.ids or ()),
                             "by_outcome": s.by_outcome, "cost_usd": s.cost, "turns": s.turns},
                "items": {"finished": q.finished, "ids": q.finished_ids, "open": q.open_count},
                "hook_runs": exp.hooks.by_event, "transitions": exp.history.by_event}
    text = f"From {when(exp.span.start)} to {when(exp.span.end)}: {', '.join(parts)}."
    if exp.capped:
        text += f" Only the latest rows of {', '.join(exp.capped)} were read ([dreams] rows_max)."
    return Insight(0, "activity", "activity", text, evidence, 10)


def error_text(exp: Experience, group: ErrorGroup) -> Insight:
    where = []
    if group.sessions:
        where.append(f"{'session' if len(group.sessions) == 1 else 'sessions'} "
                     f"{id_list(group.sessions)}")
    if group.items:
        where.append(f"{'item' if len(group.items) == 1 else 'items'} {id_list(group.items)}")
    text = (f"The error {quote(group.text)} came {group.count} times from "
            f"{when(group.first)} to {when(group.last)}: in {' and '.join(where)}.")
    return Insight(0, "error-text", f"error:{group.key}", text, error_evidence(group), 30)


def error_evidence(group: ErrorGroup) -> dict[str, Any]:
    return {"error": group.text, "count": group.count,
            "sessions": list(group.sessions[:EVIDENCE_IDS]),
            "items": list(group.items[:EVIDENCE_IDS]), **span_evidence(group.first, group.last)}


def repeated_message(text: str, ids: tuple[int, ...]) -> Insight:
    said = (f"{len(ids)} sessions ({id_list(ids)}) ended with the same last message: "
            f"{quote(text)}.")
    return Insight(0, "repeated-message", f"message:{digest(text)}", said,
                   {"message": text, "count": len(ids), "sessions": list(ids[:EVIDENCE_IDS])},
                   25)


def bangs(exp: Experience) -> Insight:
    runs = exp.hooks.bangs
    ids = tuple(run_id for run_id, _ in runs)
    text = (f"{plural(len(runs), 'bang')} (Stop-hook bursts) from {when(runs[0][1])} to "
            f"{when(runs[-1][1])}: hook {'run' if len(ids) == 1 else 'runs'} {id_list(ids)}.")
    return Insight(0, "bangs", "bangs", text,
                   {"count": len(runs), "hook_runs": list(ids[:EVIDENCE_IDS]),
                    **span_evidence(runs[0][1], runs[-1][1])}, 35)


def rests(exp: Experience) -> Insight:
    groups = exp.history.rests
    cools = sum(g.cools for g in groups)
    meditations = sum(g.meditations for g in groups)
    first, last = min(g.first for g in groups), max(g.last for g in groups)
    by_cause = ", ".join(f"{g.cause} {g.cools + g.meditations}"
                         for g in sorted(groups, key=lambda g: (-(g.cools + g.meditations),
                                                                g.cause)))
    text = (f"{plural(cools, 'cooldown')} and {plural(meditations, 'meditation')} from "
            f"{when(first)} to {when(last)}, by cause: {by_cause}.")
    evidence = {"cooldowns": cools, "meditations": meditations, **span_evidence(first, last),
                "by_cause": {g.cause: {"cooldowns": g.cools, "meditations": g.meditations,
                                       "history": list(g.ids[:EVIDENCE_IDS]),
                                       "reasons": list(g.reasons)} for g in groups}}
    return Insight(0, "rests", "rests", text, evidence, 30)


def senders(exp: Experience) -> Insight:
    parts = []
    for label, by_sender in (("wake signals", exp.signals), ("messages", exp.messages)):
        if by_sender:
            listed = ", ".join(f"{sender_name(s)} {f.count}" + (f" ({f.low} low)" if f.low else "")
                               for s, f in _busiest(by_sender))
            parts.append(f"{label} by sender: {listed}")
    evidence = {label: {sender_name(s): {"count": f.count, "low": f.low,
                                         "critical": f.critical,
                                         "ids": list(f.ids[:EVIDENCE_IDS]),
                                         **span_evidence(f.first, f.last)}
                        for s, f in by_sender.items()}
                for label, by_sender in (("wake_signals", exp.signals),
                                         ("messages", exp.messages))}
    text = "; ".join(parts) + "."
    return Insight(0, "senders", "senders", text[0].upper() + text[1:], evidence, 20)


def _busiest(by_sender: dict) -> list:
    return sorted(by_sender.items(), key=lambda pair: (-pair[1].count, pair[0]))


def _total(by_sender: dict) -> int:
    return sum(f.count for f in by_sender.values())


# --- wording and evidence, for every phase ---------------------------------------------------

def when(ts: float | None) -> str:
    return format_time(ts) or "-"


def span_evidence(first: float, last: float) -> dict[str, str | None]:
    return {"from": format_time(first), "to": format_time(last)}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def counts(by: dict[str, int]) -> str:
    """`{"ok": 9, "failed": 3}` as "9 ok, 3 failed", the largest first."""
    return ", ".join(f"{n} {k}" for k, n in sorted(by.items(), key=lambda kv: (-kv[1], kv[0])))


def id_list(ids: tuple[int, ...] | list[int], shown: int = 6) -> str:
    """"4, 5 and 6"; past `shown`, "4, 5, 6, 7, 8, 9 and 3 more"."""
    ids = [str(i) for i in ids]
    if len(ids) > shown:
        return f"{', '.join(ids[:shown])} and {len(ids) - shown} more"
    return ids[0] if len(ids) == 1 else f"{', '.join(ids[:-1])} and {ids[-1]}"


def quote(text: str, width: int = QUOTE_CHARS) -> str:
    line = " ".join(text.split())
    return '"' + (line if len(line) <= width else line[:width - 3] + "...") + '"'


def duration(seconds: float) -> str:
    """A duration for people: 45 s, 12 min, 6.0 h, 2.0 days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def digest(text: str) -> str:
    """A short stable digest: keys stay short whatever text they name."""
    return hashlib.blake2b(" ".join(text.split()).encode("utf-8", "surrogatepass"),
                           digest_size=6).hexdigest()


def sender_name(sender: str) -> str:
    return sender or "(no sender)"
